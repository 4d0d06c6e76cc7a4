"""The audience agent: a round on partition p becomes the notices owed to p's customers; and the
resumption of what is owed when partitions are assigned.

Runtime contract:
- Input: the ``rounds`` topic, one record per round and partition (written by the incident
  agent, ``streams/incidents.py``), co-partitioned with the customers and the ledger.
- A round newer than the incident's latest on p is first recorded as owed there (the
  latest-rounds table, ``LatestRounds``), then its notices are queued on the sender as a plan
  (``domain.audience.RoundPlan``: drawn from as connections free up, earliest deadline first;
  it replaces the incident's older round's queued notices). The event is acknowledged as soon as
  the round is recorded and queued: faust's rebalance never waits for a fan-out.
- A round already known (a replay after a restart or a takeover) is queued again only while it
  is not done; the plan skips what the ledger shows sent, so nothing goes twice.
- When every notice of a round on p is finished it is marked done there; what is not done is
  owed, and ``resume`` (after a rebalance, once the tables are recovered) queues every round
  still owed on the partitions held, earliest promise first, then the tickets' owed notices.
- A round that waited (a replay, a broker outage) says nothing of latency; any other feeds the
  latency gauge the schedule reads.
- Bad input is dead-lettered with the reason (``streams/deadletter.py``); the stream goes on.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from core.logs import log_context
from domain.audience import RoundPlan
from domain.incident import Round
from streams import metrics as M
from streams import topics as T

log = logging.getLogger(__name__)

# a new round waits at most this long for its partition's customers to be read up to the
# topic's end (customers produced just before the incident was declared are then notified)
CUSTOMERS_CATCH_UP_SECONDS = 2.0


class LatestRounds:
    """The latest round of each incident on each partition, and whether all its notices there are
    finished (the ``latest-rounds`` table, keyed by incident in each partition's store:
    changelogged, so what is owed survives a crash)."""

    def __init__(self, table) -> None:
        self.table = table   # a streams.state.PartitionedTable

    def known(self, p: int, incident_id: str) -> dict | None:
        return self.table.partition(p).get(incident_id)

    def round(self, p: int, incident_id: str) -> Round | None:
        known = self.known(p, incident_id)
        return Round.model_validate(known["round"]) if known is not None else None

    def rounds(self, p: int) -> list[Round]:
        return [Round.model_validate(v["round"]) for v in self.table.partition(p).values() if v]

    def record(self, p: int, rnd: Round) -> None:
        self.table.partition(p).set(rnd.incident_id, {"round": rnd.model_dump(mode="json")})

    async def mark_done(self, p: int, rnd: Round) -> bool:
        """Mark ``rnd`` done on p if it is still the incident's latest there (True if it was)."""
        known = self.known(p, rnd.incident_id)
        if known is not None and known["round"]["seq"] == rnd.seq and not known.get("done"):
            await self.table.partition(p).put(rnd.incident_id, {**known, "done": True})
            return True
        return False

    def owed(self, partitions: set[int]) -> list[tuple[int, Round]]:
        """The rounds not done on ``partitions``, earliest promise first."""
        owed = [(p, Round.model_validate(value["round"])) for p in partitions
                for value in self.table.partition(p).values() if value and not value.get("done")]
        owed.sort(key=lambda item: (item[1].keeps or item[1].at))
        return owed


class Audience:
    def __init__(self, *, latest: LatestRounds, sender, views, holding, customers, tickets, dlq, latency, reach,
                 clock: Callable[[], datetime], mail_domain: str, held: Callable[[], set[int]],
                 ledger_entries: Callable[[int], Callable[[str], dict | None]], spawn: Callable,
                 unplannable: Callable[[Round, str, Exception], None]) -> None:
        self.latest = latest
        self.sender = sender
        self.views = views
        self.holding = holding
        self.customers = customers
        self.tickets = tickets
        self.dlq = dlq
        self.latency = latency
        self.reach = reach
        self.clock = clock
        self.mail_domain = mail_domain
        self.held = held                # the partitions of ``rounds`` held now
        self.ledger_entries = ledger_entries   # partition p's ledger entries by customer (what was sent)
        self.spawn = spawn
        self.unplannable = unplannable
        self.started_at = clock()
        self._assigned_at: dict[int, datetime] = {}   # when each partition was last assigned here

    def assigned(self, partitions: Iterable[int]) -> None:
        """Partitions (newly or again) assigned: a round decided before now says nothing of latency
        there (a rebalance pauses the reading of all of them: measured, one held 10 s by the
        rebalance after a broker outage made the next round start 19 s before its time)."""
        now = self.clock()
        for p in partitions:
            self._assigned_at[p] = now

    async def agent(self, stream) -> None:
        """A round on partition p: recorded as owed on p, handed to the sender, acknowledged."""
        async for event in stream.events():
            async with self.dlq.guard(event, T.ROUNDS):
                rnd = Round.model_validate_json(event.value)
                with log_context(incident=rnd.incident_id, round=rnd.seq):
                    await self.on_round(event.message.partition, rnd)

    async def on_round(self, p: int, rnd: Round) -> None:
        delay = (self.clock() - rnd.at).total_seconds()
        if rnd.at >= self._assigned_at.get(p, self.started_at) and not self.reach.outage_within(delay):
            # a replay (after a restart, or a partition taken over) says nothing of latency, nor
            # does a round that waited for the brokers (measured: one held 32 s by an outage
            # made the next round start at once, its promise stretched to three intervals)
            self.latency.observe(delay)
        known = self.latest.known(p, rnd.incident_id)
        if known is not None and known["round"]["seq"] >= rnd.seq:
            if known["round"]["seq"] == rnd.seq and not known.get("done"):
                await self.submit(p, rnd)   # a replay: queued once, whatever happens
            return
        self.latest.record(p, rnd)
        self.holding.round_arrived(p, rnd)
        self.holding.expect(p, rnd)   # its audience on the partitions it reaches next
        if not await self.customers.caught_up(p, timeout=CUSTOMERS_CATCH_UP_SECONDS):
            log.warning("round %s #%d on partition %d planned before the customers were read to the "
                        "topic's end", rnd.incident_id, rnd.seq, p)
        await self.tickets.on_round(p, rnd)
        plan = await self.submit(p, rnd)
        self.holding.queued(p, rnd)
        self.holding.reckon()   # before the sender composes its first notice
        log.info("round %s #%d (%s) on partition %d: %d customers to visit, %.3fs after its decision",
                 rnd.incident_id, rnd.seq, rnd.trigger, p, plan.candidates, delay)

    async def submit(self, p: int, rnd: Round) -> RoundPlan:
        """Queue the notices ``rnd`` owes on partition p (returns at once: the plan is drawn from
        as connections free up, earliest deadline first); it replaces the incident's older round."""
        plan = RoundPlan(rnd, self.views.index(p), self.views.customer_lookup(p), self.ledger_entries(p),
                         self.views.notified(p, rnd.incident_id), self.mail_domain,
                         on_error=lambda cid, exc, rnd=rnd: self.unplannable(rnd, cid, exc))
        await self.sender.submit(plan, p, on_done=lambda: self.spawn(self.round_done(p, rnd)),
                                 size=plan.remaining, key=(rnd.incident_id, rnd.seq))
        return plan

    async def round_done(self, p: int, rnd: Round) -> None:
        """Every notice of ``rnd`` on p is finished: nothing more is owed for it there."""
        if await self.latest.mark_done(p, rnd):
            log.info("round %s #%d on partition %d: every notice finished", rnd.incident_id, rnd.seq, p,
                     extra={"incident": rnd.incident_id, "round": rnd.seq})

    async def resume(self, partitions: set[int]) -> None:
        """Submit every round still owed on ``partitions`` (and every ticket-ack), earliest
        promise first; the plans skip what the ledger shows sent."""
        owed = self.latest.owed(partitions)
        for p, rnd in owed:
            if p not in self.held():
                continue  # gone again meanwhile
            self.holding.round_arrived(p, rnd)
            await self.submit(p, rnd)
        if owed:
            M.ROUNDS_RESUMED.inc(len(owed))
            log.info("took up %d rounds still owed on partitions %s: %s", len(owed), sorted(partitions),
                     ", ".join(f"{rnd.incident_id} #{rnd.seq} on {p}" for p, rnd in owed))
        await self.tickets.resume(partitions)

