"""A ticket opened about a known incident is answered at once and closed out when it ends
(real broker, SMTP server and worker process)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time

import pytest

from outage.cli import main as cli
from tests import factories
from tests.conftest import API_TOKEN, http
from tests.factories import contact
from tests.integration.faults_kit import settled

pytestmark = pytest.mark.integration

A = {"customer_id": "c-a", "name": "Alpha KK", "locale": "ja", "timezone": "Asia/Tokyo",
     "contacts": [{"email": "ops@alpha.example.jp"}], "services": [{"component": "api", "region": "ap-northeast-1"}]}
B = {"customer_id": "c-b", "name": "Beta Ltd", "locale": "en", "timezone": "Europe/London",
     "contacts": [{"email": "ops@beta.example.com"}], "services": [{"component": "api", "region": "eu-west-1"}]}


async def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def ticket(produce, ticket_id, customer_id, requester, type_="opened", **extra):
    produce("ticket-events", ticket_id, factories.ticket(
        ticket_id, customer_id, contact(requester, "Suzuki"), type=type_, event_id=f"t-{ticket_id}-{type_}",
        at="2026-11-25T10:05:00+09:00", **extra))


async def test_ticket_about_a_known_incident_is_answered_and_closed_out(workers, produce, smtp, read_topic,
                                                                        base_env, monkeypatch, broker, prefix):
    for c in (A, B):
        produce("customers", c["customer_id"], c)
    worker = workers()
    status, body = http("POST", worker.url + "/api/incidents", {
        "severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"},
        "message": {"en": "Investigating.", "ja": "調査しております。"},
        "components": ["api"], "regions": ["ap-northeast-1"], "update_interval_seconds": 3600}, token=API_TOKEN)
    assert status == 201
    inc = body["incident_id"]
    await smtp.wait_for(1, timeout=20, incident=inc)

    # the affected customer's developer opens a ticket (through the CLI, as a help desk bridge would)
    for key, value in base_env.items():
        monkeypatch.setenv(key, value)
    assert cli(["ticket", "open", "T-100", "--customer", "c-a", "--subject", "API returns 503",
                "--requester", "dev@alpha.example.jp", "--requester-name", "Suzuki"]) == 0
    # an unaffected customer's ticket and one of an unknown customer
    ticket(produce, "T-200", "c-b", "dev@beta.example.com")
    ticket(produce, "T-300", "c-nobody", "x@nobody.example.com")

    acks = await smtp.wait_for(1, timeout=20, kind="ticket-ack")
    assert acks[0]["recipients"] == ["dev@alpha.example.jp"]
    msg = email.message_from_bytes(smtp.path(acks[0]["n"]).read_bytes(), policy=email.policy.default)
    assert msg["Message-ID"].startswith(f"<{inc}.1.ticket-ack.c-a.T-100@")
    assert msg["X-Outage-Next-Update"] and msg["X-Outage-ETA"] == "unknown"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "T-100" in text and "次回は" in text and "未定" in text

    updates = await wait_until(lambda: [u for u in read_topic("ticket-updates") if u["ticket_id"] == "T-100"],
                               15, "the linked ticket update")
    assert [u["action"] for u in updates] == ["linked"] and updates[0]["incident_id"] == inc
    assert "APIのエラー" in updates[0]["comment"] and "次回は" in updates[0]["comment"]

    # the requester is now in the audience; the ticket hears of every update and is closed out at the end
    http("POST", f"{worker.url}/api/incidents/{inc}/updates", {"status": "identified", "message": "Cause found."},
         token=API_TOKEN)
    await smtp.wait_for(1, timeout=20, to="dev@alpha.example.jp", kind="progress")
    http("POST", f"{worker.url}/api/incidents/{inc}/resolve", {"message": "Fixed."}, token=API_TOKEN)
    await smtp.wait_for(1, timeout=20, to="dev@alpha.example.jp", kind="resolved")
    updates = await wait_until(
        lambda: (u := [x for x in read_topic("ticket-updates") if x["ticket_id"] == "T-100"]) and len(u) >= 3 and u,
        15, "three ticket updates")
    assert [u["action"] for u in updates] == ["linked", "incident-updated", "incident-resolved"]
    assert "Fixed." in updates[-1]["comment"]

    await settled(broker.bootstrap, prefix, [worker])   # the other tickets are handled by now
    assert smtp.messages(to="dev@beta.example.com") == []          # not about a known incident: no reply
    assert [u for u in read_topic("ticket-updates") if u["ticket_id"] == "T-200"] == []
    letters = [d for d in read_topic("dead-letters") if "c-nobody" in (d["value"] or "")]
    assert letters and "unknown customer" in letters[0]["error"]
    thread = smtp.messages(to="dev@alpha.example.jp")
    assert [e["kind"] for e in thread] == ["ticket-ack", "progress", "resolved"]
    assert all(e["in_reply_to"] == thread[0]["message_id"] for e in thread[1:])
