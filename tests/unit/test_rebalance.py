"""The rebalance callbacks (streams/rebalance.py), run in process with plain fakes and the in-memory
table: a revocation holds the revoked partitions' sends and then flushes; an assignment drops what
was set aside and the stale views and deadlines of the partitions held before and now, and tells
the audience; once the tables are recovered the worker is joined and recovered and takes up what
is owed on the partitions it holds (the real audience over the latest-rounds table); a stop
finishes the sends and flushes; readiness waits for the group to be joined."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

from domain.incident import decide
from domain.schedule import LatencyGauge
from schemas import IncidentEvent
from streams.audience import Audience, LatestRounds
from streams.deadletter import DeadLetters
from streams.rebalance import Membership, Rebalance
from tests.inmemory import Clock, Table, Topic

ROUNDS = "t.rounds"
TIMEOUT = 7.0


class Sender:
    """The sender's side of a rebalance: what it was asked, in order (``log`` is shared)."""

    def __init__(self, log: list, set_aside=()) -> None:
        self.log = log
        self.set_aside = set(set_aside)   # partitions whose queued notices ``hold`` set aside
        self.submitted: list[tuple] = []

    async def hold(self, partitions, timeout):
        self.log.append(("hold", set(partitions), timeout))
        await asyncio.sleep(0)            # the sends under way finish meanwhile
        self.set_aside |= set(partitions)
        self.log.append(("held", set(partitions)))

    def held(self) -> set[int]:
        return set(self.set_aside)

    def drop(self, partitions) -> None:
        self.log.append(("drop", set(partitions)))
        self.set_aside -= set(partitions)

    async def stop(self, timeout):
        self.log.append(("stop", timeout))

    async def submit(self, jobs, p, *, on_done, size, key):   # the audience's resumption
        self.submitted.append((p, key))


class Recorder:
    """Views, holding updates, audience or delivery helpers: every call, in the shared log."""

    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name

    def __getattr__(self, method):
        def record(*args, **kwargs):
            self.log.append((f"{self.name}.{method}", *args, *kwargs.values()))

        async def arecord(*args, **kwargs):
            record(*args, **kwargs)
        return arecord if method in ("resume", "close") else record


def rebalance(*, held=(), set_aside=(), delivery=False, audience=None):
    log: list = []
    sender = Sender(log, set_aside)
    membership = Membership(partitions=set(held))
    spawned: list = []

    async def flush():
        log.append(("flush",))

    r = Rebalance(membership=membership, rounds_topic=ROUNDS, sender=sender, views=Recorder(log, "views"),
                  holding=Recorder(log, "holding"), audience=audience or Recorder(log, "audience"), flush=flush,
                  spawn=spawned.append, customers_ready=lambda: (False, "reading the customers"), timeout=TIMEOUT,
                  delivery=Recorder(log, "delivery") if delivery else None)
    return r, membership, sender, log, spawned


async def test_a_revocation_holds_the_revoked_rounds_partitions_sends_then_flushes():
    r, membership, sender, log, _ = rebalance(held={0, 1, 2, 3})
    await r.on_revoked(None, revoked={TP(ROUNDS, 1), TP(ROUNDS, 3), TP("t.incident-events", 2)})
    # only the partitions of rounds; the flush comes after the sends under way have finished
    assert log == [("hold", {1, 3}, TIMEOUT), ("held", {1, 3}), ("flush",)]
    assert membership.held() == {0, 1, 2, 3}   # what is held changes with the assignment, not before


async def test_an_assignment_drops_what_was_set_aside_and_the_stale_state_of_the_old_and_new_partitions():
    r, membership, sender, log, _ = rebalance(held={0, 1}, set_aside={1})
    membership.joined = membership.recovered = True
    await r.on_assigned(None, assigned={TP(ROUNDS, 1), TP(ROUNDS, 2), TP("t.incident-events", 3)})
    assert log == [
        ("drop", {1}),                  # what the sender set aside on the revocation
        ("views.drop",),                # every partition's views, rebuilt from the tables
        ("holding.drop", {0, 1, 2}),    # the partitions held before and those assigned now
        ("audience.assigned", {1, 2}),  # kept ones too: a round decided before says nothing of latency
    ]
    assert sender.held() == set()
    assert membership.held() == {1, 2}
    assert not membership.recovered and membership.joined   # joined once stays joined
    assert r.readiness() == (False, "reading the customers")


def owed_rounds(clock: Clock):
    """A declared round of ``inc-<p>`` recorded as owed on each of partitions 0, 1 and 2."""
    table = Table()
    latest = LatestRounds(table)
    for p in range(3):
        event = IncidentEvent.model_validate({
            "event_id": f"e-{p}", "incident_id": f"inc-{p}", "type": "declared", "at": clock().isoformat(),
            "severity": "major", "title": "X", "components": ["api"], "update_interval_seconds": 60})
        latest.record(p, decide(None, event, clock()).round)
    return latest


async def test_once_recovered_the_worker_is_joined_and_takes_up_what_is_owed_on_the_partitions_it_holds():
    clock, log = Clock(), []
    latest = owed_rounds(clock)
    membership = Membership()
    sender = Sender(log)
    views = SimpleNamespace(index=lambda p: SimpleNamespace(affected=lambda scope: set()),
                            customer_lookup=lambda p: (lambda cid: None), notified=lambda p, i: set())
    audience = Audience(
        latest=latest, sender=sender, views=views, holding=Recorder(log, "holding"), customers=None,
        tickets=Recorder(log, "tickets"), dlq=DeadLetters(Topic("t.dead-letters"), clock), latency=LatencyGauge(),
        reach=SimpleNamespace(outage_within=lambda s: False), clock=clock, mail_domain="example.com",
        held=membership.held, ledger_entries=lambda p: (lambda cid: None), spawn=lambda coro: coro.close(),
        unplannable=lambda rnd, cid, exc: None)
    spawned: list = []

    async def flush():
        pass

    r = Rebalance(membership=membership, rounds_topic=ROUNDS, sender=sender, views=Recorder(log, "views"),
                  holding=Recorder(log, "holding"), audience=audience, flush=flush, spawn=spawned.append,
                  customers_ready=lambda: (True, "ready"), timeout=TIMEOUT)
    assert r.readiness() == (False, "joining the consumer group")
    await r.on_assigned(None, assigned={TP(ROUNDS, 1), TP(ROUNDS, 2)})
    assert not membership.joined and not membership.recovered
    assert r.readiness() == (False, "joining the consumer group")
    await r.on_rebalance_complete(None)
    assert membership.joined and membership.recovered
    assert r.readiness() == (True, "ready")
    assert sender.submitted == []                 # taken up in the background, not in the callback
    assert len(spawned) == 1
    await spawned[0]
    assert sorted(sender.submitted) == [(1, ("inc-1", 1)), (2, ("inc-2", 1))]   # not partition 0's
    assert ("tickets.resume", {1, 2}) in log     # then the ticket-acks owed there


async def test_a_clean_stop_finishes_the_sends_then_the_helpers_then_flushes():
    r, membership, sender, log, _ = rebalance(held={0}, delivery=True)
    await r.on_shutdown(None)
    assert log == [("stop", TIMEOUT), ("delivery.close", TIMEOUT), ("flush",)]
    r, membership, sender, log, _ = rebalance(held={0})
    await r.on_shutdown(None)
    assert log == [("stop", TIMEOUT), ("flush",)]


def test_the_four_signals_are_connected():
    r, *_ = rebalance()
    connected = {}
    app = SimpleNamespace(**{name: SimpleNamespace(connect=lambda fun, name=name: connected.setdefault(name, fun))
                             for name in ("on_partitions_revoked", "on_partitions_assigned", "on_rebalance_complete",
                                          "on_before_shutdown")})
    r.wire(app)
    assert connected == {"on_partitions_revoked": r.on_revoked, "on_partitions_assigned": r.on_assigned,
                         "on_rebalance_complete": r.on_rebalance_complete, "on_before_shutdown": r.on_shutdown}
