"""Notices in words: times in the reader's zone, the three parts in order, both locales."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from domain.content import NoticeContent
from core.vocabulary import NOTICE_KINDS
from notifiers.render import RenderedNotice, get_environment, render
from notifiers.timefmt import format_duration, format_time, zone_label

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 10:00 JST, 20:00 EST (24 Nov), 12:00 AEDT
ONGOING = ("acknowledged", "progress", "scheduled", "ticket-ack")
ZONES = ("Asia/Tokyo", "America/New_York", "Australia/Sydney")


def content(kind: str = "progress", locale: str = "en", tz: str = "Asia/Tokyo", **kw) -> NoticeContent:
    final = kind in ("resolved", "unaffected")
    base = dict(
        kind=kind, locale=locale, timezone=tz, now=NOW, incident_id="inc-7", seq=3, severity="critical",
        status="resolved" if kind == "resolved" else "investigating",
        title="API errors" if locale == "en" else "APIのエラー",
        message=("We are seeing elevated error rates on API requests." if locale == "en"
                 else "APIリクエストのエラー率が上昇しています。"),
        services=(("api", "ap-northeast-1"), ("dashboard", "ap-northeast-1")),
        started_at=NOW - timedelta(hours=2, minutes=5),
        eta=None, eta_state="unknown",
        next_update_at=None if final else NOW + timedelta(minutes=30),
        resolved_at=NOW if kind == "resolved" else None,
        customer_name="Example KK", contact_name="Sato",
        ticket_id="T-100" if kind == "ticket-ack" else None,
        ticket_subject="API returns 503" if kind == "ticket-ack" else None,
        status_url="https://status.example.com/status",
        unsubscribe_url="https://status.example.com/unsubscribe/tok123",
    )
    base.update(kw)
    return NoticeContent(**base)


def plain(html: str) -> str:
    """The HTML's visible text, roughly (head and hidden preview dropped, tags dropped, entities decoded)."""
    text = re.sub(r"<head>.*?</head>|<div style=\"display:none[^>]*>.*?</div>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&#39;", "'"), ("&#34;", '"'), ("&quot;", '"'),
                         ("&middot;", "·"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return re.sub(r"\s+", " ", text)


class _Chunks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "title") or (tag == "div" and "display:none" in (dict(attrs).get("style") or "")):
            self._skip += 1

    def handle_endtag(self, tag):
        if self._skip and tag in ("head", "title", "div"):
            self._skip -= 1

    def handle_data(self, data):
        data = re.sub(r"\s+", " ", data).strip(" ·")
        if data and not self._skip:
            self.chunks.append(data)


def visible_chunks(html: str) -> list[str]:
    parser = _Chunks()
    parser.feed(html)
    return parser.chunks


def in_order(text: str, *needles: str) -> bool:
    positions = [text.find(n) for n in needles]
    return all(p >= 0 for p in positions) and positions == sorted(positions)


# -- timefmt -----------------------------------------------------------------------------------


class TestTimes:
    def test_english_times_carry_the_zone(self):
        at = NOW + timedelta(minutes=30)
        assert format_time(at, "Asia/Tokyo", "en", now=NOW) == "10:30 AM JST"
        assert format_time(at, "America/New_York", "en", now=NOW) == "8:30 PM EST"
        assert format_time(at, "Australia/Sydney", "en", now=NOW) == "12:30 PM AEDT"
        assert format_time(NOW + timedelta(hours=3, minutes=30), "Australia/Sydney", "en", now=NOW) == "3:30 PM AEDT"

    def test_japanese_times(self):
        at = NOW + timedelta(minutes=30)
        assert format_time(at, "Asia/Tokyo", "ja", now=NOW) == "10:30（日本時間）"
        assert format_time(at, "Asia/Tokyo", "ja", now=NOW, with_date=True) == "11月25日 10:30（日本時間）"
        assert format_time(at, "Europe/Paris", "ja", now=NOW) == "2:30（CET）"
        assert format_time(at, "Asia/Dubai", "ja", now=NOW) == "5:30（UTC+4）"

    def test_date_when_the_day_differs_in_that_zone(self):
        late = datetime(2026, 11, 25, 12, 45, tzinfo=UTC)  # 21:45 JST
        nxt = late + timedelta(hours=3)  # 00:45 JST on the 26th, but still the 25th in UTC
        assert format_time(nxt, "Asia/Tokyo", "ja", now=late) == "11月26日 0:45（日本時間）"
        assert format_time(nxt, "Asia/Tokyo", "en", now=late) == "12:45 AM JST on 26 Nov"
        assert format_time(nxt, "UTC", "en", now=late) == "3:45 PM UTC"
        # In New York, NOW is still the 24th; 20:30 EST the same evening needs no date.
        assert format_time(NOW + timedelta(minutes=30), "America/New_York", "en", now=NOW) == "8:30 PM EST"
        assert format_time(NOW + timedelta(hours=5), "America/New_York", "en", now=NOW) == "1:00 AM EST on 25 Nov"
        new_year = datetime(2027, 1, 2, 3, 0, tzinfo=UTC)
        assert format_time(new_year, "Asia/Tokyo", "en", now=NOW) == "12:00 PM JST on 2 Jan 2027"
        assert format_time(new_year, "Asia/Tokyo", "ja", now=NOW) == "2027年1月2日 12:00（日本時間）"

    def test_offset_only_zones_show_utc_offsets(self):
        at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
        assert format_time(at, "Asia/Dubai", "en", now=at) == "2:00 PM UTC+4"
        assert format_time(at, "America/Sao_Paulo", "en", now=at) == "7:00 AM UTC-3"
        assert format_time(at, "Asia/Kathmandu", "en", now=at) == "3:45 PM UTC+5:45"
        assert zone_label(at.astimezone(__import__("zoneinfo").ZoneInfo("Etc/GMT-3"))) == "UTC+3"

    def test_london_dst_ends_late_october(self):
        # 2026-10-25 01:00 UTC: BST (UTC+1) -> GMT (UTC+0); 01:30 local happens twice.
        before = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
        after = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        assert format_time(before, "Europe/London", "en", now=before) == "1:30 AM BST"
        assert format_time(after, "Europe/London", "en", now=before) == "1:30 AM GMT"
        assert format_duration(after - before, "en") == "1 hour"

    def test_sydney_dst_starts_early_october(self):
        # 2026-10-04 02:00 AEST -> 03:00 AEDT.
        before = datetime(2026, 10, 3, 15, 30, tzinfo=UTC)
        after = datetime(2026, 10, 3, 16, 30, tzinfo=UTC)
        assert format_time(before, "Australia/Sydney", "en", now=before) == "1:30 AM AEST"
        assert format_time(after, "Australia/Sydney", "en", now=before) == "3:30 AM AEDT"
        assert format_time(after, "Australia/Sydney", "ja", now=before) == "3:30（AEDT）"

    def test_new_york_dst_ends_in_november(self):
        before = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
        after = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
        assert format_time(before, "America/New_York", "en", now=before) == "1:30 AM EDT"
        assert format_time(after, "America/New_York", "en", now=before) == "1:30 AM EST"

    def test_noon_and_midnight(self):
        noon = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
        assert format_time(noon, "Asia/Tokyo", "en", now=noon) == "12:00 PM JST"
        assert format_time(noon - timedelta(hours=12), "Asia/Tokyo", "en", now=noon) == "12:00 AM JST"

    def test_durations(self):
        assert format_duration(timedelta(hours=2, minutes=5)) == "2 hours 5 minutes"
        assert format_duration(timedelta(hours=2, minutes=5), "ja") == "2時間5分"
        assert format_duration(timedelta(hours=1, minutes=1)) == "1 hour 1 minute"
        assert format_duration(timedelta(minutes=45)) == "45 minutes"
        assert format_duration(timedelta(days=1, hours=3)) == "1 day 3 hours"
        assert format_duration(timedelta(days=1, hours=3), "ja") == "1日3時間"
        assert format_duration(timedelta(seconds=20)) == "less than a minute"
        assert format_duration(timedelta(seconds=20), "ja") == "1分未満"
        assert format_duration(timedelta(minutes=59, seconds=40)) == "1 hour"
        assert format_duration(timedelta(minutes=-5)) == "less than a minute"

    def test_naive_times_are_refused(self):
        with pytest.raises(ValueError):
            format_time(datetime(2026, 11, 25, 10, 0), "Asia/Tokyo", "en")

    def test_unknown_zone_falls_back_to_utc(self):
        assert format_time(NOW, "Mars/Olympus_Mons", "en", now=NOW) == "1:00 AM UTC"


# -- every kind, both locales ------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_every_kind_renders_cleanly(kind, locale):
    r = render(content(kind, locale))
    assert isinstance(r, RenderedNotice)
    assert r.subject and "\n" not in r.subject and "\r" not in r.subject
    for part in (r.subject, r.text, r.html):
        for leak in ("None", "{{", "}}", "{%", "%}", "Undefined", "[]", "()"):
            assert leak not in part, (leak, part)
        for jargon in ("critical", "severity", "P1", "inc-7", "RCA"):
            assert jargon not in part
    assert r.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{locale}">' in r.html
    # The footer: status page and unsubscribe, in both parts.
    for url in ("https://status.example.com/status", "https://status.example.com/unsubscribe/tok123"):
        assert url in r.text
        assert f'href="{url}"' in r.html
    # Only the customer's own affected services are named.
    sep = " (" if locale == "en" else "（"
    for part in (r.text, plain(r.html)):
        assert f"api{sep}ap-northeast-1" in part
        assert f"dashboard{sep}ap-northeast-1" in part
    # The text part says what the HTML says: every piece of visible HTML text is in it (the
    # badge and heading of the HTML are the subject line at the top of the text).
    assert r.text.startswith(r.subject + "\n")
    flat = re.sub(r"\s+", " ", r.text)
    for chunk in visible_chunks(r.html):
        assert chunk in flat, chunk


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("kind", ONGOING)
def test_three_parts_in_order(kind, locale):
    r = render(content(kind, locale))
    if locale == "en":
        parts = ("We are investigating the cause.", "We are seeing elevated error rates",
                 "We don't have a recovery estimate yet; we will share one as soon as we do.",
                 "Our next update will be by 10:30 AM JST.")
    else:
        parts = ("現在、原因を調査しております。", "APIリクエストのエラー率が上昇しています。",
                 "復旧の見込み時刻は、現時点では未定です。判明しだいお知らせいたします。",
                 "次回は 10:30（日本時間）までにご連絡いたします。")
    assert in_order(r.text, *parts), r.text
    assert in_order(plain(r.html), *parts)


@pytest.mark.parametrize("tz,en,ja", [
    ("Asia/Tokyo", "10:30 AM JST", "10:30（日本時間）"),
    ("America/New_York", "8:30 PM EST", "20:30（EST）"),
    ("Australia/Sydney", "12:30 PM AEDT", "12:30（AEDT）"),
])
def test_next_update_in_the_readers_zone(tz, en, ja):
    assert f"Our next update will be by {en}." in render(content("progress", "en", tz)).text
    assert f"次回は {ja}までにご連絡いたします。" in render(content("progress", "ja", tz)).text


@pytest.mark.parametrize("tz,en,ja", [
    ("Asia/Tokyo", "12:00 PM JST", "12:00（日本時間）頃"),
    ("America/New_York", "10:00 PM EST", "22:00（EST）頃"),
    ("Australia/Sydney", "2:00 PM AEDT", "14:00（AEDT）頃"),
])
def test_estimate_in_the_readers_zone(tz, en, ja):
    eta = NOW + timedelta(hours=2)
    r = render(content("progress", "en", tz, eta=eta, eta_state="future"))
    assert f"We expect your services to be back to normal by {en}." in r.text
    assert "don't have a recovery estimate" not in r.text
    assert ja in render(content("progress", "ja", tz, eta=eta, eta_state="future")).text


def test_dates_appear_when_the_day_differs():
    late = datetime(2026, 11, 25, 12, 45, tzinfo=UTC)  # 21:45 JST
    c = content("progress", "ja", now=late, next_update_at=late + timedelta(hours=3),
                eta=late + timedelta(hours=26), eta_state="future")
    text = render(c).text
    assert "次回は 11月26日 0:45（日本時間）までにご連絡いたします。" in text
    assert "11月26日 23:45（日本時間）頃の復旧を見込んでおります。" in text
    en = render(replace(c, locale="en")).text
    assert "Our next update will be by 12:45 AM JST on 26 Nov." in en


@pytest.mark.parametrize("locale", ["en", "ja"])
@pytest.mark.parametrize("kind", ONGOING)
def test_passed_estimate_is_being_revised_and_never_shown(kind, locale):
    past = NOW - timedelta(minutes=10)  # 9:50 JST
    r = render(content(kind, locale, status="identified", eta=past, eta_state="passed"))
    for part in (r.text, plain(r.html)):
        assert "9:50" not in part
        if locale == "en":
            assert "We are revising it" in part
            assert "don't have a recovery estimate" not in part
        else:
            assert "見込み時刻を見直しており" in part


def test_an_estimate_already_gone_by_is_never_shown_as_ahead():
    # Even if a caller says "future" for a time that has passed: only the domain knows whether it
    # was stated before, so the renderer calls it no estimate rather than an earlier one.
    r = render(content("progress", "en", eta=NOW - timedelta(minutes=1), eta_state="future"))
    assert "9:59" not in r.text and "We are revising it" not in r.text
    assert "We don't have a recovery estimate yet" in r.text


LONGER = {"en": "Recovery is taking longer than our earlier estimate.",
          "ja": "復旧に、前回お知らせした見込みより時間を要しております。"}
NONE_YET = {"en": "We don't have a recovery estimate yet; we will share one as soon as we do.",
            "ja": "復旧の見込み時刻は、現時点では未定です。判明しだいお知らせいたします。"}


def holding_update(locale: str, eta: datetime | None, composed_at: datetime, update_eta: datetime | None = None
                   ) -> RenderedNotice:
    """The words of the holding update a contact gets after a first notice, as the domain decides
    them (domain/incident.py, domain/audience.py, domain/content.py) and the renderer words them;
    ``update_eta``: instead, the progress notice of an update (at ``update_eta`` less a minute)
    that gives that estimate."""
    from domain import ledger
    from domain.audience import holding_job, plan_round
    from domain.affected import CustomerIndex
    from domain.content import notice_content
    from domain.incident import decide, keep_promise
    from schemas import Customer, IncidentEvent

    customer = Customer.model_validate({
        "customer_id": "c-42", "name": "Example KK", "locale": locale, "timezone": "Asia/Tokyo",
        "contacts": [{"email": "ops@example.jp", "name": "Sato"}],
        "services": [{"component": "api", "region": "ap-northeast-1"}]})
    index = CustomerIndex()
    index.put("c-42", [("api", "ap-northeast-1")])
    declared = decide(None, IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": NOW.isoformat(), "severity": "major",
        "title": {"en": "API errors", "ja": "APIのエラー"}, "components": ["api"], "update_interval_seconds": 1800,
        "eta": eta.isoformat() if eta else None}), NOW)
    (first,) = plan_round(declared.round, index, {"c-42": customer}.get, {}.get, [], "example.com")
    entry = ledger.record_sent(None, incident_id="inc-7", recipient=first.recipient, email=first.email,
                               message_id=first.message_id, kind=first.kind, seq=first.seq)
    if update_eta is not None:
        at = (update_eta - timedelta(minutes=1)).isoformat()
        updated = decide(declared.state, IncidentEvent.model_validate({
            "event_id": "e-2", "incident_id": "inc-7", "type": "updated", "at": at, "eta": update_eta.isoformat()}),
            update_eta - timedelta(minutes=1))
        (job,) = plan_round(updated.round, index, {"c-42": customer}.get, {"c-42": entry}.get, ["c-42"],
                            "example.com")
        assert job.kind == "progress"
    else:
        due = declared.state.promised_at
        held = keep_promise(declared.state, due, due).round
        job = holding_job(held, customer, entry, first.recipient, "example.com")
    return render(notice_content(job, composed_at))


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_an_estimate_given_earlier_that_went_by_is_taking_longer_in_text_and_html(locale):
    eta = NOW + timedelta(minutes=20)
    r = holding_update(locale, eta, NOW + timedelta(minutes=30))
    for part in (r.text, plain(r.html)):
        assert LONGER[locale] in part and NONE_YET[locale] not in part
        assert "10:20" not in part and "10:20 AM" not in part          # the passed time is not shown
    ahead = holding_update(locale, NOW + timedelta(hours=2), NOW + timedelta(minutes=30))
    for part in (ahead.text, plain(ahead.html)):
        assert LONGER[locale] not in part and NONE_YET[locale] not in part


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_with_no_estimate_ever_given_the_notice_says_there_is_none_yet_in_text_and_html(locale):
    r = holding_update(locale, None, NOW + timedelta(minutes=30))
    # an estimate given only by this very notice's update, gone by before the notice is composed
    # (a late record): never stated, so no "earlier estimate" either
    late = holding_update(locale, None, NOW + timedelta(minutes=30), update_eta=NOW + timedelta(minutes=10))
    for part in (r.text, plain(r.html), late.text, plain(late.html)):
        assert NONE_YET[locale] in part and LONGER[locale] not in part
        assert "見込みより" not in part and "longer than" not in part


def test_unknown_estimate_wording():
    assert "We don't have a recovery estimate yet; we will share one as soon as we do." in render(content()).text
    assert ("復旧の見込み時刻は、現時点では未定です。判明しだいお知らせいたします。"
            in render(content(locale="ja")).text)


def test_only_the_given_services():
    c = content("progress", "en", services=(("billing", "eu-west-1"),))
    r = render(c)
    assert "billing (eu-west-1)" in r.text and "<li>billing (eu-west-1)</li>" in r.html
    for other in ("api", "dashboard", "ap-northeast-1"):
        assert other not in r.text.replace("API errors", "") and other not in r.html.replace("API errors", "")


def test_html_escapes_ops_text_and_text_keeps_it_as_written():
    c = content("ticket-ack", "en", title="Errors <b>now</b> & then",
                message="Rolled back <script>alert('x')</script>\nsecond line",
                contact_name="<img src=x onerror=alert(1)>", customer_name="O'Brien & <Co>",
                ticket_id="T-1<", ticket_subject="<i>503</i>")
    r = render(c)
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html
    assert "<img" not in r.html and "<i>503" not in r.html and "<b>now" not in r.html
    assert "&lt;Co&gt;" in r.html
    assert "Rolled back &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;<br>\nsecond line" in r.html
    assert "Rolled back <script>alert('x')</script>\nsecond line" in r.text
    assert r.subject == "[Investigating] Errors <b>now</b> & then (your ticket T-1<)"


def test_subject_tags():
    assert render(content("progress", "en")).subject == "[Investigating] API errors"
    assert render(content("progress", "en", status="identified")).subject == "[Update] API errors"
    assert render(content("scheduled", "en", status="monitoring")).subject == "[Update] API errors"
    assert render(content("acknowledged", "en")).subject == "[Investigating] API errors"
    assert render(content("resolved", "en")).subject == "[Resolved] API errors"
    assert render(content("progress", "ja")).subject == "【調査中】APIのエラー"
    assert render(content("progress", "ja", status="identified")).subject == "【続報】APIのエラー"
    assert render(content("resolved", "ja")).subject == "【復旧】APIのエラー"
    assert render(content("ticket-ack", "ja")).subject == "【調査中】APIのエラー（お問い合わせ T-100）"
    assert render(content("unaffected", "en")).subject.startswith("[Update] API errors")


def test_subject_is_one_line_whatever_the_title():
    r = render(content(title="API\r\nBcc: evil@example.com\terrors"))
    assert r.subject == "[Investigating] API Bcc: evil@example.com errors"


@pytest.mark.parametrize("status,en,ja", [
    ("investigating", "We are investigating the cause.", "現在、原因を調査しております。"),
    ("identified", "We have found the cause and are working on a fix.", "原因を特定し、復旧に向けて対応しております。"),
    ("monitoring", "We have applied a fix and are watching closely", "対策を実施し、現在は安定して動作しているか"),
])
def test_status_in_plain_words(status, en, ja):
    assert en in render(content(status=status)).text
    assert ja in render(content(status=status, locale="ja")).text


def test_scheduled_says_nothing_new_and_repeats_status_and_estimate():
    eta = NOW + timedelta(hours=2)
    en = render(content("scheduled", "en", status="identified", eta=eta, eta_state="future")).text
    assert "Nothing has changed since our last update" in en
    assert in_order(en, "We have found the cause", "by 12:00 PM JST", "Our next update will be by 10:30 AM JST.")
    ja = render(content("scheduled", "ja", status="identified", eta=eta, eta_state="future")).text
    assert "前回のご連絡から状況に変化はございません" in ja
    assert in_order(ja, "原因を特定し", "12:00（日本時間）頃の復旧", "次回は 10:30（日本時間）までにご連絡いたします。")


def test_acknowledged_is_the_first_notice():
    en = render(content("acknowledged", "en")).text
    assert "An incident is affecting your services" in en
    ja = render(content("acknowledged", "ja")).text
    assert "影響する障害「APIのエラー」が発生しております" in ja
    assert "いつもご利用いただき" in ja and "Example KK\nSato 様" in ja


def test_ticket_ack_links_the_ticket():
    en = render(content("ticket-ack", "en")).text
    assert "Thank you for your ticket T-100 (“API returns 503”)." in en
    assert "We have linked your ticket to this incident" in en and "close the ticket once" in en
    ja = render(content("ticket-ack", "ja")).text
    assert "お問い合わせ（T-100「API returns 503」）をいただき" in ja
    assert "関連付けました" in ja and "クローズいたします" in ja
    assert "次回は" in ja and "ご連絡いたします" in ja


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_unaffected_ends_the_notices(locale):
    r = render(content("unaffected", locale))
    if locale == "en":
        assert "your services are no longer affected by this incident" in r.text
        assert "We won't send you further notices about this incident." in r.text
        assert "next update" not in r.text.lower() and "estimate" not in r.text
    else:
        assert "お客様のサービスへの影響は解消されました" in r.text
        assert "本件に関するご連絡は、これで最後となります。" in r.text
        assert "次回は" not in r.text and "見込み" not in r.text


@pytest.mark.parametrize("tz,started,ended", [
    ("Asia/Tokyo", "7:55 AM JST on 25 Nov", "10:00 AM JST on 25 Nov"),
    ("America/New_York", "5:55 PM EST on 24 Nov", "8:00 PM EST on 24 Nov"),
    ("Australia/Sydney", "9:55 AM AEDT on 25 Nov", "12:00 PM AEDT on 25 Nov"),
])
def test_resolved_is_the_one_remembered(tz, started, ended):
    r = render(content("resolved", "en", tz, message="A configuration change caused errors; we rolled it back.",
                       replies=True))
    text = r.text
    assert in_order(text, "This incident is resolved", "What happened",
                    "A configuration change caused errors; we rolled it back.",
                    f"Started: {started}", f"Ended: {ended}", "Duration: 2 hours 5 minutes",
                    "What you need to do", "Nothing, in most cases", "reply to this email",
                    "We're sorry for the disruption this caused.")
    assert "next update" not in text.lower()
    assert "estimate" not in text
    html = plain(r.html)
    assert started in html and ended in html and "2 hours 5 minutes" in html


def test_resolved_in_japanese():
    text = render(content("resolved", "ja", replies=True)).text
    assert in_order(text, "障害「APIのエラー」は復旧いたしました。", "発生：11月25日 7:55（日本時間）",
                    "復旧：11月25日 10:00（日本時間）", "影響時間：2時間5分",
                    "通常、お客様側でのご対応は不要です。", "このメールにご返信ください",
                    "ご不便をおかけし、誠に申し訳ございませんでした。")
    assert "次回は" not in text


def test_resolved_spanning_a_dst_change_counts_real_time():
    started = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    ended = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    text = render(content("resolved", "en", "Europe/London", now=ended, started_at=started,
                          resolved_at=ended)).text
    assert "Started: 1:30 AM BST on 25 Oct" in text
    assert "Ended: 1:30 AM GMT on 25 Oct" in text
    assert "Duration: 1 hour" in text


def test_japanese_reads_naturally():
    r = render(content("progress", "ja", status="identified", eta=NOW + timedelta(hours=2), eta_state="future",
                       replies=True))
    for phrase in ("次回は", "ご連絡いたします", "見込んでおります", "ご不便をおかけしており、申し訳ございません。",
                   "ご返信ください", "■ 現在の状況"):
        assert phrase in r.text
    for english in ("Update", "Next", "estimate", "Hello"):
        assert english not in r.text and english not in plain(r.html)


def test_without_names_or_links():
    r = render(content("progress", "en", contact_name=None, customer_name="", status_url="", unsubscribe_url=""))
    assert r.text.splitlines()[2] == "Hello,"
    assert "href" not in r.html
    ja = render(content("progress", "ja", contact_name=None, customer_name="")).text
    assert "ご担当者様" in ja


def test_a_promise_is_required_until_the_end():
    with pytest.raises(ValueError):
        render(content("progress", next_update_at=None))


def test_unknown_locale_falls_back_to_english():
    assert render(content(locale="fr", title="API errors")).subject == "[Investigating] API errors"


def test_environment_is_created_once():
    assert get_environment() is get_environment()
    assert get_environment().get_template("en/common.jinja") is get_environment().get_template("en/common.jinja")


def test_render_cache_says_exactly_what_render_says():
    """The cache renders each shape once and fills in names and links: it must give the same
    bytes as rendering each notice on its own, whatever the names contain."""
    import dataclasses
    import itertools

    from notifiers.render import RenderCache, render as render_one

    cache = RenderCache()
    names = ["", "Sato", "<b>Tom & \"Jerry\"</b>", "  O'Brien  ", "佐藤 花子"]
    for kind, locale, (contact, customer) in itertools.product(
            ["acknowledged", "progress", "scheduled", "resolved", "unaffected", "ticket-ack"], ["en", "ja"],
            [(names[i], names[(i + 2) % len(names)]) for i in range(len(names))]):
        base = content(kind=kind, locale=locale)
        c = dataclasses.replace(base, contact_name=contact, customer_name=customer,
                                unsubscribe_url=f"https://status.example.com/unsubscribe/t{len(contact)}?a=1&b=2",
                                feedback_url=f"https://status.example.com/feedback/f{len(contact)}.x&y")
        assert cache.render(c) == render_one(c), (kind, locale, contact, customer)
    assert len(cache._shapes) < 6 * 2 * len(names)  # shapes were shared


@pytest.mark.parametrize("name", ["Silverline Retail Pte. Ltd.", "Example KK"])
def test_a_customer_name_ending_in_a_full_stop_gets_no_second_one(name):
    out = render(content(customer_name=name))
    stated = f"a contact for {name}" + ("" if name.endswith(".") else ".")
    for text in (out.text, plain(out.html)):
        assert stated in text
        assert f"{name}." not in text or not name.endswith("."), text


FEEDBACK_URL = "https://status.example.com/feedback/aW5jLTc.Yy00Mg.3f9a1c2b04de.en.critical.sig"


@pytest.mark.parametrize("locale,question,apology", [
    ("en", "How easy was it to stay informed during this incident? (1 = very hard … 5 = very easy)",
     "We're sorry for the disruption this caused."),
    ("ja", "今回の障害について、状況を把握しやすかったでしょうか。（1: 分かりにくかった 〜 5: 分かりやすかった）",
     "ご不便をおかけし、誠に申し訳ございませんでした。"),
])
def test_the_resolved_notice_ends_with_the_feedback_question_and_five_links(locale, question, apology):
    r = render(content("resolved", locale, feedback_url=FEEDBACK_URL))
    links = [f"{FEEDBACK_URL}?score={n}" for n in range(1, 6)]
    assert in_order(r.text, apology, question, *links)
    assert r.text.count(question) == 1 and r.text.count("/feedback/") == 5
    assert in_order(plain(r.html), apology, question)
    assert re.findall(r'href="([^"]*/feedback/[^"]*)"', r.html) == links
    assert [re.sub(r"<[^>]+>", "", a) for a in re.findall(r'<a href="[^"]*/feedback/[^"]*"[^>]*>.*?</a>', r.html)] == [
        "1", "2", "3", "4", "5"]


@pytest.mark.parametrize("kind", [k for k in NOTICE_KINDS if k != "resolved"])
def test_only_the_resolved_notice_asks_for_feedback(kind):
    r = render(content(kind, "en", feedback_url=FEEDBACK_URL))
    assert "/feedback/" not in r.text and "/feedback/" not in r.html and "stay informed" not in r.text
    assert "/feedback/" not in render(content("resolved", "en")).text   # and only with a link to give
