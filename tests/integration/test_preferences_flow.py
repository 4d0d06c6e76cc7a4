"""Issue 16's "done when", on real workers, a real broker and an SMTP server: two workers (each
composing in a delivery helper process); a contact unsubscribed with the one-click link (on one
worker) and one who chose ``none`` on the preferences page (on the other) get nothing more while
the customers' other contacts get the update; an address the server refuses with 550 is tried once
and not again; ops undo both (the preferences API and the suppressions API, on either worker) and
the next round reaches all three. A contact set to ``start-and-end`` through the API gets the
acknowledgement (promising no next update) and the resolution only."""

from __future__ import annotations

import json

import pytest

from devtools.http import post_form
from domain import preferences as P
from domain.ids import contact_key
from domain.links import PREFERENCES, UNSUBSCRIBE, contact_token
from streams import topics as T
from tests.conftest import API_TOKEN, http
from tests.factories import customer, load_customers
from tests.integration.faults_kit import (  # noqa: F401 - faulty is a fixture
    declare_event, faulty, ready, settle, smtp_env, until)

pytestmark = pytest.mark.integration

UNSUB, STAYS0 = "unsub@pf0.example.com", "stays@pf0.example.com"
NONE, STAYS1, BAD = "none@pf1.example.com", "stays@pf1.example.com", "bad@pf1.example.com"
QUIET, LOUD = "quiet@pf2.example.com", "loud@pf2.example.com"
CUSTOMERS = [customer("c-pf-0", locale="en", contacts=[UNSUB, STAYS0], services=[("api", "ap-northeast-1")]),
             customer("c-pf-1", locale="ja", contacts=[NONE, STAYS1, BAD], services=[("api", "ap-northeast-1")]),
             customer("c-pf-2", locale="en", contacts=[QUIET, LOUD], services=[("api", "ap-northeast-1")])]
SECRET = b"test-secret"   # the workers' OUTAGE_SECRET (tests/conftest.py): the links the notices carry
WAIT = 40.0
WHO = {"unsub": ("c-pf-0", UNSUB), "none": ("c-pf-1", NONE), "quiet": ("c-pf-2", QUIET)}


def link(purpose: str, customer_id: str, email: str, locale: str) -> str:
    return f"/{purpose}/{contact_token(SECRET, purpose, customer_id, contact_key(email), locale, email)}"


def ledger(bootstrap: str, prefix: str) -> dict[str, dict]:
    """The latest ledger entry of each customer, from the ledger table's changelog."""
    from kafka import KafkaConsumer, TopicPartition

    topic = f"{prefix}worker-{T.LEDGER_TABLE}-changelog"
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return {json.loads(m.key): json.loads(m.value) if m.value is not None else None for m in consumer}
    finally:
        consumer.close()


def kinds(server, incident: str, email: str) -> list[str]:
    return [m.kind for m in server.by_recipient(incident).get(email, [])]


def update(worker, incident: str, n: int) -> None:
    status, body = http("POST", worker.url + f"/api/incidents/{incident}/updates",
                        {"status": "identified", "message": f"news {n}"}, token=API_TOKEN)
    assert status == 202, body


@pytest.mark.timeout(180)
async def test_choices_and_suppressions_hold_across_workers_until_ops_undo_them(workers, faulty, broker, prefix):
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    server = faulty(refuse=(BAD,))
    env = {**smtp_env(server.serve()), "OUTAGE_DELIVERY_PROCESSES": "1"}   # the helpers compose too
    one, other = workers(env, ready=False), workers(env, ready=False)
    await ready(one, other)

    def ledger_says(**wanted: str) -> bool:   # the choices reached the customers' ledger entries
        entries = ledger(broker.bootstrap, prefix)
        return all(P.receive_of(entries.get(cid), contact_key(email)) == receive
                   for (cid, email), receive in ((WHO[name], r) for name, r in wanted.items()))

    status, body = http("PUT", other.url + "/api/customers/c-pf-2/preferences",
                        {"email": QUIET, "receive": "start-and-end"}, token=API_TOKEN)
    assert status == 202, body
    assert await until(lambda: ledger_says(quiet="start-and-end"), WAIT)
    incident = declare_event(one)["incident_id"]
    assert await until(lambda: all(kinds(server, incident, e) == ["acknowledged"]
                                   for e in (UNSUB, STAYS0, NONE, STAYS1, QUIET, LOUD)), WAIT)
    assert server.rcpt_attempts[BAD] == 1
    first = {m.rcpt: m for m in server.received(incident)}
    assert first[QUIET].next_update is None and first[LOUD].next_update is not None   # no promise to start-and-end

    # the refusal is suppressed and listed by both workers; the links open their pages (a GET changes nothing)
    def listed(worker) -> bool:
        status, body = http("GET", worker.url + "/api/suppressions", token=API_TOKEN)
        return status == 200 and [s["email"] for s in body["suppressions"]] == [BAD] \
            and body["suppressions"][0]["reason"].startswith("550 ")
    assert await until(lambda: listed(one) and listed(other), WAIT)
    status, page = other.get(link(UNSUBSCRIBE, "c-pf-0", UNSUB, "en"))
    assert status == 200 and UNSUB in page and "Stop these emails" in page
    status, page = one.get(link(PREFERENCES, "c-pf-1", NONE, "ja"))
    assert status == 200 and NONE in page and '<html lang="ja">' in page
    # the one-click unsubscribe on one worker, the preferences page's "none" on the other
    status, page = post_form(other.url + link(UNSUBSCRIBE, "c-pf-0", UNSUB, "en"),
                             {"List-Unsubscribe": "One-Click"})
    assert status == 200 and "no more incident notices" in page
    status, page = post_form(one.url + link(PREFERENCES, "c-pf-1", NONE, "ja"), {"receive": "none"})
    assert status == 200 and "設定を保存しました。" in page

    assert await until(lambda: ledger_says(unsub="none", none="none"), WAIT)

    def answered(worker) -> bool:   # the ops view of the choices, the same on both workers
        status, body = http("GET", worker.url + "/api/customers/c-pf-1/preferences", token=API_TOKEN)
        return status == 200 and body["contacts"] == [
            {"email": NONE, "receive": "none", "unsubscribed": False, "suppressed": False},
            {"email": STAYS1, "receive": "all", "unsubscribed": False, "suppressed": False},
            {"email": BAD, "receive": "all", "unsubscribed": False, "suppressed": True}]
    assert await until(lambda: answered(one) and answered(other), WAIT)

    update(one, incident, 1)
    assert await until(lambda: all(kinds(server, incident, e)[-1:] == ["progress"] for e in (STAYS0, STAYS1, LOUD)),
                       WAIT)
    await settle(server, quiet=1.5, limit=10)   # the round is over: nothing more arrives
    # nothing for the two who opted out nor the start-and-end contact, no second try of the refused address
    assert kinds(server, incident, UNSUB) == kinds(server, incident, NONE) == kinds(server, incident, QUIET) == [
        "acknowledged"]
    assert server.rcpt_attempts[BAD] == 1

    # ops undo: the choices on one worker, the suppression lifted on the other
    for cid, email in (("c-pf-0", UNSUB), ("c-pf-1", NONE)):
        status, body = http("PUT", one.url + f"/api/customers/{cid}/preferences", {"email": email, "receive": "all"},
                            token=API_TOKEN)
        assert status == 202, body
    server.refuse.clear()
    status, body = http("DELETE", other.url + f"/api/suppressions/{BAD}", token=API_TOKEN)
    assert status == 202, body
    assert http("DELETE", other.url + f"/api/suppressions/{BAD}", token=API_TOKEN)[0] == 404
    assert await until(lambda: ledger_says(unsub="all", none="all"), WAIT)
    assert await until(lambda: all(http("GET", w.url + "/api/suppressions", token=API_TOKEN)[1] == {"suppressions": []}
                                   for w in (one, other)), WAIT)

    update(one, incident, 2)
    assert await until(lambda: kinds(server, incident, UNSUB)[-1:] == ["progress"]
                       and kinds(server, incident, NONE)[-1:] == ["progress"]
                       and kinds(server, incident, BAD) == ["acknowledged"], WAIT)
    assert server.rcpt_attempts[BAD] == 2
    status, body = http("POST", other.url + f"/api/incidents/{incident}/resolve", {"message": "Fixed."},
                        token=API_TOKEN)
    assert status == 202, body
    everyone = (UNSUB, STAYS0, NONE, STAYS1, BAD, QUIET, LOUD)
    assert await until(lambda: all(kinds(server, incident, e)[-1:] == ["resolved"] for e in everyone), WAIT)
    assert kinds(server, incident, QUIET) == ["acknowledged", "resolved"]
    assert server.duplicates(incident) == 0
