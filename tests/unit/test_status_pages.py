"""The status pages customers read (notifiers/status_page.py, streams/status_web.py): language and
zone of the reader, what each section shows, the customer's signed link and its page, the Atom
feed (parsed with feedparser), and the OpenAPI document (the committed file is the generated one)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import feedparser
import pytest

from core.settings import Settings
from domain.links import MAX_TOKEN_LENGTH, status_token, verify_status
from notifiers.status_page import (
    Reader,
    components_of,
    negotiate_locale,
    render_invalid_link,
    render_status_feed,
    render_status_page,
    resolve_zone,
)
from streams.openapi import dumps, openapi_document
from streams.status_web import reader_of, register_status_pages
from streams.web import ROUTES, SIGNED, TOKEN
from tests.inmemory import App

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 4, 7, 30, tzinfo=timezone.utc)
def iso(d): return d.isoformat()
DOC = {
 "generated_at": iso(NOW),
 "active": [
  {"incident_id": "inc-7", "severity": "major", "status": "investigating",
   "title": {"en": "Billing API errors", "ja": "請求APIでエラーが発生しています"},
   "message": {"en": "We are investigating elevated error rates on the billing API.", "ja": "請求APIでエラー率が上昇しており、現在、原因を調査しております。"},
   "components": ["billing-api"], "regions": ["ap-northeast-1"], "eta": None,
   "started_at": iso(NOW - timedelta(minutes=40)), "updated_at": iso(NOW - timedelta(minutes=10)), "resolved_at": None,
   "seq": 2, "next_update_at": iso(NOW + timedelta(minutes=50)),
   "history": [{"event_id": "e-1", "type": "declared", "at": iso(NOW - timedelta(minutes=40)), "status": "investigating", "seq": 1},
               {"event_id": "e-2", "type": "updated", "at": iso(NOW - timedelta(minutes=10)), "status": "investigating", "seq": 2}]},
  {"incident_id": "inc-8", "severity": "minor", "status": "monitoring",
   "title": {"en": "Slow dashboard", "ja": "ダッシュボードの表示遅延"}, "message": {"en": "A fix is in place; we are monitoring.", "ja": "対策を実施し、経過を観察しております。"},
   "components": ["dashboard"], "regions": [], "eta": iso(NOW + timedelta(hours=1)),
   "started_at": iso(NOW - timedelta(hours=2)), "updated_at": iso(NOW - timedelta(minutes=5)), "resolved_at": None,
   "seq": 3, "next_update_at": iso(NOW + timedelta(minutes=55)),
   "history": [{"event_id": "e-3", "type": "declared", "at": iso(NOW - timedelta(hours=2)), "status": "identified", "seq": 1}]}],
 "recently_resolved": [
  {"incident_id": "inc-5", "severity": "critical", "status": "resolved",
   "title": {"en": "Login failures", "ja": "ログインできない障害"}, "message": {"en": "Logins work again. We're sorry for the disruption.", "ja": "ログインは正常に戻りました。ご不便をおかけし、申し訳ございませんでした。"},
   "components": ["auth"], "regions": ["eu-west-1"], "eta": None,
   "started_at": iso(NOW - timedelta(days=1, hours=3)), "updated_at": iso(NOW - timedelta(days=1, hours=1)),
   "resolved_at": iso(NOW - timedelta(days=1, hours=1)), "seq": 3, "next_update_at": None,
   "history": [{"event_id": "e-5", "type": "declared", "at": iso(NOW - timedelta(days=1, hours=3)), "status": "investigating", "seq": 1},
               {"event_id": "e-6", "type": "resolved", "at": iso(NOW - timedelta(days=1, hours=1)), "status": "resolved", "seq": 3}]}],
 "maintenance": [
  {"maintenance_id": "mnt-3", "title": {"en": "Database upgrade", "ja": "データベースの更新"},
   "message": {"en": "Writes pause for up to 10 minutes.", "ja": "書き込みが最大10分間停止します。"},
   "components": ["billing-api"], "regions": ["ap-northeast-1"], "status": "scheduled",
   "starts_at": iso(NOW + timedelta(days=1)), "ends_at": iso(NOW + timedelta(days=1, hours=2))}],
}
SERVICES = [("billing-api", "ap-northeast-1"), ("dashboard", "ap-northeast-1"), ("auth", "ap-northeast-1")]
KEY = b"status-key"


# -- language and zone ---------------------------------------------------------------------

@pytest.mark.parametrize("lang,accept,expected", [
    ("ja", "en", "ja"), ("en", "ja", "en"), ("JA-jp", None, "ja"), ("fr", "ja;q=0.9,en;q=0.8", "ja"),
    (None, "fr-FR,ja;q=0.5,en;q=0.4", "ja"), (None, "en-GB,ja;q=0.9", "en"), (None, "ja-JP", "ja"),
    (None, "ja;q=0,en", "en"), (None, "*", "en"), (None, "fr", "en"), (None, None, "en"), (None, ";;,q=x,ja", "ja"),
    (None, "ja;q=1.5abc", "en"), (None, "x" * 5000, "en"),
])
def test_the_language_is_the_query_then_accept_language_then_english(lang, accept, expected):
    assert negotiate_locale(lang, accept) == expected


@pytest.mark.parametrize("tz,expected", [
    (None, ("UTC", True)), ("Asia/Tokyo", ("Asia/Tokyo", True)), ("Europe/London", ("Europe/London", True)),
    ("Mars/Olympus", ("UTC", False)), ("../../etc/passwd", ("UTC", False)), ("/etc/localtime", ("UTC", False)),
    ("America", ("UTC", False)), ("x" * 200, ("UTC", False)), ("Asia/Tokyo\x00", ("UTC", False)),
])
def test_a_zone_that_names_nothing_falls_back_to_utc(tz, expected):
    assert resolve_zone(tz) == expected


def test_the_reader_of_a_request():
    assert reader_of({"lang": "ja", "tz": "Asia/Tokyo"}, {}) == Reader("ja", "Asia/Tokyo", zone_named=True)
    assert reader_of({}, {"Accept-Language": "ja-JP,ja;q=0.9"}) == Reader("ja", "UTC", zone_named=False)
    assert reader_of({"tz": "Nowhere/Land"}, {}) == Reader("en", "UTC", zone_named=False, zone_refused="Nowhere/Land")
    # a customer's link: its locale and zone, unless the query names others; Accept-Language is not asked
    assert reader_of({}, {"Accept-Language": "en"}, locale="ja", zone="Asia/Tokyo") == Reader(
        "ja", "Asia/Tokyo", zone_named=True)
    assert reader_of({"lang": "en"}, {}, locale="ja", zone="Asia/Tokyo").locale == "en"


# -- the public page -----------------------------------------------------------------------

@pytest.mark.parametrize("locale,words", [
    ("en", ["Service status", "Investigating", "Fix in place, monitoring", "Resolved", "Upcoming maintenance",
            "Database upgrade", "Partial outage", "Degraded performance", "Operating normally",
            "2 incidents are in progress", "Times are shown in UTC.", "have a recovery estimate yet; we will share one",
            "6:50 AM UTC on 4 Dec", "2 hours"]),
    ("ja", ["稼働状況", "調査中", "復旧対応済み・経過観察中", "復旧", "予定されているメンテナンス", "データベースの更新",
            "一部障害", "性能低下", "正常", "現在、2件の障害が発生しております", "協定世界時（UTC）",
            "復旧の見込み時刻は、現時点では未定です。判明しだいお知らせいたします。", "12月4日 6:50（UTC）", "2時間"]),
])
def test_the_status_page_in_each_language(locale, words):
    page = render_status_page(DOC, Reader(locale), NOW)
    assert f'<html lang="{locale}">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    for word in words:
        assert word in page, word
    # every time carries its instant for the script that shows it in the browser's zone
    assert '<time datetime="2026-12-04T06:50:00Z">' in page and "<script>" in page
    # the order of the sections: components, current incidents, maintenance, history
    order = {"en": ["Components", "Current incidents", "Upcoming maintenance", "Recently resolved"],
             "ja": ["サービスの状態", "発生中の障害</h2>", "予定されているメンテナンス", "最近復旧した障害"]}[locale]
    assert [page.index(h) for h in order] == sorted(page.index(h) for h in order)


def test_a_resolved_incident_is_coloured_apart_from_one_investigated():
    page = render_status_page(DOC, Reader("en"), NOW)
    assert 'class="incident st-investigating"' in page and 'class="incident st-resolved"' in page
    css = page[page.index("<style>"):page.index("</style>")]
    colour = {s: css.split(f".st-{s}{{border-left-color:")[1].split("}")[0] for s in ("investigating", "resolved")}
    assert colour["investigating"] != colour["resolved"]


def test_times_in_the_zone_the_reader_names_and_no_script_rewrites_them():
    page = render_status_page(DOC, Reader("en", "Asia/Tokyo", zone_named=True), NOW)
    assert "3:50 PM JST on 4 Dec" in page and "Times are shown in Asia/Tokyo time." in page
    assert "<script>" not in page
    assert 'href="?lang=ja&amp;tz=Asia%2FTokyo"' in page   # the other language keeps the zone
    ja = render_status_page(DOC, Reader("ja", "Asia/Tokyo", zone_named=True), NOW)
    assert "12月4日 15:50（日本時間）" in ja and "時刻は日本時間で表示しています。" in ja


def test_an_unknown_zone_is_said_and_utc_is_used():
    page = render_status_page(DOC, Reader("en", "UTC", zone_refused="Mars/<b>"), NOW)
    assert "“Mars/&lt;b&gt;” is not a time zone we know; times are shown in UTC." in page
    assert "6:50 AM UTC on 4 Dec" in page


def test_ops_text_is_escaped():
    doc = {**DOC, "active": [{**DOC["active"][0], "title": "<script>alert(1)</script>", "message": "a & b"}]}
    page = render_status_page(doc, Reader("en"), NOW)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &amp; b" in page


def test_components_take_the_worst_active_state_and_maintenance_in_its_window():
    doc = {**DOC, "active": DOC["active"] + [{**DOC["active"][0], "incident_id": "inc-9", "severity": "critical"}],
           "maintenance": [{**DOC["maintenance"][0], "components": ["search"],
                            "starts_at": (NOW - timedelta(minutes=5)).isoformat()}]}
    states = {c["component"]: c["state"] for c in components_of(doc, NOW)}
    assert states == {"auth": "operational", "billing-api": "outage", "dashboard": "degraded", "search": "maintenance"}
    mine = components_of(DOC, NOW, services=[("billing-api", "eu-west-1"), ("dashboard", "eu-west-1")])
    assert [(c["component"], c["region"], c["state"]) for c in mine] == [
        ("billing-api", "eu-west-1", "operational"),   # the incident is in ap-northeast-1 only
        ("dashboard", "eu-west-1", "degraded")]        # no regions listed: every region


def test_the_maintenance_section_only_when_the_document_has_maintenance():
    without = {k: v for k, v in DOC.items() if k != "maintenance"}
    assert "Upcoming maintenance" not in render_status_page(without, Reader("en"), NOW)
    empty = render_status_page({**DOC, "maintenance": []}, Reader("en"), NOW)
    assert "Upcoming maintenance" in empty and "No maintenance is scheduled." in empty
    done = {**DOC["maintenance"][0], "status": "cancelled"}
    assert "Database upgrade" not in render_status_page({**DOC, "maintenance": [done]}, Reader("en"), NOW)


def test_an_empty_document_is_all_operating_normally():
    for locale, ok in (("en", "All systems are operating normally."), ("ja", "すべてのサービスは正常に稼働しています。")):
        page = render_status_page({"generated_at": NOW.isoformat(), "active": [], "recently_resolved": []},
                                  Reader(locale), NOW)
        assert ok in page


# -- the customer's page and its link -------------------------------------------------------

def test_a_status_token_round_trips_and_nothing_else_verifies():
    token = status_token(KEY, "c-42", "ja", "Asia/Tokyo", SERVICES)
    link = verify_status(KEY, token)
    assert link.customer_id == "c-42" and link.locale == "ja" and link.timezone == "Asia/Tokyo"
    assert link.services == tuple(SERVICES)
    assert verify_status([b"other", KEY], token) == link          # a previous key still verifies
    assert verify_status(b"other", token) is None
    body, signature = token.split(".")
    for bad in (body + "A." + signature, body + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B"),
                token + ".x", "", "a.b", "not.a.token", "." * 3000, 7, None):
        assert verify_status(KEY, bad) is None, bad
    with pytest.raises(ValueError):
        status_token(KEY, "c-42", "fr", "UTC", SERVICES)
    many = [(f"component-{i:04d}-" + "x" * 40, f"region-{i}") for i in range(400)]
    with pytest.raises(ValueError):   # too many services for a link: no link (the notice still goes)
        status_token(KEY, "c-42", "en", "UTC", many)
    assert len(status_token(KEY, "c-42", "en", "UTC", many[:20])) <= MAX_TOKEN_LENGTH


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_the_customer_page_shows_only_its_services_and_what_affects_them(locale):
    page = render_status_page(DOC, Reader(locale, "Asia/Tokyo", zone_named=True), NOW, services=SERVICES)
    assert ("Status of your services" if locale == "en" else "ご利用サービスの稼働状況") in page
    assert "noindex" in page and "no-referrer" in page
    place = "{}（{}）" if locale == "ja" else "{} ({})"   # Japanese brackets in Japanese
    assert place.format("billing-api", "ap-northeast-1") in page and place.format("dashboard", "ap-northeast-1") in page
    # the login incident was in eu-west-1: not this customer's
    assert ("Login failures" if locale == "en" else "ログインできない障害") not in page
    assert ("Database upgrade" if locale == "en" else "データベースの更新") in page   # the maintenance touches billing-api
    other = render_status_page(DOC, Reader(locale), NOW, services=[("search", "us-east-1")])
    assert ("Billing API errors" if locale == "en" else "請求API") not in other
    assert ("All of your services are operating normally." if locale == "en"
            else "ご利用中のサービスはすべて正常に稼働しています。") in other
    assert ("Database upgrade" if locale == "en" else "データベースの更新") not in other


def test_an_invalid_link_page_in_both_languages():
    page = render_invalid_link()
    assert "This link is not valid." in page and "このリンクは無効です。" in page


@pytest.mark.parametrize("locale,label", [("en", "Status of your services"), ("ja", "ご利用サービスの稼働状況")])
def test_every_notice_links_the_customers_own_page(locale, label):
    from tests.unit.test_message import composed

    msg = composed("progress", locale, None)
    for part in ("plain", "html"):
        body = msg.get_body((part,)).get_content()
        assert label in body, part
        start = body.index("https://status.example.com/status/customer/") + len("https://status.example.com/status/customer/")
        token = body[start:].split()[0].split('"')[0]
        link = verify_status(b"k", token)
        assert link is not None and link.customer_id == "c-42" and link.locale == locale
        assert link.services == (("api", "ap-northeast-1"),) and link.timezone == "Asia/Tokyo"


# -- the feed --------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", ["en", "ja"])
def test_the_feed_has_one_entry_per_round_with_stable_ids(locale):
    text = render_status_feed(DOC, Reader(locale), NOW, base_url="https://status.example.com/")
    feed = feedparser.parse(text)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == ("Service status" if locale == "en" else "稼働状況")
    ids = [e.id for e in feed.entries]
    assert ids == ["tag:status.example.com,2026-12-04:incident/inc-7/round/2",
                   "tag:status.example.com,2026-12-04:incident/inc-7/round/1",
                   "tag:status.example.com,2026-12-04:incident/inc-8/round/1",
                   "tag:status.example.com,2026-12-03:incident/inc-5/round/3",
                   "tag:status.example.com,2026-12-03:incident/inc-5/round/1"]
    first = feed.entries[0]
    assert first.updated == "2026-12-04T07:20:00Z"
    assert first.title == ("[Update] Billing API errors" if locale == "en" else "[続報] 請求APIでエラーが発生しています")
    assert feed.feed.updated == "2026-12-04T07:20:00Z"
    resolved = feed.entries[3]
    assert resolved.title.startswith("[Resolved]" if locale == "en" else "[復旧]")
    # the same document later, on another worker: the same ids and times
    again = feedparser.parse(render_status_feed(DOC, Reader(locale), NOW + timedelta(minutes=3),
                                                base_url="https://status.example.com"))
    assert [(e.id, e.updated) for e in again.entries] == [(e.id, e.updated) for e in feed.entries]


def test_an_incident_id_is_quoted_in_its_entry_id_and_the_feed_is_escaped():
    doc = {"active": [{**DOC["active"][0], "incident_id": "inc a/<b>", "title": "x < y & z"}], "recently_resolved": []}
    feed = feedparser.parse(render_status_feed(doc, Reader("en"), NOW, base_url="http://localhost:6066"))
    assert not feed.bozo
    assert feed.entries[0].id == "tag:localhost,2026-12-04:incident/inc%20a%2F%3Cb%3E/round/2"
    assert feed.entries[0].title == "[Update] x < y & z"


# -- the routes, in process --------------------------------------------------------------------

class Web:
    """What the views call of faust's web: each answer as (status, body, headers, content type)."""

    def html(self, value, *, status=200, headers=None, **_):
        return status, value, headers or {}, "text/html"

    def bytes(self, value, *, status=200, headers=None, content_type=None, **_):
        return status, value.decode(), headers or {}, content_type

    def json(self, value, *, status=200, headers=None, **_):
        return status, value, headers or {}, "application/json"


@pytest.fixture
def pages():
    app = App()
    history = {i["incident_id"]: i["history"] for i in DOC["active"] + DOC["recently_resolved"]}
    plain = {**DOC, "active": [{k: v for k, v in i.items() if k != "history"} for i in DOC["active"]],
             "recently_resolved": [{k: v for k, v in i.items() if k != "history"} for i in DOC["recently_resolved"]]}
    register_status_pages(app, settings=Settings(secret="s", public_url="https://status.example.com"),
                          document=lambda: plain, history=lambda i: history.get(i, []), clock=lambda: NOW,
                          openapi=lambda: {"openapi": "3.1.0"})

    async def get(path: str, query=None, headers=None, **kwargs):
        view = app.pages[path](app, Web())
        return await view.get(SimpleNamespace(query=query or {}, headers=headers or {}), **kwargs)

    return get


async def test_the_routes_answer_in_the_readers_language_and_zone(pages):
    status, page, headers, _ = await pages("/status", {"tz": "Asia/Tokyo"}, {"Accept-Language": "ja"})
    assert status == 200 and headers["Content-Language"] == "ja" and "12月4日 15:50（日本時間）" in page
    status, page, _, _ = await pages("/status", {"tz": "Bad/Zone", "lang": "en"})
    assert status == 200 and "“Bad/Zone” is not a time zone we know" in page
    status, feed, headers, content_type = await pages("/status.atom", {"lang": "ja"})
    assert status == 200 and content_type == "application/atom+xml"
    assert len(feedparser.parse(feed).entries) == 5


async def test_the_customer_route_verifies_its_link(pages):
    token = status_token(Settings(secret="s").verification_keys()[0], "c-42", "ja", "Asia/Tokyo", SERVICES)
    status, page, headers, _ = await pages("/status/customer/{token}", token=token)
    assert status == 200 and "ご利用サービスの稼働状況" in page and "（日本時間）" in page
    assert headers["Cache-Control"] == "no-store" and "noindex" in headers["X-Robots-Tag"]
    status, page, headers, _ = await pages("/status/customer/{token}", token=token[:-2] + "AA")
    assert status == 404 and "This link is not valid." in page and headers["Cache-Control"] == "no-store"
    status, _, _, _ = await pages("/status/customer/{token}", token="not.a.token")
    assert status == 404


# -- OpenAPI -----------------------------------------------------------------------------------

def test_the_committed_openapi_document_is_the_generated_one():
    committed = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == dumps(openapi_document(ROUTES)), "run: python -m streams.openapi > docs/openapi.json"


def test_the_openapi_document_has_every_route_its_methods_and_security():
    doc = openapi_document(ROUTES)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {r.path for r in ROUTES}
    for route in ROUTES:
        item = doc["paths"][route.path]
        assert set(item) == {m.lower() for m in route.methods}, route.path
        for method, access in route.access.items():
            operation = item[method.lower()]
            assert operation["security"] == ([{"bearer": []}] if access == TOKEN else []), (route.path, method)
            codes = set(operation["responses"])
            assert codes and all(c.isdigit() for c in codes)
            if access == TOKEN and method in ("POST", "PUT"):   # a write with a body
                assert {"400", "401", "413", "503"} <= codes
            elif access == TOKEN:                               # an ops read or a DELETE: no body
                assert "401" in codes
            if access == SIGNED:
                assert codes & {"403", "404"}
    body = doc["paths"]["/api/incidents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    declare = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert declare["properties"]["title"] and "severity" in declare["properties"]
    # every $ref resolves
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref


def test_an_unknown_route_has_no_operation_and_is_refused():
    with pytest.raises(KeyError):
        openapi_document([SimpleNamespace(path="/nowhere", access={"GET": "public"}, what="")])
