"""ProcessDelivery: notices composed and sent by helper processes, into a real SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from datetime import datetime, timezone

import pytest

from notifiers.delivery import ComposeError, DeliveryConfig, ProcessDelivery
from notifiers.notice import NoticeComposer
from tests.factories import customer
from tests.integration.faults_kit import until
from tests.unit.test_sender import customers, jobs_for

pytestmark = pytest.mark.integration

FROM = "status@example.com"
KEY = b"k" * 32


def config(port: int, **smtp) -> DeliveryConfig:
    return DeliveryConfig(public_url="http://status.example.com", mail_from=FROM, signing_key=KEY,
                          smtp=dict(host="127.0.0.1", port=port, concurrency=4, timeout=5.0, **smtp))


def now() -> datetime:
    return datetime.now(timezone.utc)


async def test_helper_processes_send_the_same_bytes_the_worker_would_compose(smtp):
    jobs = jobs_for(customers([f"ops{i}@example.net" for i in range(12)]))
    passed = []
    delivery = ProcessDelivery(config(smtp.smtp_port), processes=2, on_eta_passed=lambda: passed.append(1))
    at = now()
    try:
        results = await asyncio.gather(*(delivery.deliver(job, at) for job in jobs))
    finally:
        await delivery.close()
    assert all(r.accepted for r in results)
    got = await smtp.wait_for(12)
    assert sorted(e["recipients"][0] for e in got) == sorted(job.email for job in jobs)
    # byte for byte what the worker's own composer makes, but for the random MIME boundary
    local = NoticeComposer(public_url="http://status.example.com", mail_from=FROM, signing_key=KEY)
    by_rcpt = {e["recipients"][0]: smtp.path(e["n"]).read_bytes() for e in got}
    for job in jobs:
        mine, theirs = local(job, at), by_rcpt[job.email]
        boundary = lambda data: data.split(b'boundary="', 1)[1].split(b'"', 1)[0]  # noqa: E731
        assert theirs.replace(boundary(theirs), boundary(mine)) == mine
    assert passed == []
    pids = {c.proc.pid for c in delivery._children}
    assert len(pids) == 2 and all(c.proc.returncode == 0 for c in delivery._children)


async def test_a_notice_that_cannot_be_composed_is_a_compose_error_and_the_rest_go(smtp):
    good, bad = jobs_for(customers(["a@example.net", "b@example.net"]))
    bad = dataclasses.replace(bad, message_id="not an id")
    delivery = ProcessDelivery(config(smtp.smtp_port), processes=1)
    try:
        with pytest.raises(ComposeError, match="Message-ID"):
            await delivery.deliver(bad, now())
        assert (await delivery.deliver(good, now())).accepted
    finally:
        await delivery.close()
    assert [e["recipients"] for e in await smtp.wait_for(1)] == [["a@example.net"]]


async def test_a_killed_helper_fails_its_sends_as_temporary_and_a_new_one_takes_over(smtp):
    jobs = jobs_for(customers([f"k{i}@example.net" for i in range(3)]))
    delivery = ProcessDelivery(config(smtp.smtp_port), processes=1)
    try:
        assert (await delivery.deliver(jobs[0], now())).accepted
        (child,) = delivery._children
        first = child.proc.pid
        os.kill(first, signal.SIGSTOP)  # hold it, give it a send, then kill it
        sending = asyncio.create_task(delivery.deliver(jobs[1], now()))
        assert await until(lambda: child.pending, 10), "the send was never given to the helper"
        os.kill(first, signal.SIGKILL)
        lost = await asyncio.wait_for(sending, 10)
        assert lost.temporary and "exited" in lost.message
        # a helper is restarted at most once a second after its start
        await until(lambda: time.monotonic() - child.started >= 1.0, 10)
        again = await asyncio.wait_for(delivery.deliver(jobs[1], now()), 10)
        assert again.accepted and child.proc.pid != first
    finally:
        await delivery.close()
    assert sorted(e["recipients"][0] for e in await smtp.wait_for(2)) == ["k0@example.net", "k1@example.net"]


async def test_close_lets_the_sends_under_way_finish(smtp):
    jobs = jobs_for(customers([f"c{i}@example.net" for i in range(6)]))
    delivery = ProcessDelivery(config(smtp.smtp_port), processes=1)
    sends = [asyncio.create_task(delivery.deliver(job, now())) for job in jobs]
    # every job written to the helper (each is numbered as it is written; the first waits for its start)
    assert await until(lambda: delivery._ids == len(jobs), 30, poll=0.005), "not every job was written to the helper"
    await delivery.close()
    assert all(s.done() and s.result().accepted for s in sends)
    assert len(await smtp.wait_for(6)) == 6
    with pytest.raises(RuntimeError):
        await delivery.deliver(jobs[0], now())


def children(pid: int) -> list[int]:
    from bench.procs import children_of

    return children_of(pid)


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


async def _declare_and_wait(worker, smtp, produce, n: int) -> str:
    from tests.conftest import API_TOKEN, http

    for i in range(n):
        produce("customers", f"c-{i}", customer(f"c-{i}", name=f"C{i}", locale=None, timezone=None,
                                                contacts=[f"ops{i}@example.net"], services=[("api", "r1")]))
    status, body = http("POST", worker.url + "/api/incidents", {
        "severity": "major", "title": "API errors", "components": ["api"], "regions": ["r1"],
        "update_interval_seconds": 3600}, token=API_TOKEN)
    assert status == 201, body
    await smtp.wait_for(n, timeout=60, incident=body["incident_id"])
    return body["incident_id"]


async def test_a_worker_with_a_helper_stops_it_on_a_clean_stop(workers, produce, smtp, read_topic):
    worker = workers({"OUTAGE_DELIVERY_PROCESSES": "1"})
    incident = await _declare_and_wait(worker, smtp, produce, 20)
    (helper,) = children(worker.process.pid)
    worker.stop()
    assert worker.process.returncode == 0 and gone(helper)
    assert len(smtp.messages(incident=incident)) == 20
    assert len([n for n in read_topic("notices") if n["incident_id"] == incident]) == 20


async def test_a_killed_worker_leaves_no_helper_behind(workers, produce, smtp):
    worker = workers({"OUTAGE_DELIVERY_PROCESSES": "1"})
    await _declare_and_wait(worker, smtp, produce, 5)
    (helper,) = children(worker.process.pid)
    worker.kill()  # SIGKILL: the helper's input closes; it finishes what it has and exits
    for _ in range(100):
        if gone(helper):
            break
        await asyncio.sleep(0.1)
    assert gone(helper)


def test_the_helpers_split_the_smtp_connections_exactly():
    # OUTAGE_SMTP_CONCURRENCY is the worker's number of connections, helpers or not
    def shares(processes: int, total: int) -> list[int]:
        base = config(1025)
        delivery = ProcessDelivery(dataclasses.replace(base, smtp={**base.smtp, "concurrency": total}),
                                   processes=processes)
        return [child.connections for child in delivery._children]

    assert shares(1, 8) == [8]
    assert shares(3, 8) == [3, 3, 2]
    assert shares(2, 4) == [2, 2]
    assert shares(6, 4) == [1, 1, 1, 1]  # at most one helper per connection
