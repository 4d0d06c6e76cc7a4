"""Ticket surges on real workers (two of them): five tickets from five customers about one
component, with no incident on it, make one possible-incident signal on ``outage.signals``; two
tickets about another component make none. The customers are spread over every partition, so
both workers handle some of the tickets, and the mentions meet on the component's partition."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tests.factories import customer, load_customers, ticket
from tests.inmemory.broker import partition_for
from tests.integration.faults_kit import settled
from tests.integration.test_any_worker import eventually

pytestmark = pytest.mark.integration

PARTITIONS = 4


def metric(worker, name: str, labels: str = "") -> float:
    """A sample of ``name`` on the worker's /metrics (``labels``: as written there, in order), 0 when absent."""
    status, text = worker.get("/metrics")
    assert status == 200
    found = re.search(rf"^{re.escape(name)}{re.escape('{' + labels + '}' if labels else '')} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def spread(n: int, tag: str) -> list[dict]:
    """``n`` customers (n >= PARTITIONS) whose ids fall on every partition, with api and db in Tokyo."""
    chosen: list[str] = []
    seen: set[int] = set()
    i = 0
    while len(chosen) < n:
        cid = f"{tag}-{i}"
        p = partition_for(cid.encode(), PARTITIONS)
        if p not in seen or len(seen) == PARTITIONS:
            chosen.append(cid)
            seen.add(p)
        i += 1
    return [customer(cid, contacts=[f"ops@{cid}.example.com"], services=[("api", "ap-northeast-1"),
                                                                           ("db", "ap-northeast-1")])
            for cid in chosen]


async def test_five_tickets_from_five_customers_make_one_signal_two_make_none(workers, broker, prefix, produce,
                                                                               read_topic):
    api, db = spread(5, "c-sg"), spread(4, "c-sd")[:2]
    load_customers(broker.bootstrap, prefix, api + db)
    one, other = workers(ready=False), workers(ready=False)
    for w in (one, other):
        w.wait_ready(timeout=90)
    at = datetime.now(timezone.utc).isoformat()
    for n, c in enumerate(db):
        produce("ticket-events", f"T-db-{n}", ticket(f"T-db-{n}", c["customer_id"], f"dev@{n}.example.com", at=at,
                                                     components=["db"]))
    for n, c in enumerate(api):
        produce("ticket-events", f"T-api-{n}", ticket(f"T-api-{n}", c["customer_id"], f"dev@{n}.example.com",
                                                      at=at, components=["api"]))

    await eventually(lambda: read_topic("signals"), timeout=45)
    await settled(broker.bootstrap, prefix, [one, other])   # the db tickets and any replay handled by now
    (signal,) = read_topic("signals")
    assert {k: signal[k] for k in ("type", "component", "region", "tickets", "customers", "window_seconds")} == {
        "type": "possible-incident", "component": "api", "region": "ap-northeast-1", "tickets": 5, "customers": 5,
        "window_seconds": 600}
    assert signal["first_at"] <= signal["at"]
    # both workers handled tickets; the one holding the component's partition counted the signal once
    for w in (one, other):
        assert metric(w, "outage_events_total", 'result="ok",topic="ticket-events"') > 0
    assert metric(one, "outage_possible_incidents_total") + metric(other, "outage_possible_incidents_total") == 1
    assert read_topic("dead-letters") == []
