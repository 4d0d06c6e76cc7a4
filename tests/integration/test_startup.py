"""Start-up and restart: a worker keeps its customers and tables in its data dir (streams/customers.py,
streams/kafka/tables.py) and, restarted, reads only what it missed; with an empty data dir it rebuilds
everything from the topics. On the embedded Tansu broker (its ListOffsets defect: streams/kafka/transport.py),
with real worker processes stopped cleanly and with ``kill -9``."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.conftest import API_TOKEN, http
from tests.factories import contact, customer, load_customers
from tests.integration.faults_kit import ledger_sent, settled
from tests.integration.test_recovery import _metric, _until

N = 400                  # customers; every 4th uses the incident's (component, region)
AFFECTED = {f"s{i:04d}" for i in range(N) if i % 4 == 0}


def _customer(cid: str, region: str) -> dict:
    return customer(cid, contacts=[contact(f"{cid}@example.com", f"C {cid}")], services=[("api", region)])


def _declare(worker) -> str:
    status, out = http("POST", worker.url + "/api/incidents", {
        "severity": "major", "title": "API errors", "message": "Investigating.", "components": ["api"],
        "regions": ["eu-west-1"], "update_interval_seconds": 3600}, token=API_TOKEN)
    assert status == 201, out
    return out["incident_id"]


def _local_state_lines(worker) -> list[str]:
    return [line for line in worker.log_path.read_text(errors="replace").splitlines()
            if "from local state" in line or "records written since" in line]


async def _load_and_notify(workers, produce, smtp, read_topic, prefix) -> tuple[object, str, dict[str, str]]:
    """A worker with N customers (a bad record and a deleted one among them) and one incident
    whose acknowledged notices went out, each recorded in the ledger's changelog on the broker:
    returns (worker, incident, first Message-ID by address)."""
    first = workers()
    for i in range(N):
        cid = f"s{i:04d}"
        produce("customers", cid, _customer(cid, "eu-west-1" if cid in AFFECTED else "us-east-1"))
    produce("customers", "s-bad", b'{"customer_id": "s-bad", "name": ')      # dead-lettered, never served
    produce("customers", "s-gone", _customer("s-gone", "eu-west-1"))
    produce("customers", "s-gone", None)                                     # a tombstone deletes it
    await _until(lambda: _metric(first, "outage_customers") == N, 60, f"the worker to hold {N} customers")
    incident = _declare(first)
    sent = await smtp.wait_for(len(AFFECTED), incident=incident, timeout=60)
    assert {m["recipients"][0] for m in sent} == {f"{cid}@example.com" for cid in AFFECTED}
    roots = {m["recipients"][0]: m["message_id"] for m in sent}
    await _until(lambda: set(roots.values()) <= ledger_sent(read_topic, prefix, incident), 60,
                 "the ledger's changelog to record every acknowledged notice")
    return first, incident, roots


async def _update_reaches_everyone_in_thread(worker, smtp, incident: str, roots: dict[str, str], bootstrap: str,
                                             prefix: str) -> None:
    """The restarted worker's ledger knows every first notice: an update threads under each one,
    and nobody gets the acknowledged notice again."""
    status, out = http("POST", f"{worker.url}/api/incidents/{incident}/updates",
                       {"status": "identified", "message": "Found it."}, token=API_TOKEN)
    assert status == 202, out
    progress = await smtp.wait_for(len(roots), incident=incident, kind="progress", timeout=60)
    await settled(bootstrap, prefix, [worker])   # a notice to anyone else, or sent again, is sent by now
    progress = smtp.messages(incident=incident, kind="progress")
    assert {m["recipients"][0]: m["in_reply_to"] for m in progress if m["recipients"][0] in roots} == roots
    assert {m["recipients"][0] for m in progress} - set(roots) <= {"s0001@example.com"}  # newly affected, see below
    acks = [m for m in smtp.messages(incident=incident, kind="acknowledged") if m["recipients"][0] != "s0001@example.com"]
    assert len(acks) == len(AFFECTED), "a restarted worker sent an acknowledged notice again"


def _dead_letters_for(read_topic, key: str) -> list[dict]:
    return [d for d in read_topic("dead-letters") if d.get("key") == key]


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
async def test_a_restarted_worker_keeps_its_customers_and_ledger_and_reads_only_what_it_missed(
        workers, produce, smtp, read_topic, broker, prefix, how):
    first, incident, roots = await _load_and_notify(workers, produce, smtp, read_topic, prefix)
    first.stop() if how == "sigterm" else first.kill()

    # while it is down: one customer changes region (now affected), one is deleted, one is new
    produce("customers", "s0001", _customer("s0001", "eu-west-1"))
    produce("customers", "s0004", None)
    produce("customers", "s-new", _customer("s-new", "us-east-1"))

    second = workers()
    assert _metric(second, "outage_customers") == N   # +1 new, -1 deleted
    lines = _local_state_lines(second)
    read_since = [int(m.group(1)) for line in lines if (m := re.search(r"reading (\d+) records written since", line))]
    assert read_since and sum(read_since) == 3, lines  # the three records written while it was down, no more
    assert any("table ledger" in line and "keys from local state" in line for line in lines), lines

    roots.pop("s0004@example.com")
    await _update_reaches_everyone_in_thread(second, smtp, incident, roots, broker.bootstrap, prefix)
    # the customer that became affected while the worker was down is reached too
    await smtp.wait_for(1, incident=incident, to="s0001@example.com", timeout=30)
    assert not smtp.messages(to="s-gone@example.com") and not smtp.messages(to="s0004@example.com", kind="progress")
    # the bad record was dead-lettered when first read, and not again by the restarted worker
    assert len(_dead_letters_for(read_topic, "s-bad")) == 1


async def test_a_worker_with_an_empty_data_dir_recovers_everything_from_the_topics(
        workers, produce, smtp, read_topic, broker, prefix, tmp_path):
    first, incident, roots = await _load_and_notify(workers, produce, smtp, read_topic, prefix)
    first.kill()
    fresh = workers({"OUTAGE_DATA_DIR": str(tmp_path / "fresh-data")})
    assert _metric(fresh, "outage_customers") == N
    assert not any("keys from local state" in line or "indexed from local state" in line
                   for line in _local_state_lines(fresh))
    await _update_reaches_everyone_in_thread(fresh, smtp, incident, roots, broker.bootstrap, prefix)
    assert not smtp.messages(to="s-gone@example.com")


async def test_readiness_waits_for_every_customer_of_the_partitions_held(workers, produce, broker, prefix):
    """/readyz is 503 while a (large enough) customers backlog is read, and 200 only with all of it."""
    first = workers()
    first.stop()
    n = 30_000
    load_customers(broker.bootstrap, prefix, (_customer(f"r{i:06d}", "eu-west-1") for i in range(n)), linger_ms=20,
                   batch_size=256 * 1024)
    second = workers(ready=False)
    seen_503 = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, body = second.get("/readyz")
        except OSError:
            await asyncio.sleep(0.1)
            continue
        if status == 200:
            break
        assert status == 503
        seen_503 = True
        await asyncio.sleep(0.1)
    assert seen_503
    assert _metric(second, "outage_customers") == n
