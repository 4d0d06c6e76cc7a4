"""The preferences and unsubscribe pages and the ops API of preferences and suppressions
(streams/preferences_web.py), served by a worker's web application in process: what each route
answers, in which language, and what it sends to the preferences and suppressions topics."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.settings import Settings
from domain.ids import contact_key
from domain.links import PREFERENCES, UNSUBSCRIBE, contact_token, unsubscribe_token
from domain.preferences import PreferenceBook
from domain.suppression import Suppression, SuppressionBook
from streams.customer_finder import FinderUnavailable
from streams.feedback_view import FeedbackView
from streams.incident_view import IncidentView
from streams.preferences import Preferences
from streams.preferences_web import PreferencesDesk
from streams.suppressions import Suppressions
from streams.views import StoredContact, StoredCustomer
from streams.web import ROUTES, register_pages
from tests.inmemory import RecordingTopic

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
TOKEN = "t"
A, B = "ops@example.jp", "dev@example.jp"
CUSTOMER = StoredCustomer("c-1", "Example KK", "ja", "Asia/Tokyo", contacts=(StoredContact(A), StoredContact(B)))


class Web:
    def __init__(self, client, requests: RecordingTopic, suppressions: RecordingTopic, book: PreferenceBook,
                 suppressed: SuppressionBook, finder, reach) -> None:
        self.client, self.requests, self.suppressions = client, requests, suppressions
        self.book, self.suppressed, self.finder, self.reach = book, suppressed, finder, reach

    async def call(self, method: str, path: str, token: str | None = TOKEN, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.request(method, path, headers=headers, **kw)
        text = await response.text()
        return response.status, (json.loads(text) if response.content_type == "application/json" else text)


class Reach:
    reachable = True


class Finder:
    def __init__(self) -> None:
        self.down = False

    async def find(self, customer_id: str):
        if self.down:
            raise FinderUnavailable("KafkaConnectionError")
        return CUSTOMER if customer_id == "c-1" else None


@pytest.fixture
async def web(tmp_path):
    settings = Settings(broker="127.0.0.1:9", data_dir=tmp_path, api_token=TOKEN, secret="new-secret",
                        secret_previous="old-secret")
    app = faust.App("t-preferences-web", broker="kafka://127.0.0.1:9", datadir=str(tmp_path), autodiscover=False,
                    web_enabled=True, web_in_thread=False, web_tables_enabled=False, web_router_enabled=False,
                    web_stats_enabled=False, web_graph_enabled=False, web_metrics_enabled=False)
    requests, suppressions = RecordingTopic(), RecordingTopic()
    book, suppressed, finder = PreferenceBook(), SuppressionBook(), Finder()
    reach = Reach()
    desk = PreferencesDesk(keys=settings.verification_keys(),
                           requests=Preferences(topic=requests, ledger=None, dlq=None, clock=lambda: T0),
                           book=book, suppressions=Suppressions(topic=suppressions, book=suppressed, clock=lambda: T0),
                           find=finder.find, reachable=lambda: reach.reachable)
    view = IncidentView(bootstrap_servers=["127.0.0.1:9"], topic="t.incidents-changelog", partitions=1)
    answers = FeedbackView(bootstrap_servers=["127.0.0.1:9"], topic="t.feedback", partitions=1)
    register_pages(app, settings=settings, view=view, reach=None, events_topic=None, readiness=lambda: (True, "ok"),
                   clock=lambda: T0, preferences=desk, feedback=None, feedback_view=answers)
    app.web.blueprints.apply(app.web)
    async with TestClient(TestServer(app.web.web_app)) as client:
        yield Web(client, requests, suppressions, book, suppressed, finder, reach)


def token(purpose: str = PREFERENCES, locale: str = "ja", email: str = A, key: bytes = b"new-secret") -> str:
    return contact_token(key, purpose, "c-1", contact_key(email), locale, email)


def checked(page: str) -> list[str]:
    return re.findall(r'value="([a-z-]+)" required checked', page)


async def test_the_page_shows_the_choice_in_the_contacts_language_and_a_get_changes_nothing(web):
    status, page = await web.call("GET", f"/preferences/{token()}", token=None)
    assert status == 200 and '<html lang="ja">' in page and A in page and checked(page) == ["all"]
    assert "発生と復旧のみ" in page and 'name="viewport"' in page
    status, page = await web.call("GET", f"/preferences/{token(locale='en', key=b'old-secret')}", token=None)
    assert status == 200 and '<html lang="en">' in page and "Only the start and the end" in page
    assert web.requests.sent == []


async def test_a_post_records_the_choice_and_offers_undo_back_to_the_earlier_one(web):
    status, page = await web.call("POST", f"/preferences/{token()}", token=None, data={"receive": "start-and-end"})
    assert status == 200 and "設定を保存しました。" in page and A in page
    assert '<input type="hidden" name="receive" value="all">' in page          # undo: back to every notice
    (request,) = web.requests.records()
    assert web.requests.sent[0][0] == b"c-1"
    assert {k: request[k] for k in ("customer_id", "recipient", "action", "receive")} == {
        "customer_id": "c-1", "recipient": contact_key(A), "action": "receive", "receive": "start-and-end"}
    status, page = await web.call("GET", f"/preferences/{token()}", token=None)
    assert checked(page) == ["start-and-end"] and '<input type="hidden" name="receive" value="all">' in page
    status, page = await web.call("POST", f"/preferences/{token()}", token=None, data={"receive": "all"})   # undo
    assert status == 200 and [r["receive"] for r in web.requests.records()] == ["start-and-end", "all"]


async def test_a_bad_choice_a_forged_link_and_a_broker_that_does_not_take_it(web):
    status, page = await web.call("POST", f"/preferences/{token()}", token=None, data={"receive": "some"})
    assert status == 400 and "いずれかの項目をお選びください。" in page
    status, _ = await web.call("POST", f"/preferences/{token()}", token=None, data={"receive": ["all", "none"]})
    assert status == 400
    forged = token(key=b"someone-else")
    for method in ("GET", "POST"):
        status, page = await web.call(method, f"/preferences/{forged}", token=None, data={"receive": "none"})
        assert status == 404 and "This link is not valid." in page
    status, _ = await web.call("GET", f"/preferences/{token(UNSUBSCRIBE)}", token=None)   # another purpose's
    assert status == 404
    web.requests.fail = True
    status, page = await web.call("POST", f"/preferences/{token()}", token=None, data={"receive": "none"})
    assert status == 503 and "しばらくしてから" in page
    status, _ = await web.call("POST", f"/preferences/{token()}", token=None, data=b"x" * (1024 * 1024 + 1))
    assert status == 413
    assert web.requests.sent == []


async def test_the_unsubscribe_page_names_the_address_and_its_post_stops_the_emails_with_undo(web):
    link = f"/unsubscribe/{token(UNSUBSCRIBE, locale='en')}"
    status, page = await web.call("GET", link, token=None)
    assert status == 200 and '<html lang="en">' in page and A in page and "Stop these emails" in page
    assert 'name="viewport"' in page and web.requests.sent == []             # a prefetch changes nothing
    status, page = await web.call("POST", link, token=None, data={"List-Unsubscribe": "One-Click"})
    assert status == 200 and "You will receive no more incident notices at this address." in page and A in page
    assert '<input type="hidden" name="receive" value="all">' in page and "../preferences/" in page
    assert [r["action"] for r in web.requests.records()] == ["unsubscribe"]
    status, page = await web.call("POST", link, token=None, data={"receive": "all"})   # undo
    assert status == 200 and "Your choice is saved." in page
    assert [(r["action"], r.get("receive")) for r in web.requests.records()] == [("unsubscribe", None),
                                                                                  ("receive", "all")]
    # in Japanese too; and an earlier notice's link still works, in English, without the address
    status, page = await web.call("GET", f"/unsubscribe/{token(UNSUBSCRIBE)}", token=None)
    assert '<html lang="ja">' in page and "配信を停止する" in page
    earlier = f"/unsubscribe/{unsubscribe_token(b'old-secret', 'c-1', contact_key(B))}"
    status, page = await web.call("POST", earlier, token=None)
    assert status == 200 and "this address" in page and B not in page
    status, _ = await web.call("POST", f"/unsubscribe/{token(UNSUBSCRIBE, key=b'x')}", token=None)
    assert status == 404 and len(web.requests.sent) == 3


async def test_ops_read_and_set_each_contacts_choice_and_undo_an_unsubscribe(web):
    for method, path in (("GET", "/api/customers/c-1/preferences"), ("PUT", "/api/customers/c-1/preferences"),
                         ("GET", "/api/suppressions"), ("DELETE", f"/api/suppressions/{A}")):
        assert (await web.call(method, path, token=None, json={}))[0] == 401
        assert (await web.call(method, path, token="wrong", json={}))[0] == 401
    web.book.put({"customer_id": "c-1", "recipient": contact_key(A), "action": "unsubscribe"})
    web.suppressed.put(Suppression(B, "2026-11-25T01:00:00+00:00", 550, "550 5.1.1 gone"))
    status, body = await web.call("GET", "/api/customers/c-1/preferences")
    assert status == 200 and body == {"customer_id": "c-1", "contacts": [
        {"email": A, "receive": "all", "unsubscribed": True, "suppressed": False},
        {"email": B, "receive": "all", "unsubscribed": False, "suppressed": True}]}
    status, body = await web.call("PUT", "/api/customers/c-1/preferences", json={"email": A.upper(), "receive": "all"})
    assert status == 202 and body == {"customer_id": "c-1", "email": A, "receive": "all"}
    assert [(r["recipient"], r["receive"]) for r in web.requests.records()] == [(contact_key(A), "all")]
    status, body = await web.call("GET", "/api/customers/c-1/preferences")
    assert body["contacts"][0] == {"email": A, "receive": "all", "unsubscribed": False, "suppressed": False}


@pytest.mark.parametrize("path, body, status, fields", [
    ("/api/customers/c-1/preferences", {"email": A, "receive": "some"}, 400, ["receive"]),
    ("/api/customers/c-1/preferences", {"receive": "all"}, 400, ["email"]),
    ("/api/customers/c-1/preferences", {"email": 7, "receive": None}, 400, ["email", "receive"]),
    ("/api/customers/c-9/preferences", {"email": A, "receive": "all"}, 404, None),
    ("/api/customers/c-1/preferences", {"email": "stranger@example.jp", "receive": "all"}, 404, None),
])
async def test_a_bad_put_names_the_field_and_an_unknown_customer_or_address_is_404(web, path, body, status, fields):
    got, answer = await web.call("PUT", path, json=body)
    assert got == status and ("fields" not in answer if fields is None else answer["fields"] == fields)
    assert web.requests.sent == []


async def test_bad_bodies_and_an_unreadable_customers_topic_are_never_a_500(web):
    assert (await web.call("PUT", "/api/customers/c-1/preferences", data=b"[1]"))[0] == 400
    assert (await web.call("PUT", "/api/customers/c-1/preferences", data=b"x" * (1024 * 1024 + 1)))[0] == 413
    assert (await web.call("GET", "/api/customers/c-9/preferences"))[0] == 404
    web.finder.down = True
    status, body = await web.call("GET", "/api/customers/c-1/preferences")
    assert status == 503 and body["retry_after_seconds"] == 5


async def test_ops_list_and_lift_suppressions(web):
    web.suppressed.put(Suppression(A, "2026-11-25T01:00:00+00:00", 550, "550 5.1.1 gone"))
    status, body = await web.call("GET", "/api/suppressions")
    assert status == 200 and body == {"suppressions": [{"email": A, "at": "2026-11-25T01:00:00+00:00",
                                                        "reason": "550 5.1.1 gone"}]}
    status, _ = await web.call("DELETE", f"/api/suppressions/{B}")
    assert status == 404 and web.suppressions.sent == []
    status, body = await web.call("DELETE", f"/api/suppressions/{A.upper()}")
    assert status == 202 and web.suppressions.sent == [(A.encode(), None)]     # a tombstone keyed by the address
    assert (await web.call("GET", "/api/suppressions"))[1] == {"suppressions": []}


def test_every_new_route_is_declared_with_who_may_read_it():
    access = {r.path: dict(r.access) for r in ROUTES}
    assert access["/preferences/{token}"] == {"GET": "signed", "POST": "signed"}
    assert access["/unsubscribe/{token}"] == {"GET": "signed", "POST": "signed"}
    assert access["/api/customers/{customer_id}/preferences"] == {"GET": "token", "PUT": "token"}
    assert access["/api/suppressions"] == {"GET": "token"}
    assert access["/api/suppressions/{email}"] == {"DELETE": "token"}


async def test_no_broker_or_a_refusing_one_is_a_503_and_nothing_is_recorded_as_done(web):
    web.suppressed.put(Suppression(A, "2026-11-25T01:00:00+00:00", 550, "550 5.1.1 gone"))
    web.reach.reachable = False                       # refused at once, not held until the broker is back
    status, page = await web.call("POST", f"/preferences/{token()}", token=None, data={"receive": "none"})
    assert status == 503 and checked(page) == ["all"]
    status, page = await web.call("POST", f"/unsubscribe/{token(UNSUBSCRIBE)}", token=None)
    assert status == 503 and "配信を停止する" in page                 # the button again
    status, body = await web.call("PUT", "/api/customers/c-1/preferences", json={"email": A, "receive": "none"})
    assert status == 503 and body["retry_after_seconds"] == 5
    assert (await web.call("DELETE", f"/api/suppressions/{A}"))[0] == 503
    assert web.requests.sent == [] and web.suppressions.sent == [] and web.book.entry("c-1") is None
    web.reach.reachable = True
    web.suppressions.fail = web.requests.fail = True  # reachable, but the broker does not take it
    assert (await web.call("DELETE", f"/api/suppressions/{A}"))[0] == 503
    assert (await web.call("PUT", "/api/customers/c-1/preferences", json={"email": A, "receive": "none"}))[0] == 503
    assert web.suppressed.suppressed(A) and web.book.entry("c-1") is None
