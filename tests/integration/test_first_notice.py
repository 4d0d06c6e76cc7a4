"""The foundation's vertical slice, with a real broker, a real SMTP server and a real worker process:
an ops person declares an incident and exactly the affected contacts get a correct first email."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from tests.conftest import API_TOKEN, http
from tests.factories import load_customers
from tests.integration.faults_kit import settled, until

pytestmark = pytest.mark.integration

CUSTOMERS = [
    # affected: api in ap-northeast-1 (Japanese, two contacts)
    {"customer_id": "c-jp", "name": "Example KK", "locale": "ja", "timezone": "Asia/Tokyo", "tier": "enterprise",
     "contacts": [{"email": "ops@example.jp", "name": "Sato"}, {"email": "dev@example.jp", "name": "Suzuki"}],
     "services": [{"component": "api", "region": "ap-northeast-1"},
                  {"component": "dashboard", "region": "ap-northeast-1"}]},
    # affected (English, Sydney)
    {"customer_id": "c-au", "name": "Example Pty", "locale": "en", "timezone": "Australia/Sydney",
     "contacts": [{"email": "noc@example.com.au", "name": "Lee"}],
     "services": [{"component": "api", "region": "ap-northeast-1"}, {"component": "api", "region": "us-east-1"}]},
    # right component, other region: nothing
    {"customer_id": "c-us", "name": "Example Inc", "locale": "en", "timezone": "America/New_York",
     "contacts": [{"email": "it@example.com"}], "services": [{"component": "api", "region": "us-east-1"}]},
    # right region, other component: nothing
    {"customer_id": "c-uk", "name": "Example Ltd", "locale": "en", "timezone": "Europe/London",
     "contacts": [{"email": "ops@example.co.uk"}], "services": [{"component": "dashboard", "region": "ap-northeast-1"}]},
]

DECLARE = {
    "severity": "major", "status": "investigating",
    "title": {"en": "API errors", "ja": "APIのエラー"},
    "message": {"en": "We are investigating elevated error rates.", "ja": "エラー率の上昇を調査しています。"},
    "components": ["api"], "regions": ["ap-northeast-1"], "update_interval_seconds": 3600,
}


def parse(capture, entry) -> email.message.EmailMessage:
    return email.message_from_bytes(capture.path(entry["n"]).read_bytes(), policy=email.policy.default)


def parts(msg) -> tuple[str, str]:
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    return text, html


@pytest.mark.parametrize("helpers", ["0", "1"], ids=["in-process", "delivery-helper"])
async def test_declared_incident_reaches_exactly_the_affected_contacts(workers, broker, prefix, smtp, read_topic,
                                                                        helpers):
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    worker = workers({"OUTAGE_DELIVERY_PROCESSES": helpers})
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, body
    incident_id = body["incident_id"]

    entries = await smtp.wait_for(3, timeout=30, incident=incident_id)
    await settled(broker.bootstrap, prefix, [worker])  # nothing else may follow: anything owed is sent by now
    entries = smtp.messages(incident=incident_id)
    assert sorted(e["recipients"][0] for e in entries) == ["dev@example.jp", "noc@example.com.au", "ops@example.jp"]
    assert all(e["kind"] == "acknowledged" and e["seq"] == 1 for e in entries)

    for entry in entries:
        msg = parse(smtp, entry)
        assert msg["From"] == "status@example.com"
        assert msg["X-Outage-Incident"] == incident_id
        assert msg["X-Outage-Notice"] == "acknowledged"
        assert msg["X-Outage-Seq"] == "1"
        assert msg["X-Outage-ETA"] == "unknown"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", msg["X-Outage-Next-Update"])
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["List-Unsubscribe"].startswith("<http")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(rf"<{re.escape(incident_id)}\.1\.acknowledged\.c-(jp|au)\.[0-9a-f]{{12}}@example\.com>",
                            msg["Message-ID"])
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["To"].addresses[0].addr_spec == entry["recipients"][0]

    jp = parse(smtp, next(e for e in entries if e["recipients"][0] == "ops@example.jp"))
    text, html = parts(jp)
    assert "APIのエラー" in jp["Subject"] and jp["Subject"].startswith("【")
    for part in (text, html):
        assert "エラー率の上昇を調査しています。" in part            # progress: the latest message
        assert "未定" in part                                        # estimate: not known yet
        assert "次回は" in part and "日本時間" in part               # next update, Tokyo time
        assert "api" in part and "dashboard" not in part             # only the affected service
    au = parse(smtp, next(e for e in entries if e["recipients"][0] == "noc@example.com.au"))
    text, html = parts(au)
    assert au["Subject"].startswith("[Investigating]")
    for part in (text, html):
        assert "We are investigating elevated error rates." in part
        assert "recovery estimate" in part.lower()
        assert re.search(r"AE[DS]T", part)                           # Sydney time shown with its zone
        assert "us-east-1" not in part                               # its unaffected service is not named

    notices = [n for n in read_topic("notices") if n["incident_id"] == incident_id]
    assert sorted(n["notice_id"] for n in notices) == sorted(e["message_id"] for e in entries)
    assert all(n["kind"] == "acknowledged" and n["seq"] == 1 and n["ticket_id"] is None for n in notices)


async def test_api_rejects_bad_calls(workers, produce):
    worker = workers()
    url = worker.url + "/api/incidents"
    assert http("POST", url, DECLARE)[0] == 401
    assert http("POST", url, DECLARE, token="wrong")[0] == 401
    status, body = http("POST", url, {**DECLARE, "components": []}, token=API_TOKEN)
    assert status == 400 and "components" in body["error"]
    status, body = http("POST", url, {**DECLARE, "at": "2026-11-25T10:00:00"}, token=API_TOKEN)
    assert status == 400 and "at" in body["fields"]
    assert http("POST", worker.url + "/api/incidents/nope/updates", {"message": "x"}, token=API_TOKEN)[0] == 404
    assert worker.get("/healthz")[0] == 200
    status, metrics = worker.get("/metrics")
    assert status == 200 and "outage_notices_sent_total" in metrics


async def test_bad_records_go_to_the_dead_letter_topic_and_the_stream_goes_on(workers, produce, broker, prefix, smtp,
                                                                               read_topic):
    worker = workers()
    produce("customers", "c-bad", b"{not json")
    produce("customers", "c-naive", {**CUSTOMERS[0], "customer_id": "c-naive", "timezone": "Mars/Base"})
    produce("incident-events", "inc-x", {"event_id": "e-x", "incident_id": "inc-x", "type": "exploded",
                                         "at": "2026-11-25T10:00:00+09:00"})
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201
    await smtp.wait_for(3, timeout=30, incident=body["incident_id"])
    letters = read_topic("dead-letters")
    reasons = {(d["key"], d["topic"].split(".", 1)[1]): d["error"] for d in letters}
    assert "JSON" in reasons[("c-bad", "customers")]
    assert "timezone" in reasons[("c-naive", "customers")]
    assert "type" in reasons[("inc-x", "incident-events")]
    assert all(d["value"] is not None and d["at"] for d in letters)


async def test_one_click_unsubscribe_stops_further_notices(workers, broker, prefix, smtp, read_topic):
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    worker = workers()
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    incident_id = body["incident_id"]
    entries = await smtp.wait_for(3, timeout=30, incident=incident_id)
    dev = parse(smtp, next(e for e in entries if e["recipients"][0] == "dev@example.jp"))
    link = dev["List-Unsubscribe"].strip("<>")
    assert http("GET", link)[0] == 200            # a prefetch changes nothing
    assert http("POST", link + "x")[0] == 404     # a forged token does nothing
    assert http("POST", link)[0] == 200
    # the request is applied before the update (the preferences topic is read in no set order
    # against the update's): on the broker (the page answers once the producer has it), then handled
    assert await until(lambda: read_topic("preferences", idle=0.5), 30), "the unsubscribe request never reached the broker"
    await settled(broker.bootstrap, prefix, [worker])
    http("POST", f"{worker.url}/api/incidents/{incident_id}/updates", {"status": "identified"}, token=API_TOKEN)
    await smtp.wait_for(2, timeout=30, incident=incident_id, kind="progress")
    await settled(broker.bootstrap, prefix, [worker])  # a progress notice to the unsubscribed contact would be sent by now
    progress = sorted(e["recipients"][0] for e in smtp.messages(incident=incident_id, kind="progress"))
    assert progress == ["noc@example.com.au", "ops@example.jp"]
