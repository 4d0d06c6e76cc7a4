"""Planned maintenance: the maintenance agent (the single writer of a maintenance's state), the plan
agent on every partition, and the timer that releases the timed notices by their time.

Runtime contract:
- Input: ``maintenance-events`` (keyed by ``maintenance_id``; the key must match it), on the
  maintenance's partition. ``domain.maintenance.decide`` applies an event; a change stores the new
  state in the ``maintenance`` table and sends it to every partition of ``maintenance-rounds``
  (co-partitioned with the customers and the ledger), then the event is acknowledged. A duplicate
  ``event_id`` changes nothing and sends the current state again (a crash may have cut the fan-out
  short; the plans ignore a round they have). Bad input and refused events (unknown, cancelled,
  completed, over) go to the dead-letter topic with the reason; the stream goes on.
- ``maintenance-rounds`` on partition p: a state newer than the one the ``maintenance-plans`` table
  holds for it on p is stored there (changelogged: what each partition owes survives a crash, a
  takeover and a ``kill -9``), and the partition's notices are worked out at once.
- Working out (``evaluate``): the customers of p affected now or told before (the ledger), each
  contact's one owed notice now (``domain.maintenance.owed_to``), as sender jobs (the sender's
  queue, earliest deadline first; a Message-ID pending is not queued twice). The timed ones are
  released ``lead`` seconds before their time: the base margin plus what the maintenance's contacts
  on the partitions held here and the queue ahead need at the send rate (the measured rate, within
  ``OUTAGE_SMTP_RATE``). ``maintenance-completed`` is released at the end, not before.
- The timer (every ``TICK_SECONDS``), once the tables are recovered: works a maintenance out again
  on p when its round changed, when one of its checkpoints (the reminder's and the start's release,
  the end) has passed since the last time, or, once its last plan is finished and a second after
  the last notice was recorded, when one was recorded (the next notice of a contact is worked out
  once the last is recorded). A plan is worked out as the sender draws it (``domain.maintenance.
  iter_plan``): a large audience never blocks the loop.
- A notice given up (dead-lettered) is not planned again on this worker until its next assignment. After an
  assignment every maintenance held is worked out afresh: nothing it owes is kept only in memory.
- Before each send ``refresh`` checks the notice is still owed with the state on p now
  (``domain.maintenance.still_owed``: a window moved or cancelled meanwhile makes its queued start
  or reminder owed no more); after the SMTP acceptance ``record_sent`` writes the ledger entry's
  maintenance part and produces the ``notices`` record (``maintenance_id``, no ``incident_id``).
- Never sends a Message-ID twice: every plan and send is checked against the ledger.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, MutableMapping

from core.vocabulary import M_REMINDER, M_STARTED
from domain import maintenance as MR
from domain import preferences as P
from domain.audience import NoticeJob
from domain.schedule import SendRate
from notifiers.maintenance import is_maintenance
from schemas import MaintenanceEvent, NoticeRecord, RecordError, parse_record
from streams import metrics as M
from streams import topics as T
from streams.deadletter import record_key

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
PRIOR_RATE = SendRate().value   # the send rate planned with until one is measured
AGAIN_AFTER_RECORD_SECONDS = 1.0   # a contact's next notice is worked out at most this long after its last


@dataclass(frozen=True)
class _Order:
    """Where a plan stands in the sender's queue (``streams.sender.deadline_of_round``): when it was made."""

    at: datetime
    keeps: datetime | None = None


class _Plan:
    """The notices owed on a partition at one evaluation, worked out as the sender draws them (a
    fan-out to a large audience never blocks the loop)."""

    def __init__(self, jobs, at: datetime, candidates: int) -> None:
        self.round = _Order(at)
        self._jobs = jobs
        self.candidates = candidates
        self.produced = 0
        self.done = False

    def __iter__(self):
        for job in self._jobs:
            self.produced += 1
            yield job
        self.done = True

    def remaining(self) -> int:
        return 0 if self.done else max(0, self.candidates - self.produced)


@dataclass
class _Seen:
    """What this worker last worked out for a maintenance on a partition."""

    round: int
    at: float            # epoch seconds
    passed: int          # checkpoints passed then
    dirty: bool = False  # a notice of it was recorded since
    busy: bool = True    # its plan is still being drawn or sent


class MaintenanceDesk:
    def __init__(self, *, maintenance: MutableMapping, plans: MutableMapping, rounds_topic, partitions: int,
                 ledger, views, sender, dlq, clock: Callable[[], datetime], held: Callable[[], set[int]],
                 recovered: Callable[[], bool], assignment: Callable[[], object], lead_seconds: float,
                 mail_domain: str, produce, names: T.TopicNames, undeliverable: Callable) -> None:
        self.maintenance = maintenance   # maintenance_id -> its state, on the maintenance's partition
        self.plans = plans               # per partition of the rounds: maintenance_id -> newest state there
        self.rounds_topic = rounds_topic
        self.partitions = partitions
        self.ledger = ledger
        self.views = views
        self.sender = sender
        self.dlq = dlq
        self.clock = clock
        self.held = held                 # the partitions (of the customers, ledger, plans) held now
        self.recovered = recovered
        self.assignment = assignment     # changes (identity) at every assignment
        self.lead_base = lead_seconds
        self.mail_domain = mail_domain
        self.produce = produce
        self.undeliverable = undeliverable   # dead-letters a notice given up (streams/deliveries.py)
        self._notices_name = names.name(T.NOTICES)
        self._seen: dict[tuple[int, str], _Seen] = {}
        self._told: dict[int, dict[str, set[str]]] = {}          # p -> maintenance -> customers told
        self._contacts: dict[tuple[int, str, int], int] = {}     # (p, maintenance, round) -> contacts affected
        self._states: dict[tuple[int, str], tuple[dict, MR.MaintenanceState]] = {}
        self._failed: set[str] = set()   # Message-IDs given up (dead-lettered) here: not planned again
        self._assigned: object = None

    # -- the maintenance agent -------------------------------------------------------------------
    async def agent(self, stream) -> None:
        async for event in stream.events():
            async with self.dlq.guard(event, T.MAINTENANCE_EVENTS):
                ev = parse_record(MaintenanceEvent, event.value)
                key = record_key(event)
                if key != ev.maintenance_id:
                    raise RecordError(f"record key {key!r} differs from maintenance_id", field="maintenance_id")
                p = event.message.partition
                raw = self.maintenance.partition(p).get(ev.maintenance_id)
                state = MR.MaintenanceState.model_validate(raw) if raw else None
                decision = MR.decide(state, ev)
                if decision.error:
                    raise RecordError(decision.error, field="maintenance_id")
                if decision.state is not None and decision.state is not state:
                    self.maintenance.partition(p).set(ev.maintenance_id, decision.state.model_dump(mode="json"))
                if decision.changed or (decision.ignored and state is not None):
                    await self.fan_out(decision.state)
                if decision.changed:
                    log.info("maintenance %s round %d (%s)", ev.maintenance_id, decision.state.round, ev.type)

    async def fan_out(self, state: MR.MaintenanceState) -> None:
        value = state.model_dump_json().encode()
        key = state.maintenance_id.encode()
        for p in range(self.partitions):
            await self.rounds_topic.send(key=key, value=value, partition=p)

    # -- the plan agent, on every partition ------------------------------------------------------
    async def plan_agent(self, stream) -> None:
        async for event in stream.events():
            async with self.dlq.guard(event, T.MAINTENANCE_ROUNDS):
                m = MR.MaintenanceState.model_validate_json(event.value)
                p = event.message.partition
                known = self.plans.partition(p).get(m.maintenance_id)
                if known is not None and known.get("round", 0) >= m.round:
                    continue
                self.plans.partition(p).set(m.maintenance_id, m.model_dump(mode="json"))
                if p in self.held() and self.recovered():
                    await self.evaluate(p, m)

    # -- working out what is owed ----------------------------------------------------------------
    def state(self, p: int, maintenance_id: str) -> MR.MaintenanceState | None:
        raw = self.plans.partition(p).get(maintenance_id)
        if not raw:
            return None
        cached = self._states.get((p, maintenance_id))
        if cached is None or cached[0] is not raw:
            cached = self._states[(p, maintenance_id)] = (raw, MR.MaintenanceState.model_validate(raw))
        return cached[1]

    def told(self, p: int) -> dict[str, set[str]]:
        """Customers of p told of each maintenance (built from the ledger when first used)."""
        told = self._told.get(p)
        if told is None:
            told = self._told[p] = defaultdict(set)
            for cid, entry in self.ledger.partition(p).items():
                for mid in MR.maintenance_in(entry):
                    told[mid].add(cid)
        return told

    def contacts(self, p: int, m: MR.MaintenanceState) -> int:
        key = (p, m.maintenance_id, m.round)
        n = self._contacts.get(key)
        if n is None:
            lookup = self.views.customer_lookup(p)
            n = sum(len(c.contacts) for cid in self.views.index(p).affected(m.scope()) if (c := lookup(cid)))
            self._contacts[key] = n
        return n

    def send_rate(self) -> float:
        """The rate to plan with: the measured one once it is measured (a first window alone is not:
        one email in a busy window left open by an idle spell read 0.1/s, and every start went at
        once), else the cautious prior; within ``OUTAGE_SMTP_RATE``."""
        rate = self.sender.rate
        value = rate.value if rate.measured else PRIOR_RATE
        cap = self.sender.rate_cap
        return min(value, cap) if cap else value

    def lead(self, m: MR.MaintenanceState) -> float:
        """Seconds before a timed notice's time its audience starts leaving (all partitions held here
        share the sender); never more than half the reminder's distance from the start, so a start
        never overtakes its reminder whatever the rate reads."""
        contacts = sum(self.contacts(q, m) for q in self.held())
        lead = MR.lead_seconds(contacts, ahead=self.sender.depth, send_rate=self.send_rate(), base=self.lead_base)
        return min(lead, max(self.lead_base, m.reminder_seconds / 2))

    async def evaluate(self, p: int, m: MR.MaintenanceState, lead: float | None = None) -> None:
        """Queue the notices owed now on p for ``m`` (worked out as the sender draws them)."""
        self._current()
        now = self.clock()
        lead = self.lead(m) if lead is None else lead
        candidates = self.views.index(p).affected(m.scope()) | self.told(p).get(m.maintenance_id, set())
        ledger = self.ledger.partition(p)
        failed = self._failed
        jobs = (job for job in MR.iter_plan(m, candidates, self.views.customer_lookup(p), ledger.get, P.opted_out,
                                            now, lead, self.mail_domain, NoticeJob)
                if job.message_id not in failed)
        passed = sum(t <= now for t in MR.checkpoints(m, lead))
        seen = self._seen[(p, m.maintenance_id)] = _Seen(m.round, now.timestamp(), passed)
        plan = _Plan(jobs, now, len(candidates))

        def finished() -> None:
            seen.busy = False
            if plan.produced == 0 and not self.sender.depth:
                # nothing was owed: the busy window its submission opened says nothing of the rate
                self.sender.rate.idle()

        await self.sender.submit(plan, p, on_done=finished, size=plan.remaining)
        log.debug("maintenance %s on partition %d: %d customers to look at", m.maintenance_id, p, len(candidates))

    async def tick(self) -> None:
        """The timer: work out again what may have become owed (never raises)."""
        if not self.recovered():
            return
        try:
            await self._tick()
        except Exception as exc:  # noqa: BLE001 - an exception escaping a faust timer stops the worker
            log.error("maintenance: this pass skipped (%s: %s)", type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)

    def _current(self) -> None:
        """After an assignment every partition is taken up afresh: what was kept in memory goes."""
        assignment = self.assignment()
        if assignment is not self._assigned:
            self._assigned = assignment
            self._seen.clear()
            self._told.clear()
            self._contacts.clear()
            self._states.clear()
            self._failed.clear()

    async def _tick(self) -> None:
        self._current()
        now = self.clock()
        now_s = now.timestamp()
        set_aside = self.sender.held()
        for p in sorted(self.held() - set_aside):
            for mid in list(self.plans.partition(p).keys()):
                m = self.state(p, mid)
                if m is None:
                    continue
                seen = self._seen.get((p, mid))
                over = m.phase(now) in (MR.CANCELLED, MR.COMPLETED)
                if (over and seen is not None and seen.round == m.round and not seen.dirty
                        and seen.at >= (m.cancelled_at or m.end()).timestamp()):
                    continue   # over, and worked out after it was
                lead = self.lead(m)
                passed = sum(t <= now for t in MR.checkpoints(m, lead))
                if (seen is None or seen.round != m.round or seen.passed != passed
                        or (seen.dirty and not seen.busy and now_s - seen.at >= AGAIN_AFTER_RECORD_SECONDS)):
                    await self.evaluate(p, m, lead)

    def under_way(self, p: int, rnd) -> list[dict]:
        """The planned maintenance running on an incident round's scope, as partition p knows it (every
        partition's plans hold every maintenance); nothing when p's plans are not held here."""
        if p not in self.held():
            return []
        states = [m for mid in list(self.plans.partition(p).keys()) if (m := self.state(p, mid)) is not None]
        return MR.under_way(states, rnd.scope(), rnd.at)

    # -- around each send ------------------------------------------------------------------------
    def refresh(self, job, p: int):
        """``job`` if still owed now (checked right before it is sent), else None."""
        entry = self.ledger.partition(p).get(job.customer_id)
        m = self.state(p, job.round.maintenance_id)
        # unsubscribed or "none": nothing; "start-and-end" receives every maintenance-* kind (domain/preferences.py)
        return job if MR.still_owed(job, m, entry, P.opted_out(entry), self.clock()) else None

    async def dead_letter(self, job, reason: str) -> None:
        """A notice given up (a permanent refusal, or temporary failures for too long): dead-lettered,
        and not planned again on this worker (a re-evaluation would send it again and again)."""
        self._failed.add(job.message_id)
        await self.undeliverable(job, reason)

    async def record_sent(self, job, p: int, sent_at: datetime) -> None:
        r = job.round
        ledger = self.ledger.partition(p)
        entry = MR.record_sent(ledger.get(job.customer_id), maintenance_id=r.maintenance_id, recipient=job.recipient,
                               email=job.email, message_id=job.message_id, kind=job.kind,
                               content_round=r.content_round, starts_at=r.starts_at, sent=sent_at.timestamp())
        await ledger.put(job.customer_id, entry)
        self.told(p)[r.maintenance_id].add(job.customer_id)
        seen = self._seen.get((p, r.maintenance_id))
        if seen is not None:
            seen.dirty = True
            seen.at = max(seen.at, sent_at.timestamp())
        if job.kind in (M_REMINDER, M_STARTED) and r.keeps is not None and sent_at > r.keeps:
            M.MAINTENANCE_NOTICES_LATE.inc()
            log.warning("maintenance %s: a %s notice went %.1fs after its time", r.maintenance_id, job.kind,
                        (sent_at - r.keeps).total_seconds())
        record = NoticeRecord.model_construct(
            notice_id=job.message_id, incident_id=None, maintenance_id=r.maintenance_id, ticket_id=None,
            customer_id=job.customer_id, email=job.email, kind=job.kind, seq=r.seq, sent_at=sent_at, eta=None,
            next_update_at=None)
        await self.produce(self._notices_name, job.customer_id.encode(), record.model_dump_json().encode(),
                           p, None, None)


def routed(incident: Callable, maintenance: Callable) -> Callable:
    """One of the sender's callbacks (``refresh``, ``record``): a maintenance job to ``maintenance``,
    any other to ``incident``."""
    def route(job, *args):
        return (maintenance if is_maintenance(job) else incident)(job, *args)
    return route


__all__ = ["MaintenanceDesk", "routed", "TICK_SECONDS"]
