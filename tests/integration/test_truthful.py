"""Notices that tell the truth, with a real broker, a real SMTP server and a real worker process:
an estimate or a next update already past is refused by the HTTP API (400 naming the field) and
dead-lettered from the topic with its reason while the stream goes on; ``OUTAGE_REPLY_TO`` is every
notice's ``Reply-To`` and the notices invite a reply only when it is set (in process and through a
delivery helper, which is given the setting on its own pipe)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import API_TOKEN, http
from tests.factories import load_customers, updated

pytestmark = pytest.mark.integration

CUSTOMERS = [
    {"customer_id": "c-jp", "name": "Example KK", "locale": "ja", "timezone": "Asia/Tokyo",
     "contacts": [{"email": "ops@example.jp", "name": "Sato"}],
     "services": [{"component": "api", "region": "ap-northeast-1"}]},
    {"customer_id": "c-au", "name": "Example Pty", "locale": "en", "timezone": "Australia/Sydney",
     "contacts": [{"email": "noc@example.com.au", "name": "Lee"}],
     "services": [{"component": "api", "region": "ap-northeast-1"}]},
]
DECLARE = {"severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"}, "components": ["api"],
           "update_interval_seconds": 3600}
INVITATION = ("reply to this email to reach our support team", "このメールにご返信ください。サポート担当者に届")


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat()


def now() -> datetime:
    return datetime.now(timezone.utc)


def parse(capture, entry) -> email.message.EmailMessage:
    return email.message_from_bytes(capture.path(entry["n"]).read_bytes(), policy=email.policy.default)


async def dead_letters(read_topic, key: str, count: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        letters = [d for d in await asyncio.to_thread(read_topic, "dead-letters") if d.get("key") == key]
        if len(letters) >= count or time.monotonic() > deadline:
            return letters
        await asyncio.sleep(0.5)


async def test_a_promise_already_past_is_refused_by_the_api_and_dead_lettered_from_the_topic(
        workers, broker, prefix, smtp, read_topic, produce):
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    worker = workers()
    url = worker.url + "/api/incidents"

    status, answer = await asyncio.to_thread(http, "POST", url, {**DECLARE, "eta": iso(now() - timedelta(minutes=5))},
                                             API_TOKEN)
    assert status == 400 and answer.get("fields") == ["eta"], answer
    assert answer["error"].startswith("eta: must be later than the event's time"), answer
    status, answer = await asyncio.to_thread(http, "POST", url, {**DECLARE, "at": iso(now()),
                                                                 "next_update_at": iso(now() - timedelta(hours=1))},
                                             API_TOKEN)
    assert status == 400 and answer.get("fields") == ["next_update_at"], answer

    status, answer = await asyncio.to_thread(http, "POST", url, {**DECLARE, "eta": iso(now() + timedelta(hours=2))},
                                             API_TOKEN)
    assert status == 201, answer
    incident = answer["incident_id"]
    await smtp.wait_for(2, timeout=30, incident=incident)
    status, answer = await asyncio.to_thread(http, "POST", f"{url}/{incident}/updates",
                                             {"status": "identified", "eta": iso(now() - timedelta(seconds=1))},
                                             API_TOKEN)
    assert status == 400 and answer.get("fields") == ["eta"], answer

    # on the topic: dead-lettered with the reason, and the next (valid) update still goes through
    at = now()
    produce("incident-events", incident, updated(incident, "u-past", at=iso(at), status="identified",
                                                 eta=iso(at - timedelta(minutes=1))))
    produce("incident-events", incident, updated(incident, "u-ok", at=iso(at), status="identified",
                                                 eta=iso(at + timedelta(hours=3))))
    (letter,) = await dead_letters(read_topic, incident, 1)
    assert letter["topic"] == prefix + "incident-events" and letter["error"].startswith(
        "eta: must be later than the event's time"), letter
    progress = await smtp.wait_for(2, timeout=30, incident=incident, kind="progress")
    assert {e["seq"] for e in progress} == {2}
    await asyncio.sleep(1)
    assert len(smtp.messages(incident=incident)) == 4        # 2 acknowledged + 2 progress, nothing else
    assert worker.alive()


@pytest.mark.parametrize("reply_to,helpers", [(None, "0"), ("Support <support@example.com>", "0"),
                                              ("Support <support@example.com>", "1")],
                         ids=["unset", "in-process", "delivery-helper"])
async def test_reply_to_is_on_every_notice_and_invites_a_reply_only_when_set(workers, broker, prefix, smtp,
                                                                              reply_to, helpers):
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    env = {"OUTAGE_DELIVERY_PROCESSES": helpers}
    if reply_to:
        env["OUTAGE_REPLY_TO"] = reply_to
    worker = workers(env)
    status, answer = await asyncio.to_thread(http, "POST", worker.url + "/api/incidents", DECLARE, API_TOKEN)
    assert status == 201, answer
    incident = answer["incident_id"]
    await smtp.wait_for(2, timeout=30, incident=incident)
    status, answer = await asyncio.to_thread(http, "POST", f"{worker.url}/api/incidents/{incident}/resolve",
                                             {"message": "Fixed."}, API_TOKEN)
    assert status == 202, answer
    await smtp.wait_for(2, timeout=30, incident=incident, kind="resolved")

    entries = smtp.messages(incident=incident)
    assert sorted(e["kind"] for e in entries) == ["acknowledged"] * 2 + ["resolved"] * 2
    for entry in entries:
        msg = parse(smtp, entry)
        assert msg["Reply-To"] == reply_to
        for part in ("plain", "html"):
            body = msg.get_body((part,)).get_content()
            assert any(words in body.lower() for words in INVITATION) == (reply_to is not None), (entry["kind"], body)
            if reply_to is None:
                assert "reply" not in body.lower() and "返信" not in body
