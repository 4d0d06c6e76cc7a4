"""Holding updates, each by its contact's own deadline.

Runtime contract (what the pipeline and the tests may rely on):
- Every notice that promises a next update writes that time into the customer's ledger entry
  (``due``, with the interval it counted with): the deadline is durable with the partition's
  state, so it survives a restart, a takeover and a ``kill -9``.
- For each partition of ``rounds`` it holds, a worker keeps a ``DeadlineIndex`` built from the
  ledger when first used after an assignment once the tables are recovered (before that the
  timer does nothing), and updated as notices are recorded
  (``noted``): finding the contacts coming due never scans them all.
- ``tick()`` (a timer) takes the contacts whose time has come, earliest first: once the latest
  start of everything due within the look-ahead (``domain.deadlines.latest_start`` and
  ``look_ahead``: a third of an interval, plus the stretch when promises are stretched; at the
  send rate, after the queue ahead) has come, each one no sooner than a third of the span its
  latest notice promised before its deadline nor than two thirds of an interval after that
  notice (``domain.deadlines.earliest_release``: that one is never given up to the queue); and hands
  each one's holding update to the sender with its deadline as its place in the queue. The
  holding update is the incident's newest ``scheduled`` round on that partition, under its
  deterministic Message-ID; a contact whose round is not decided yet waits for it
  (``round_arrived``), and one whose newer round is news is reached by that round's plan.
- Nothing is marked done here: the ledger entry written after the SMTP acceptance moves the
  deadline on, so a holding update given up on a revocation or a crash is due again for whoever
  holds the partition next; a retry or a takeover sends it under the same Message-ID.
- The stretch of this worker's promises (``PromiseBook.factor``) follows the measured send rate
  against the load its contacts' deadlines make (one email per contact per interval), the
  notices queued for contacts without a deadline yet, and (``expect``) the customers a declared
  round will reach on the partitions held here that it has not reached yet: its first notices
  already state the stretched time.
"""

from __future__ import annotations

import heapq
import logging
import time
from datetime import datetime
from typing import Callable, Mapping

from domain import ledger as L
from domain.audience import holding_job
from domain.deadlines import (EARLIEST_SHARE, DeadlineIndex, capacity_ratio, latest_start, look_ahead, release_at,
                              stretch)
from domain.incident import Round
from streams import metrics as M

log = logging.getLogger(__name__)

DUE_SOON_SECONDS = 60.0
# holding updates released in one pass at most (a pass runs on the event loop the sender shares;
# the rest of a backlog is released in the next passes, a quarter second apart)
RELEASE_PER_TICK = 1000
# the holding updates looked ahead at: a third of the longest interval held, at least of this one
HORIZON_FLOOR = 60.0
# a pass longer than this is logged (the sender shares its event loop)
SLOW_PASS_SECONDS = 0.05
# a pass releasing this many holding updates at least is logged, with the rate it planned with
LOGGED_RELEASE = 100
_WAIT = object()   # the contact's next round is not here yet
# a declared round's audience on the partitions it has not reached yet counts this long at most
EXPECTED_SECONDS = 10.0


class HoldingUpdates:
    def __init__(self, *, ledger: Mapping, views, latest, sender, promises, clock: Callable[[], datetime],
                 held: Callable[[], set[int]], recovered: Callable[[], bool], lead_seconds: float,
                 mail_domain: str) -> None:
        self.ledger = ledger           # the deliveries ledger: each contact's deadline is in its entry
        self.views = views
        self.latest = latest           # the latest round of each incident per partition (LatestRounds)
        self.sender = sender
        self.promises = promises       # the PromiseBook whose stretch ``reckon`` sets
        self.clock = clock
        self.held = held               # the partitions of ``rounds`` held now
        self.recovered = recovered     # whether the tables are recovered for the partitions assigned now
        self.lead_seconds = lead_seconds   # the schedule's base lead (OUTAGE_SCHEDULE_LEAD_SECONDS)
        self.mail_domain = mail_domain
        self._indexes: dict[int, DeadlineIndex] = {}
        self._rounds: dict[tuple[int, str], Round] = {}       # (partition, incident) -> newest round there
        self._waiting: dict[tuple[int, str], list] = {}       # contacts due before their round was decided
        # a first round seen on one partition: the customers it will reach on the other partitions
        # held here, until its plan there is queued ((incident, seq) -> partition -> customers)
        self._expected: dict[tuple[str, int], dict[int, int]] = {}
        self._expected_at: dict[tuple[str, int], float] = {}
        self._factor_logged = 1.0
        self._due_soon_at = 0.0

    # -- state -------------------------------------------------------------------------------
    def index(self, p: int) -> DeadlineIndex:
        idx = self._indexes.get(p)
        if idx is None:
            idx = self._indexes[p] = DeadlineIndex()
            for cid, entry in self.ledger.partition(p).items():
                if entry:
                    for incident_id, recipient, due, every, sent in L.deadlines(entry):
                        idx.set(cid, incident_id, recipient, due, every, sent)
        return idx

    def drop(self, partitions) -> None:
        """Forget what is kept for ``partitions`` (gone, or to be rebuilt from the ledger)."""
        for parts in self._expected.values():
            for p in partitions:
                parts.pop(p, None)
        for p in partitions:
            self._indexes.pop(p, None)
            for key in [k for k in self._rounds if k[0] == p]:
                del self._rounds[key]
            for key in [k for k in self._waiting if k[0] == p]:
                del self._waiting[key]

    def noted(self, p: int, job, due: float | None, every: float | None, sent: float | None = None) -> None:
        """A notice ``job`` was recorded on partition p, accepted at ``sent``, stating ``due``
        (None: no deadline now)."""
        idx = self._indexes.get(p)
        if idx is None:
            return   # built from the ledger, which has it, when first used
        if due is None:
            idx.clear(job.customer_id, job.incident_id, job.recipient)
        else:
            idx.set(job.customer_id, job.incident_id, job.recipient, due, every or 0.0, sent)

    def round_arrived(self, p: int, rnd: Round) -> None:
        """The newest round of an incident on p: contacts waiting for it are due again at once."""
        known = self._rounds.get((p, rnd.incident_id))
        if known is None or known.seq <= rnd.seq:
            self._rounds[(p, rnd.incident_id)] = rnd
        waiting = self._waiting.pop((p, rnd.incident_id), ())
        idx = self._indexes.get(p)
        if idx is not None:
            for item in waiting:
                idx.restore(item)

    def queued(self, p: int, rnd: Round) -> None:
        """The plan of ``rnd`` on p is queued: its audience there counts in the sender's queue now,
        no longer as expected (forgotten when the round arrived, before its plan was queued, the
        load dipped meanwhile and the notices composed then promised 1.2 intervals, not 1.64)."""
        parts = self._expected.get((rnd.incident_id, rnd.seq))
        if parts is not None:
            parts.pop(p, None)

    def expect(self, p: int, rnd: Round) -> None:
        """A declared round reaches the partitions one after another, a fraction of a second apart,
        and the notices of the first are composed meanwhile: the load it brings to the other
        partitions held here counts from the first, so those notices already state honest
        promises (measured at 0.7 of the audience's need: the first ones promised one interval,
        the relay was still busy with the rest of the audience when it came)."""
        key = (rnd.incident_id, rnd.seq)
        if key in self._expected or rnd.trigger != "declared" or not rnd.interval_seconds:
            return   # a later round reaches contacts mostly in the index already
        views = self.views
        others = {q: len(views.index(q).affected(rnd.scope())) for q in self.held() - {p}
                  if (q, rnd.incident_id) not in self._rounds}
        self._expected[key] = {q: n for q, n in others.items() if n}
        self._expected_at[key] = time.monotonic()

    def _coming(self) -> int:
        """Customers the declared rounds seen here will reach on the partitions they have not
        reached yet (forgotten after ``EXPECTED_SECONDS``: a round reaches them all in about one)."""
        now = time.monotonic()
        for key in [k for k, parts in self._expected.items()
                    if not parts or now - self._expected_at[k] > EXPECTED_SECONDS]:
            del self._expected[key], self._expected_at[key]
        return sum(n for parts in self._expected.values() for n in parts.values())

    def _round(self, p: int, incident_id: str) -> Round | None:
        rnd = self._rounds.get((p, incident_id))
        if rnd is None:
            rnd = self.latest.round(p, incident_id)
            if rnd is not None:
                self._rounds[(p, incident_id)] = rnd
        return rnd

    # -- the work ----------------------------------------------------------------------------
    def send_rate(self) -> float | None:
        """The rate to plan with: the measured one (None while unknown), within the configured cap."""
        sender = self.sender
        cap = sender.rate_cap
        measured = sender.rate.value if sender.rate.measured else None
        if measured is None:
            return cap
        return min(measured, cap) if cap else measured

    async def tick(self) -> None:
        """Release the holding updates whose time has come (a timer; never raises)."""
        if not self.recovered():
            return   # an index built from a ledger still being restored would miss contacts
        try:
            await self._release()
        except Exception as exc:  # noqa: BLE001 - an exception escaping a faust timer stops the worker
            log.error("holding updates: this pass skipped (%s: %s)", type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)

    async def _release(self) -> None:
        sender = self.sender
        began = time.perf_counter()
        now = self.clock().timestamp()
        rate = self.send_rate()
        plan_rate = rate or sender.rate.value
        base = self.lead_seconds
        ahead = sender.depth
        set_aside = sender.held()   # revoked: their queued notices are set aside
        mine = sorted(self.held() - set_aside)
        indexes = {p: self.index(p) for p in mine}
        # the latest the holding updates coming due may start leaving, all partitions together
        # (they share the sender): counting the deadlines a third of an interval ahead, and the
        # stretch beyond one interval when promises are stretched (domain.deadlines.look_ahead)
        factor = max(self.promises.factor, 1.0)
        longest = max((r.interval_seconds or 0 for r in self._rounds.values()), default=0)
        horizon = now + look_ahead(max(longest, HORIZON_FLOOR), factor)
        start = latest_start(heapq.merge(*(idx.seconds(horizon) for idx in indexes.values())),
                             ahead=ahead, send_rate=plan_rate, base=base)
        # earliest deadline first across the partitions too: the pass's budget went to the first
        # partition's contacts while the next one's were due sooner
        released: dict[int, list] = {p: [] for p in mine}
        tops = [(top[0].at, p) for p in mine if (top := indexes[p].peek()) is not None]
        heapq.heapify(tops)
        budget = RELEASE_PER_TICK
        early: list = []   # taken out of the order in this pass but not released: put back after it
        while budget > 0 and tops:   # (each entry is its partition's earliest: nothing in the
            # loop changes another partition's index, nor this one's beyond the contact popped)
            p = tops[0][1]
            idx = indexes[p]
            item, interval = idx.peek()
            # once the start has come, every contact due within a third of its (stretched) interval
            # goes (earliest deadline first); before, each one no later than its own queue needs
            if now < max(item.at - interval * factor * EARLIEST_SHARE,
                         min(start, release_at(item.at, interval, ahead=ahead, send_rate=plan_rate, base=base,
                                               factor=factor))):
                heapq.heappop(tops)   # nor any later one of this partition (as in its own order)
                continue
            idx.pop()
            if now < idx.earliest(item):
                # its latest notice is too recent (a promise shared with its round, less than an
                # interval ahead): the contacts due after it may go first, it waits for its time
                early.append((idx, item))
                job = None
                if len(early) >= RELEASE_PER_TICK:
                    break   # looked at enough for one pass
            else:
                budget -= 1
                job = self._job(p, idx, item)
            if job is _WAIT:
                self._waiting.setdefault((p, item.incident_id), []).append(item)
            elif job is not None:
                released[p].append(job)
                ahead += 1
            nxt = idx.peek()
            if nxt is not None:
                heapq.heapreplace(tops, (nxt[0].at, p))
            else:
                heapq.heappop(tops)
        for idx, item in early:
            idx.restore(item)
        count = sum(len(jobs) for jobs in released.values())
        if count >= LOGGED_RELEASE:
            log.info("holding updates: %d released, due %.1f..%.1f s from now, %d queued ahead, planned at "
                     "%.1f/s (measured %.1f/s)", count, min(j.due for js in released.values() for j in js) - now,
                     max(j.due for js in released.values() for j in js) - now, ahead - count, plan_rate,
                     sender.rate.value)
        for p in mine:
            if released[p]:   # one source per partition and pass, in deadline order (the sender's
                # queue stays a handful of sources however many contacts come due at once)
                log.debug("holding updates: %d released on partition %d", len(released[p]), p)
                await sender.submit(released[p], p)
        if now >= self._due_soon_at:   # a gauge for ops: once a second is enough
            M.DUE_SOON.set(sum(idx.within(now, DUE_SOON_SECONDS) for idx in indexes.values()))
            self._due_soon_at = now + 1.0
        self.reckon()
        took = time.perf_counter() - began
        if took > SLOW_PASS_SECONDS:
            log.info("holding updates: a pass took %.3f s (%d contacts taken up, %d not yet)", took,
                     RELEASE_PER_TICK - budget, len(early))

    def reckon(self) -> float:
        """Set this worker's promise stretch from its send rate and its load; also called as soon
        as a round is queued, so the first notices of a big round are already honest."""
        sender = self.sender
        rate = self.send_rate()
        mine = self.held()
        held = [idx for p, idx in self._indexes.items() if p in mine]
        load = sum(idx.load for idx in held)
        # what is queued for contacts not in the index yet counts too (a first round's recipients
        # are not there until reached), at the shortest interval of the incidents held here, so a
        # first round is planned honestly. The holding updates queued are in the index already
        # (released, not recorded yet): counted once. Subtracting every contact in the index
        # instead made the load of a first round half-sent half what it was (the acknowledged
        # ones were subtracted from the queue of the others), and at 0.7 of the audience's need
        # the promises stated halfway through were one interval, not 1.64
        intervals = [r.interval_seconds for r in self._rounds.values() if r.interval_seconds and r.next_update_at]
        if intervals:
            queued_known = sum(idx.released for idx in held)
            load += (max(0, sender.depth - queued_known) + self._coming()) / min(intervals)
        ratio = capacity_ratio(rate, load)
        M.CAPACITY_RATIO.set(ratio if ratio is not None else 0)
        factor = stretch(rate, load)
        self.promises.factor = factor
        if abs(factor - self._factor_logged) > 0.1 * self._factor_logged:
            if factor > 1.0:
                log.warning("the send rate (%.1f/s) carries this worker's audience %.2f times per "
                            "interval: its promises are stated %.2f intervals ahead", rate, ratio, factor)
            else:
                log.info("the send rate carries this worker's audience once per interval again")
            self._factor_logged = factor
        return factor

    def _job(self, p: int, idx: DeadlineIndex, item):
        """The holding update owed for ``item`` now, ``_WAIT``, or None (nothing is owed)."""
        entry = self.ledger.partition(p).get(item.customer_id)
        known = L.recipients(entry, item.incident_id).get(item.recipient)
        if not known or known.get("due") != item.at:
            return None   # moved on meanwhile (the index is told of every record)
        rnd = self._round(p, item.incident_id)
        seq = known.get("seq", 0)
        if rnd is None or rnd.seq < seq or rnd.trigger != "scheduled":
            # its next round is not decided yet, or it is news (or the end) that its plan brings: if
            # that plan reaches it, the deadline moves on; if a newer round comes first, it is due again
            return _WAIT
        customer = self.views.customer_lookup(p)(item.customer_id)
        job = holding_job(rnd, customer, entry, item.recipient, self.mail_domain) if customer else None
        if job is None and rnd.seq == seq and customer is not None:
            # this round's holding update went (or it may not have one): the next round decides
            return _WAIT
        if job is None:
            idx.clear(item.customer_id, item.incident_id, item.recipient)
        return job
