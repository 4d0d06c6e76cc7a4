"""Planned maintenance end to end (real broker, real SMTP server, two worker processes), lean:

- one scheduled 30 s ahead with a 15 s reminder: every affected contact gets scheduled, reminder,
  started and completed, in that order, each on time (the reminder by 15 s before the start and the
  start by ``starts_at``, each no more than a few seconds early; completed at ``ends_at``, not
  before), one thread per contact, nothing to anyone else, no Message-ID twice;
- one moved (POST .../updates with a new window): re-announced as changed, nothing at the old start,
  started by the new one;
- one cancelled: cancelled to those told, never started.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.conftest import API_TOKEN, http
from tests.factories import customer, load_customers
from tests.integration.faults_kit import (  # noqa: F401 - faulty is a fixture
    CLOCK_SLACK, faulty, parse_time, ready, smtp_env, until, utc_now,
)

pytestmark = pytest.mark.integration

EARLY = 6.0   # s: how far ahead of its time a timed notice may leave (the lead for a few contacts, the tick)
LATE_END = 5.0


def schedule(worker, mid: str, starts, ends, reminder: int) -> dict:
    status, body = http("POST", worker.url + "/api/maintenance", {
        "maintenance_id": mid, "title": {"en": "Database upgrade", "ja": "データベースの更新"},
        "message": {"en": "Writes pause for up to a minute.", "ja": "書き込みが最大1分間停止します。"},
        "components": ["api"], "regions": ["ap-northeast-1"], "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat(), "reminder_seconds": reminder}, token=API_TOKEN)
    assert status == 201, body
    return body


def mails_of(server, mid: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in server.received():
        if m.kind.startswith("maintenance-") and m.message_id.startswith(f"<{mid}."):
            out.setdefault(m.rcpt, []).append(m)
    return {r: sorted(ms, key=lambda m: m.received) for r, ms in out.items()}


@pytest.mark.timeout(150)
async def test_maintenance_notices_each_on_time_moved_and_cancelled(workers, faulty, broker, prefix):
    affected = [customer(f"m-{i}", locale=("ja", "en")[i % 2], contacts=2, services=[("api", "ap-northeast-1")])
                for i in range(6)]
    others = [customer("m-eu", services=[("api", "eu-west-1")]), customer("m-db", services=[("db", "ap-northeast-1")])]
    load_customers(broker.bootstrap, prefix, affected + others)
    expected = {c["email"].lower() for cust in affected for c in cust["contacts"]}
    server = faulty()
    env = smtp_env(server.serve())
    procs = [workers(env, ready=False), workers(env, ready=False)]
    await ready(*procs)

    now = utc_now()
    on_time = schedule(procs[0], "mnt-a", now + timedelta(seconds=30), now + timedelta(seconds=42), 15)
    moved = schedule(procs[1], "mnt-b", now + timedelta(seconds=22), now + timedelta(seconds=26), 3600)
    gone = schedule(procs[0], "mnt-c", now + timedelta(seconds=20), now + timedelta(seconds=24), 3600)
    assert await until(lambda: all(len(mails_of(server, mid)) == len(expected) for mid in ("mnt-a", "mnt-b", "mnt-c")),
                       20), "scheduled did not reach every affected contact"
    new_start = now + timedelta(seconds=36)
    status, _ = http("POST", procs[1].url + "/api/maintenance/mnt-b/updates",
                     {"starts_at": new_start.isoformat(), "ends_at": (new_start + timedelta(seconds=4)).isoformat()},
                     token=API_TOKEN)
    assert status == 202
    status, _ = http("POST", procs[0].url + "/api/maintenance/mnt-c/cancel", {}, token=API_TOKEN)
    assert status == 202
    assert await until(lambda: http("GET", procs[1].url + "/api/maintenance/mnt-c")[1].get("status") == "cancelled",
                       10), "the other worker does not show the cancellation"
    status, answer = http("POST", procs[1].url + "/api/maintenance/mnt-c/updates", {"message": "x"}, token=API_TOKEN)
    assert status == 409, answer   # whichever worker is asked
    done = lambda: all(ms[-1].kind == "maintenance-completed" for mid in ("mnt-a", "mnt-b")  # noqa: E731
                       for ms in mails_of(server, mid).values()) and len(mails_of(server, "mnt-a")) == len(expected)
    assert await until(done, 60, poll=0.25), "not every contact heard the maintenance complete"
    await asyncio.sleep(2)   # anything sent twice, or late, shows up by then

    slack = timedelta(seconds=CLOCK_SLACK)
    a = mails_of(server, "mnt-a")
    starts, ends = parse_time(on_time["starts_at"]), parse_time(on_time["ends_at"])
    reminder_at = starts - timedelta(seconds=15)
    assert set(a) == expected, f"strangers or missing: {set(a) ^ expected}"
    for rcpt, ms in a.items():
        assert [m.kind for m in ms] == ["maintenance-scheduled", "maintenance-reminder", "maintenance-started",
                                        "maintenance-completed"], (rcpt, [m.kind for m in ms])
        _, reminder, started, completed = ms
        assert reminder_at - timedelta(seconds=EARLY) <= reminder.received <= reminder_at + slack, reminder
        assert starts - timedelta(seconds=EARLY) <= started.received <= starts + slack, started
        assert ends - slack <= completed.received <= ends + timedelta(seconds=LATE_END), completed
        assert all(m.in_reply_to == ms[0].message_id for m in ms[1:]), "not one thread"
    b = mails_of(server, "mnt-b")
    for rcpt, ms in b.items():
        assert [m.kind for m in ms] == ["maintenance-scheduled", "maintenance-changed", "maintenance-started",
                                        "maintenance-completed"], (rcpt, [m.kind for m in ms])
        assert new_start - timedelta(seconds=EARLY) <= ms[2].received <= new_start + slack, ms[2]
    c = mails_of(server, "mnt-c")
    assert set(c) == expected
    assert all([m.kind for m in ms] == ["maintenance-scheduled", "maintenance-cancelled"] for ms in c.values()), c
    ids = [m.message_id for m in server.received()]
    assert len(ids) == len(set(ids)), "a Message-ID was received twice"
    assert {int(m.seq) for ms in b.values() for m in ms if m.kind == "maintenance-changed"} == {2}
    assert gone["maintenance_id"] == "mnt-c" and moved["maintenance_id"] == "mnt-b"
