"""The audience agent (streams/audience.py), run in process over an in-memory topic and table: a
round is recorded as owed and queued once, a replay is queued again only while not done, an older
round is ignored, a finished round is done, and after a rebalance exactly the rounds still owed
on the partitions held are taken up, earliest promise first."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from domain.incident import decide, keep_promise
from domain.schedule import LatencyGauge
from schemas import IncidentEvent
from streams.audience import Audience, LatestRounds
from streams.deadletter import DeadLetters
from tests.inmemory import Clock, Table, Topic


def rounds(incident_id: str, clock: Clock, interval: int = 60):
    """The declared round of an incident and its first scheduled round."""
    event = IncidentEvent.model_validate({
        "event_id": f"e-{incident_id}", "incident_id": incident_id, "type": "declared", "at": clock().isoformat(),
        "severity": "major", "title": "X", "components": ["api"], "update_interval_seconds": interval})
    decision = decide(None, event, clock())
    state = decision.state
    return decision.round, keep_promise(state, state.promised_at, state.promised_at).round


class Recorder:
    """The collaborators the agent calls, recording what it asked of them."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.done_callbacks: list = []

    async def submit(self, plan, p, *, on_done, size, key):
        self.calls.append(("submit", p, key))
        self.done_callbacks.append(on_done)
        return True

    def __getattr__(self, name):   # holding.round_arrived/expect/queued/reckon, tickets.on_round/resume
        def record(*args, **kwargs):
            self.calls.append((name, *args))

        async def arecord(*args, **kwargs):
            self.calls.append((name, *args))
        return arecord if name in ("on_round", "resume") else record


def wired(held=frozenset({0, 1})):
    clock, table, rec = Clock(), Table(), Recorder()
    spawned = []
    views = SimpleNamespace(index=lambda p: SimpleNamespace(affected=lambda scope: set()),
                            customer_lookup=lambda p: (lambda cid: None), notified=lambda p, i: set())

    async def caught_up(p, timeout):
        return True

    audience = Audience(
        latest=LatestRounds(table), sender=rec, views=views, holding=rec, customers=SimpleNamespace(caught_up=caught_up),
        tickets=rec, dlq=DeadLetters(Topic("t.dead-letters"), clock), latency=LatencyGauge(),
        reach=SimpleNamespace(outage_within=lambda s: False), clock=clock, mail_domain="example.com",
        held=lambda: set(held), ledger_entries=lambda p: (lambda cid: None), spawn=spawned.append,
        unplannable=lambda rnd, cid, exc: None)
    return audience, table, rec, clock, spawned


async def test_a_round_is_recorded_as_owed_and_queued_once_and_a_replay_only_while_not_done():
    audience, table, rec, clock, spawned = wired()
    declared, scheduled = rounds("inc-1", clock)
    topic = Topic("t.rounds")
    await topic.send(key=b"inc-1", value=declared.model_dump_json().encode(), partition=1)
    await topic.send(key=b"inc-1", value=declared.model_dump_json().encode(), partition=1)   # a replay
    await topic.send(key=b"x", value=b"{not a round", partition=1)                           # dead-lettered
    await audience.agent(topic.stream())
    assert [c for c in rec.calls if c[0] == "submit"] == [("submit", 1, ("inc-1", 1))] * 2
    assert [c[0] for c in rec.calls if c[0] != "submit"].count("on_round") == 1   # the tickets see it once
    assert table.partition(1).get("inc-1")["round"]["seq"] == 1 and not table.partition(1).get("inc-1").get("done")
    # its notices finished: done, and a replay queues nothing more
    for callback in rec.done_callbacks:
        callback()
    for coro in spawned:
        await coro
    assert table.partition(1).get("inc-1")["done"] is True
    assert table.recovered(1).get("inc-1")["done"] is True      # changelogged: a takeover sees it done
    assert table.partition(0).get("inc-1") is None             # nothing on another partition
    rec.calls.clear()
    await audience.on_round(1, declared)
    assert rec.calls == []


async def test_an_older_round_changes_nothing():
    audience, table, rec, clock, _ = wired()
    declared, scheduled = rounds("inc-1", clock)
    await audience.on_round(0, scheduled)
    rec.calls.clear()
    await audience.on_round(0, declared)
    assert rec.calls == [] and table.partition(0).get("inc-1")["round"]["seq"] == scheduled.seq


async def test_after_a_rebalance_exactly_the_rounds_owed_on_the_partitions_held_are_taken_up():
    audience, table, rec, clock, _ = wired(held={0, 1})
    early, _ = rounds("inc-early", clock)
    clock.at += timedelta(minutes=5)
    late, _ = rounds("inc-late", clock)
    gone, _ = rounds("inc-gone", clock)
    finished, _ = rounds("inc-finished", clock)
    table.partition(1).set("inc-late", {"round": late.model_dump(mode="json")})
    table.partition(0).set("inc-early", {"round": early.model_dump(mode="json")})
    table.partition(2).set("inc-gone", {"round": gone.model_dump(mode="json")})                   # not held here
    table.partition(0).set("inc-finished", {"round": finished.model_dump(mode="json"), "done": True})
    await audience.resume({0, 1, 2})
    assert [c for c in rec.calls if c[0] == "submit"] == [("submit", 0, ("inc-early", 1)), ("submit", 1, ("inc-late", 1))]
    assert rec.calls[-1] == ("resume", {0, 1, 2})    # then the tickets' owed notices
