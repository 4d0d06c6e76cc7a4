"""The load a worker's promises are stretched by: a declared round counts on every partition held
here from the first that it reaches (list in, numbers out; no broker)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from domain.affected import CustomerIndex
from domain.deadlines import DeadlineIndex
from domain.incident import decide
from schemas import IncidentEvent
from streams.holding import HoldingUpdates

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
PARTITIONS, PER_PARTITION, INTERVAL = 4, 100, 20
RATE = 0.7 * PARTITIONS * PER_PARTITION / INTERVAL      # the relay carries 0.7 of the audience's need


def holding_updates():
    """The holding updates of a worker holding every partition, and the sender they plan with."""
    indexes = {}
    for p in range(PARTITIONS):
        indexes[p] = CustomerIndex()
        for i in range(PER_PARTITION):
            indexes[p].put(f"c-{p}-{i}", [("api", "r1")])
    sender = SimpleNamespace(depth=0, rate_cap=RATE, rate=SimpleNamespace(measured=False, value=0.0))
    holding = HoldingUpdates(ledger={}, views=SimpleNamespace(index=indexes.get), latest=None, sender=sender,
                             promises=SimpleNamespace(factor=1.0), clock=lambda: T0,
                             held=lambda: set(range(PARTITIONS)), recovered=lambda: True, lead_seconds=1.0,
                             mail_domain="example.com")
    return holding, sender


def declared():
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": T0.isoformat(), "severity": "major",
        "title": "X", "components": ["api"], "update_interval_seconds": INTERVAL})
    return decide(None, event, T0).round


def test_the_first_partition_a_declared_round_reaches_counts_the_others_audience():
    (holding, sender), rnd = holding_updates(), declared()
    holding.round_arrived(0, rnd)
    holding.expect(0, rnd)
    sender.depth = PER_PARTITION            # only the first partition's plan is queued yet
    first = holding.reckon()
    assert first > 1.5, f"the first notices promise {first:.2f} intervals ahead"
    for p in range(1, PARTITIONS):               # the round reaches the others: counted once
        holding.round_arrived(p, rnd)
        holding.expect(p, rnd)
        assert holding.reckon() == first         # not queued there yet: still expected
        sender.depth += PER_PARTITION
        holding.queued(p, rnd)
        assert holding.reckon() == first
    assert holding._coming() == 0


def test_a_scheduled_round_expects_nothing_more():
    (holding, sender), rnd = holding_updates(), declared()
    later = rnd.model_copy(update={"trigger": "scheduled", "seq": 2})
    holding.round_arrived(0, later)
    holding.expect(0, later)
    assert holding._coming() == 0


def test_halfway_through_a_first_round_the_load_is_still_the_whole_audience():
    # the contacts reached have deadlines (in the index), the rest are queued: each counts once
    # (the queue minus every contact in the index made it half the audience at half-way, and the
    # promises stated then were one interval at 0.7 of the audience's need)
    (holding, sender), rnd = holding_updates(), declared()
    for p in range(PARTITIONS):
        holding.round_arrived(p, rnd)
    sender.depth = PARTITIONS * PER_PARTITION
    holding._indexes = {p: DeadlineIndex() for p in range(PARTITIONS)}
    first = holding.reckon()
    assert first > 1.5
    for p in range(PARTITIONS):                  # half of each partition reached: in the index
        for i in range(PER_PARTITION // 2):
            holding.noted(p, SimpleNamespace(customer_id=f"c-{p}-{i}", incident_id="inc-1", recipient="r"),
                          T0.timestamp() + 30, INTERVAL)
    sender.depth = PARTITIONS * PER_PARTITION // 2
    assert holding.reckon() == pytest.approx(first)
