"""The notice schedule, end to end with a real broker, SMTP server and worker processes, on
intervals of a few seconds: kept promises, progress, a passed estimate, scope changes,
resolution, and a worker restart in the middle."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import API_TOKEN, http
from tests.integration.faults_kit import passed, settled

pytestmark = pytest.mark.integration

A = {"customer_id": "c-a", "name": "Alpha KK", "locale": "ja", "timezone": "Asia/Tokyo",
     "contacts": [{"email": "a1@example.jp"}, {"email": "a2@example.jp"}],
     "services": [{"component": "api", "region": "ap-northeast-1"}]}
B = {"customer_id": "c-b", "name": "Beta Ltd", "locale": "en", "timezone": "Europe/London",
     "contacts": [{"email": "b@example.co.uk"}], "services": [{"component": "billing", "region": "ap-northeast-1"}]}
C = {"customer_id": "c-c", "name": "Gamma Inc", "locale": "en", "timezone": "America/New_York",
     "contacts": [{"email": "c@example.com"}], "services": [{"component": "api", "region": "us-east-1"}]}


def iso(dt: datetime) -> str:
    return dt.isoformat()


def now() -> datetime:
    return datetime.now(timezone.utc)


class Mailbox:
    """What each recipient received, parsed, in arrival order."""

    def __init__(self, capture, incident_id: str) -> None:
        self.capture, self.incident_id = capture, incident_id

    def by_recipient(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = defaultdict(list)
        for entry in self.capture.messages(incident=self.incident_id):
            msg = email.message_from_bytes(self.capture.path(entry["n"]).read_bytes(), policy=email.policy.default)
            out[entry["recipients"][0]].append({
                "kind": msg["X-Outage-Notice"], "seq": int(msg["X-Outage-Seq"]), "id": msg["Message-ID"],
                "received": datetime.fromisoformat(entry["received_at"].replace("Z", "+00:00")),
                "next": msg["X-Outage-Next-Update"], "eta": msg["X-Outage-ETA"], "reply_to": msg["In-Reply-To"],
                "text": msg.get_body(preferencelist=("plain",)).get_content(),
            })
        return out

    async def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mail = self.by_recipient()
            if predicate(mail):
                return mail
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {dict(self.by_recipient())}")


def check_thread(notices: list[dict]) -> None:
    """Per recipient: unique ids, rising seq, threaded on the first, every notice by the promise."""
    ids = [n["id"] for n in notices]
    assert len(ids) == len(set(ids)), f"a notice was sent twice: {ids}"
    seqs = [n["seq"] for n in notices]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"rounds out of order or repeated: {seqs}"
    assert notices[0]["reply_to"] is None
    assert all(n["reply_to"] == notices[0]["id"] for n in notices[1:])
    for previous, current in zip(notices, notices[1:]):
        promised = datetime.fromisoformat(previous["next"].replace("Z", "+00:00"))
        assert current["received"] <= promised, (
            f"promise missed: {current['kind']} #{current['seq']} at {current['received']} > {promised}")


def api(worker, path: str, body: dict) -> dict:
    status, out = http("POST", worker.url + path, body, token=API_TOKEN)
    assert status in (201, 202), out
    return out


async def test_an_incident_from_declaration_to_resolution(workers, produce, smtp, broker, prefix):
    for c in (A, B, C):
        produce("customers", c["customer_id"], c)
    worker = workers()
    interval = 5
    inc = api(worker, "/api/incidents", {
        "severity": "critical", "title": {"en": "API errors", "ja": "APIのエラー"},
        "message": {"en": "We are investigating.", "ja": "調査しております。"},
        "components": ["api"], "regions": ["ap-northeast-1"], "update_interval_seconds": interval})["incident_id"]
    box = Mailbox(smtp, inc)

    # silence: the promised time comes and a scheduled round keeps the promise
    await box.wait(lambda m: any(n["kind"] == "scheduled" for n in m.get("a1@example.jp", [])), 15,
                   "a scheduled round")
    # an update with an estimate that will pass before resolution
    eta = now() + timedelta(seconds=3)
    api(worker, f"/api/incidents/{inc}/updates", {"status": "identified", "eta": iso(eta),
                                                 "message": {"en": "Cause found.", "ja": "原因を特定しました。"}})
    mail = await box.wait(lambda m: any(n["kind"] == "progress" for n in m.get("a1@example.jp", [])), 10, "progress")
    progress = next(n for n in mail["a1@example.jp"] if n["kind"] == "progress")
    assert progress["eta"] != "unknown" and "原因を特定しました。" in progress["text"]
    # the estimate goes by unresolved: the next notice must not show it as a future time
    mail = await box.wait(lambda m: any(n["received"] > eta and n["kind"] == "scheduled"
                                        for n in m.get("a1@example.jp", [])), 15, "a notice after the ETA")
    late = next(n for n in mail["a1@example.jp"] if n["received"] > eta and n["kind"] == "scheduled")
    assert late["eta"] == "unknown"
    assert "見直し" in late["text"]  # "we are revising the estimate"
    # the scope grows: billing customers become affected
    api(worker, f"/api/incidents/{inc}/updates", {"components": ["api", "billing"]})
    await box.wait(lambda m: "b@example.co.uk" in m, 10, "acknowledged to the newly affected customer")
    # the scope shrinks: api customers are told they are no longer affected
    api(worker, f"/api/incidents/{inc}/updates", {"components": ["billing"]})
    await box.wait(lambda m: any(n["kind"] == "unaffected" for n in m.get("a2@example.jp", [])), 10, "unaffected")
    # one more kept promise for the billing customer, then resolution
    mark = now()
    await box.wait(lambda m: any(n["kind"] == "scheduled" and n["received"] > mark
                                 for n in m.get("b@example.co.uk", [])), 15, "scheduled for billing")
    api(worker, f"/api/incidents/{inc}/resolve", {"message": {"en": "Fixed.", "ja": "復旧しました。"}})
    await box.wait(lambda m: any(n["kind"] == "resolved" for n in m.get("b@example.co.uk", [])), 10, "resolved")
    # nothing may follow resolution, not even a late scheduled round: the latest update any notice
    # promised goes by (a round keeping it would be decided by then), and what is under way is sent
    latest = max(datetime.fromisoformat(n["next"].replace("Z", "+00:00"))
                 for notices in box.by_recipient().values() for n in notices if n["next"])
    await passed(latest)
    await settled(broker.bootstrap, prefix, [worker])

    mail = box.by_recipient()
    assert set(mail) == {"a1@example.jp", "a2@example.jp", "b@example.co.uk"}  # never the us-east-1 customer
    for recipient, notices in mail.items():
        check_thread(notices)
    for a in ("a1@example.jp", "a2@example.jp"):
        kinds = [n["kind"] for n in mail[a]]
        assert kinds[0] == "acknowledged" and kinds[-1] == "unaffected"
        assert set(kinds[1:-1]) <= {"scheduled", "progress"} and "scheduled" in kinds and "progress" in kinds
    kinds = [n["kind"] for n in mail["b@example.co.uk"]]
    assert kinds[0] == "acknowledged" and kinds[-1] == "resolved" and "scheduled" in kinds
    assert "resolved" not in [n["kind"] for n in mail["a1@example.jp"]]
    # every seq of the incident was one round: all recipients got the same seq for the same round
    resolved = mail["b@example.co.uk"][-1]
    assert resolved["next"] is None and "Fixed." in resolved["text"]
    # the worker's own account agrees: notices were measured against their promise, none late
    metrics = worker.get("/metrics")[1]
    margins = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
               for line in metrics.splitlines() if line.startswith("outage_promise_margin_seconds_bucket")}
    assert margins['le="+Inf"'] >= 5 and margins['le="0.0"'] == 0
    assert "outage_eta_passed_notices_total 0.0" not in metrics


async def test_schedule_survives_a_worker_restart(workers, produce, smtp, broker, prefix):
    for c in (A, B):
        produce("customers", c["customer_id"], c)
    first = workers()
    interval = 30  # longer than a restart: ~13 s on the embedded broker (two group joins)
    inc = api(first, "/api/incidents", {
        "severity": "major", "title": "API errors", "message": "Investigating.",
        "components": ["api"], "regions": ["ap-northeast-1"], "update_interval_seconds": interval})["incident_id"]
    box = Mailbox(smtp, inc)
    await box.wait(lambda m: len(m.get("a1@example.jp", [])) == 1 and len(m.get("a2@example.jp", [])) == 1, 15,
                   "acknowledged")
    first.stop()                       # clean stop in the middle of the incident
    second = workers()                 # a new process: state comes back from the changelogs
    await box.wait(lambda m: [n["kind"] for n in m.get("a1@example.jp", [])] == ["acknowledged", "scheduled"],
                   interval + 5, "the first scheduled round after the restart")
    second.kill()                      # now an unclean stop
    third = workers()
    await box.wait(lambda m: len(m.get("a1@example.jp", [])) >= 3, interval + 5, "the next scheduled round")
    api(third, f"/api/incidents/{inc}/resolve", {"message": "Fixed."})
    await box.wait(lambda m: m["a1@example.jp"][-1]["kind"] == "resolved" and
                   m["a2@example.jp"][-1]["kind"] == "resolved", 15, "resolved")
    await settled(broker.bootstrap, prefix, [first, second, third])   # a notice sent twice would be sent by now
    mail = box.by_recipient()
    for notices in mail.values():
        check_thread(notices)          # no round missed or repeated across both restarts
        assert [n["kind"] for n in notices][:2] == ["acknowledged", "scheduled"]
