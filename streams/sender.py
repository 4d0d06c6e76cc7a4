"""The sender: notice jobs drained outside the consume loop, earliest deadline first.

Runtime contract (what the agents and the tests may rely on):
- ``submit(jobs, partition, on_done)`` takes an iterable of jobs that may be lazy (a
  ``RoundPlan``) and returns at once: jobs are drawn from it only when a connection is free
  and it holds the earliest deadline, so a big round neither blocks the consuming agent nor
  fills memory, and a later round is planned as soon as it is decided. ``on_done()`` is
  called once every job of that call is finished: accepted and recorded, skipped as already
  sent, or failed for good (dead-lettered).
  Jobs given up on a stop or a revocation are *not* finished: what a partition still owes is
  recorded outside the sender (the owed-rounds table), so whoever holds the partition next
  submits it again and the ledger sends only what is missing.
- ``key=(incident_id, seq)`` names a round's plan: a plan for a newer round of the same
  incident on the same partition *replaces* the older one's queued jobs (its in-flight sends
  finish), and a plan already queued under the same key is not queued twice.
- Order: earliest deadline first — the promise a notice keeps, else the time its round was
  decided (all the jobs of one ``submit`` share the earliest of their deadlines). A recipient
  domain never holds more than ``domain_concurrency`` connections, so a slow domain cannot
  starve the others.
- A job whose Message-ID is pending is not queued again: the call that offered it again is
  finished only when that job is (so a replayed round is not done while its notices wait in
  the queue, and not done at all if they are dropped). Right before each send
  ``refresh(job, partition)`` says what is owed now (None: nothing, e.g. the ledger shows it sent or a
  newer round reached the recipient; or the job as it must be sent).
- After each SMTP acceptance, ``record(job, partition, sent_at)`` runs before the job counts
  as finished: it writes the ledger and the notices topic.
- Temporary failures (4xx, connection errors, timeouts; the pool tries once) keep the job owed: it is retried with growing, jittered delays until ``give_up_seconds``
  after its first try, then dead-lettered. Permanent failures (5xx) are dead-lettered at once, and
  ``refused(job, result)`` is told first (it suppresses the address: ``streams/suppressions.py``).
- ``hold(partitions)``: set the queued jobs (and the rest of the submitted iterables) of those
  partitions aside and wait for their in-flight sends (on revocation); ``resume(partitions)``
  takes them up again (the partitions came back), ``drop(partitions)`` forgets them (they went
  to another worker); ``stop()`` finishes the sends under way and gives up the rest.
- At most ``concurrency`` sends are under way (``in_flight`` when given: with ``deliver``
  handing jobs to helper processes, twice the SMTP connections, so that the pipes' latency
  never leaves a connection idle).
- ``rate_limit`` (``OUTAGE_SMTP_RATE``; ``rate_cap`` tells it, None: no limit): each hand-over to
  the SMTP server (retries too) first waits for the pacer (``streams/pacing.py``), after
  ``refresh`` (a skipped job takes no slot), so at most that many start in any one second,
  evenly spaced; jobs waiting for it hold their runner (they are under way).
SMTP is reached only through the ``Mailer`` interface (or ``deliver``, which composes and sends
elsewhere); composing the bytes is a function.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Awaitable, Callable, Iterable, Iterator

from domain.audience import NoticeJob
from core.logs import log_context
from core.vocabulary import SCHEDULED
from domain.retry import RetryPolicy
from domain.schedule import SendRate
from notifiers.smtp import SendResult, scrub
from streams import metrics as M
from streams.pacing import Pacer

log = logging.getLogger(__name__)

# a sent notice whose record (ledger and ``notices``) the broker holds back this long: the broker
# stalls (a partition's leader lost, the cluster unreachable), which says nothing of the send rate
RECORD_STALL_SECONDS = 1.0


@dataclass
class _Batch:
    remaining: int
    on_done: Callable[[], None] | None
    partition: int = -1
    outcomes: Counter = field(default_factory=Counter)   # what became of its jobs, for the log

    def finish_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and self.on_done is not None:
            done, self.on_done = self.on_done, None
            log.info("sender: a plan on partition %d is finished (%s)", self.partition,
                     ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items())) or "nothing owed")
            done()


@dataclass(order=True)
class _Source:
    """What is left of one ``submit``: jobs drawn on demand."""

    deadline: float
    order: int
    jobs: Iterator[NoticeJob] = field(compare=False)
    partition: int = field(compare=False)
    batch: _Batch = field(compare=False)
    size: Callable[[], int] = field(compare=False)   # estimate of the jobs still to come
    key: tuple[str, int] | None = field(default=None, compare=False)  # (incident, seq) of a round's plan


@dataclass(order=True)
class _Item:
    deadline: float
    order: int
    job: NoticeJob = field(compare=False)
    partition: int = field(compare=False)
    batch: _Batch = field(compare=False)
    attempts: int = field(default=0, compare=False)
    first_try: float | None = field(default=None, compare=False)
    key: tuple[str, int] | None = field(default=None, compare=False)  # of the plan it was drawn from
    joined: list = field(default_factory=list, compare=False)  # other calls' batches waiting for it

    @property
    def domain(self) -> str:
        return self.job.email.rpartition("@")[2].lower()

    @property
    def recipient(self) -> tuple[str, str, str]:
        return self.job.incident_id, self.job.customer_id, self.job.recipient


PARK_LIMIT = 1000   # jobs parked for one domain at its connection cap before the sender stops drawing


def deadline_of(job: NoticeJob) -> float:
    """When the notice is due: its recipient's own deadline (a holding update's), else the promise
    its round keeps, else as soon as possible (its round's time)."""
    if job.due is not None and job.kind == SCHEDULED:
        return job.due
    return deadline_of_round(job.round)


def deadline_of_round(rnd) -> float:
    return (rnd.keeps or rnd.at).timestamp()


class _Listed:
    """The jobs of a list, earliest deadline first, drawn one by one; ``deadline`` is the next
    one's, so the sender's order between sources stays the jobs' own (a source ordered by its
    first job alone was drawn whole before another whose jobs were due earlier: the holding
    updates of two partitions released in one pass left one partition's after the other's)."""

    __slots__ = ("_jobs", "_next")

    def __init__(self, jobs) -> None:
        self._jobs = sorted(jobs, key=deadline_of)
        self._next = 0

    def __iter__(self) -> "_Listed":
        return self

    def __next__(self) -> NoticeJob:
        if self._next >= len(self._jobs):
            raise StopIteration
        self._next += 1
        return self._jobs[self._next - 1]

    def left(self) -> int:
        return len(self._jobs) - self._next

    def deadline(self) -> float | None:
        return deadline_of(self._jobs[self._next]) if self._next < len(self._jobs) else None


class Sender:
    def __init__(self, *, mailer, mail_from: str, compose: Callable[[NoticeJob, datetime], bytes],
                 record: Callable[[NoticeJob, int, datetime], Awaitable[None]],
                 refresh: Callable[[NoticeJob, int], NoticeJob | None],
                 dead_letter: Callable[[NoticeJob, str], Awaitable[None]],
                 clock: Callable[[], datetime], concurrency: int = 8, domain_concurrency: int | None = None,
                 retry: RetryPolicy = RetryPolicy(), give_up_seconds: float | None = None,
                 retry_max_delay: float | None = None, rng: random.Random | None = None,
                 deliver: Callable[[NoticeJob, datetime], Awaitable[SendResult]] | None = None,
                 in_flight: int | None = None, rate_limit: float | None = None,
                 refused: Callable[[NoticeJob, SendResult], Awaitable[None]] | None = None,
                 gate: Callable[[], Awaitable[None]] | None = None) -> None:
        self._mailer = mailer
        self._gate = gate   # awaited before each send (the suppressed addresses read first)
        # compose and send, in one call (e.g. in helper processes); else compose here, then mailer.send
        self._deliver = deliver or self._compose_and_send
        self._mail_from = mail_from
        self._compose = compose
        self._record = record
        self._refresh = refresh
        self._dead_letter = dead_letter
        self._refused = refused
        self._clock = clock
        # sends under way at once: the SMTP connections, or more when ``deliver`` hands jobs to
        # helper processes (jobs wait there for a connection, so the pipe's latency is covered)
        self._concurrency = in_flight or concurrency
        self._domain_cap = domain_concurrency or max(1, concurrency * 3 // 4)
        # temporary failures: retried here alone, under one policy (domain/retry.py); the two
        # numbers, when given, override the policy's give-up age and longest delay
        if give_up_seconds is not None:
            retry = replace(retry, give_up_after=give_up_seconds)
        if retry_max_delay is not None:
            retry = replace(retry, max_delay=retry_max_delay)
        self.retry = retry
        self._pacer = Pacer.of(rate_limit)   # OUTAGE_SMTP_RATE: None, no limit
        # the server unreachable (no reply at all): every runner pauses, growing like one job's
        # retries, instead of trying each queued job in turn (a storm of tries and compositions)
        self._unreachable = 0          # consecutive pauses, each begun by a send that got no reply
        self._paused_until = 0.0
        self._rng = rng or random.Random()  # the jitter of the retries
        self._heap: list[_Item] = []                        # ready to send
        self._sources: list[_Source] = []                   # submitted, not yet drawn (a heap)
        self._parked: dict[str, list[_Item]] = defaultdict(list)  # domain at its cap
        self._waiting: dict[int, _Item] = {}                # backing off after a temporary failure
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._busy_domains: Counter[str] = Counter()
        self._in_flight: Counter[int] = Counter()           # partition -> sends under way
        self._owed: Counter[int] = Counter()                # partition -> jobs not finished
        self._owed_incident: Counter[str] = Counter()       # incident -> jobs drawn, not finished
        self._pending: dict[str, _Item] = {}    # Message-ID -> the queued or in-flight job
        self._held: dict[int, list] = {}                    # partition -> items and sources set aside
        # (incident, customer, recipient) of each send under way, and the jobs for the same
        # recipient that wait for it (so the ledger shows its outcome when theirs is worked out)
        self._sending: dict[tuple[str, str, str], list[_Item]] = {}
        self._changed = asyncio.Condition()
        self._order = itertools.count()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.rate = SendRate()
        self._recording: dict[int, float] = {}              # records under way -> when each began

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if not self._tasks and not self._stopping:
            self._tasks = [asyncio.create_task(self._run(), name=f"sender-{i}") for i in range(self._concurrency)]

    @property
    def rate_cap(self) -> float | None:
        """The most notices per second handed to the SMTP server (``OUTAGE_SMTP_RATE``), None
        when unlimited: a planner's rate is ``min(rate.value, rate_cap)``."""
        return None if self._pacer is None else self._pacer.rate

    @property
    def depth(self) -> int:
        """Notices owed: drawn and not finished, plus an estimate of those still to be drawn."""
        return sum(self._owed.values()) + sum(src.size() for src in self._sources)

    def pending_in(self, partitions: Iterable[int] | None = None) -> int:
        if partitions is None:
            return self.depth
        parts = set(partitions)
        return (sum(self._owed[p] for p in parts)
                + sum(src.size() for src in self._sources if src.partition in parts))

    def drawn_for(self, incident_id: str) -> int:
        """The incident's notices drawn from its plans and not finished yet (queued, parked,
        waiting for a retry, held or under way)."""
        return self._owed_incident.get(incident_id, 0)

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish the sends under way, give up the queued ones (their rounds replay), stop."""
        self._stopping = True
        await self.hold(None, timeout=timeout)
        self.drop(list(self._held))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _extract(self, pick: Callable[[object], bool]) -> list:
        """Take every queued item and not-yet-drawn source that ``pick`` selects out of the queues
        (in-flight sends are not touched)."""
        taken = [src for src in self._sources if pick(src)]
        self._sources = [src for src in self._sources if not pick(src)]
        heapq.heapify(self._sources)
        taken += [i for i in self._heap if pick(i)]
        self._heap = [i for i in self._heap if not pick(i)]
        heapq.heapify(self._heap)
        for domain, items in list(self._parked.items()):
            taken += [i for i in items if pick(i)]
            kept = [i for i in items if not pick(i)]
            heapq.heapify(kept)
            if kept:
                self._parked[domain] = kept
            else:
                del self._parked[domain]
        for waiting in self._sending.values():
            taken += [i for i in waiting if pick(i)]
            waiting[:] = [i for i in waiting if not pick(i)]
        for item in [i for i in self._waiting.values() if pick(i)]:
            self._waiting.pop(id(item), None)
            handle = self._timers.pop(id(item), None)
            if handle:
                handle.cancel()
            taken.append(item)
        return taken

    def _discard(self, taken: list) -> None:
        for entry in taken:
            if isinstance(entry, _Item):
                self._forget(entry)

    async def hold(self, partitions: Iterable[int] | None, timeout: float = 30.0) -> bool:
        """Set the queued jobs of ``partitions`` (all when None) aside and wait for their
        in-flight sends; False if some were still under way after ``timeout``."""
        parts = set(self._partitions_known()) if partitions is None else set(partitions)
        taken = self._extract(lambda e: e.partition in parts)
        for entry in taken:
            self._held.setdefault(entry.partition, []).append(entry)
        for p in parts:
            self._held.setdefault(p, [])
        async with self._changed:
            self._changed.notify_all()
        deadline = time.monotonic() + timeout
        while any(self._in_flight[p] for p in parts):
            if time.monotonic() > deadline:
                log.warning("sender: sends still under way after %.0fs", timeout)
                return False
            await asyncio.sleep(0.02)
        return True

    async def resume(self, partitions: Iterable[int]) -> None:
        """Take up again what ``hold`` set aside for ``partitions``."""
        async with self._changed:
            for p in partitions:
                for entry in self._held.pop(p, ()):
                    heapq.heappush(self._sources if isinstance(entry, _Source) else self._heap, entry)
            self._changed.notify_all()

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget what was held for ``partitions`` (they went to another worker); returns how
        many notices that was (not counting the rest of the plans)."""
        dropped = 0
        for p in partitions:
            taken = self._held.pop(p, [])
            dropped += sum(isinstance(e, _Item) for e in taken)
            self._discard(taken)
        if dropped:
            log.info("sender: %d queued notices left to the next owner of their partitions", dropped)
        M.SEND_QUEUE.set(self.depth)
        return dropped

    def held(self) -> set[int]:
        return set(self._held)

    def _partitions_known(self) -> set[int]:
        return ({s.partition for s in self._sources} | {i.partition for i in self._heap}
                | {i.partition for items in self._parked.values() for i in items}
                | {i.partition for i in self._waiting.values()} | set(self._in_flight)
                | {i.partition for items in self._sending.values() for i in items})

    def has(self, partition: int, key: tuple[str, int]) -> bool:
        """Whether the plan ``key`` on ``partition`` is queued here (also while held)."""
        return any(src.partition == partition and src.key == key
                   for src in itertools.chain(self._sources, *self._held.values()) if isinstance(src, _Source))

    # -- intake ----------------------------------------------------------------------------
    async def submit(self, jobs: Iterable[NoticeJob], partition: int, on_done: Callable[[], None] | None = None,
                     size: Callable[[], int] | None = None, key: tuple[str, int] | None = None) -> bool:
        """Queue ``jobs`` (drawn lazily, earliest deadline first); ``size()`` estimates how many
        are still to come (for ``depth``), ``len(jobs)`` when not given. ``key``: the (incident,
        seq) of a round's plan, which replaces the queued jobs of that incident's older rounds on
        this partition. False when that plan is queued already (nothing is added)."""
        await self.start()
        if key is not None:
            if self.has(partition, key):
                return False
            incident, seq = key
            older = self._extract(lambda e: e.partition == partition and e.key is not None
                                  and e.key[0] == incident and e.key[1] < seq)
            self._discard(older)
            for entries in self._held.values():
                stale = [e for e in entries if e.partition == partition and e.key is not None
                         and e.key[0] == incident and e.key[1] < seq]
                for e in stale:
                    entries.remove(e)
                self._discard(stale)
            if older:
                log.info("sender: a newer round of an incident replaces %d queued notices on partition %d",
                         sum(isinstance(e, _Item) for e in older), partition)
        if isinstance(jobs, (list, tuple)):
            if not jobs:
                if on_done:
                    on_done()
                return
            jobs = _Listed(jobs)
            deadline = jobs.deadline()
            size = size or jobs.left
        else:  # a lazy plan (a ``RoundPlan``) of one round says which through ``.round``
            deadline = deadline_of_round(jobs.round)
        self.rate.busy()
        async with self._changed:
            source = _Source(deadline, next(self._order), iter(jobs), partition, _Batch(1, on_done, partition),
                             size or (lambda: 0), key)
            if partition in self._held:
                self._held[partition].append(source)
            else:
                heapq.heappush(self._sources, source)
            self._changed.notify_all()
        M.SEND_QUEUE.set(self.depth)
        return True

    # -- the work --------------------------------------------------------------------------
    def _take(self) -> _Item | None:
        """The earliest-deadline job whose domain has a free connection (others are parked)."""
        while True:
            source = self._sources[0] if self._sources else None
            if self._heap and (source is None or self._heap[0].deadline <= source.deadline):
                item = heapq.heappop(self._heap)
            elif source is not None:
                item = self._draw(source)
                if item is None:
                    continue
            else:
                return None
            if self._busy_domains[item.domain] >= self._domain_cap:
                parked = self._parked[item.domain]
                heapq.heappush(parked, item)
                if len(parked) >= PARK_LIMIT:
                    # a domain at its cap with this much waiting: wait for one of its sends rather
                    # than draw the rest of the plans into memory looking for other domains (an
                    # audience mostly at one domain was drawn whole at once)
                    return None
                continue
            waiting = self._sending.get(item.recipient)
            if waiting is not None:
                waiting.append(item)   # the same recipient's send under way decides what this one is
                continue
            return item

    def _draw(self, source: _Source) -> _Item | None:
        """The next job of the earliest source; None (and the source gone) when it is exhausted."""
        try:
            for job in source.jobs:
                known = self._pending.get(job.message_id)
                if known is not None:
                    # queued already (a replayed round): sent once, by the first, and this call is
                    # finished only when that job is (measured: a round replayed after a broker
                    # outage counted its 51 queued notices as finished, was marked done, and the
                    # worker that took the partition over sent none of them)
                    source.batch.outcomes["queued already"] += 1
                    source.batch.remaining += 1
                    known.joined.append(source.batch)
                    continue
                self._owed[source.partition] += 1
                self._owed_incident[job.incident_id] += 1
                source.batch.remaining += 1
                # its own deadline (a holding update's is its contact's): a list's jobs differ
                item = _Item(deadline_of(job), next(self._order), job, source.partition, source.batch,
                             key=source.key)
                self._pending[job.message_id] = item
                if isinstance(source.jobs, _Listed) and (after := source.jobs.deadline()) is not None:
                    source.deadline = after          # the source is the heap's top: in place again
                    heapq.heapreplace(self._sources, source)
                return item
        except Exception as exc:  # a broken plan must not stop the sender; a replay would break again
            log.error("sender: the rest of a round on partition %d could not be planned (%s: %s)",
                      source.partition, type(exc).__name__, exc)
            M.NOTICE_FAILURES.labels("error").inc()
        heapq.heappop(self._sources)
        source.batch.finish_one()
        # the gauge counted the plan's estimate of what was left (a candidate may yield nothing: a
        # customer deleted since its last notice); it read 1 with nothing queued until the next send
        M.SEND_QUEUE.set(self.depth)
        return None

    def _requeue(self, item: _Item) -> None:
        if item.partition in self._held:
            self._held[item.partition].append(item)
        else:
            heapq.heappush(self._heap, item)

    def _unpark(self, domain: str) -> None:
        parked = self._parked.get(domain)
        if parked:
            heapq.heappush(self._heap, heapq.heappop(parked))
        if not parked:
            self._parked.pop(domain, None)

    async def _run(self) -> None:
        while True:
            async with self._changed:
                item = None
                while item is None:
                    pause = self._paused_until - time.monotonic()
                    if pause > 0:
                        try:
                            await asyncio.wait_for(self._changed.wait(), pause)
                        except asyncio.TimeoutError:
                            pass
                        continue
                    item = self._take()
                    if item is None:
                        await self._changed.wait()
                self._busy_domains[item.domain] += 1
                self._in_flight[item.partition] += 1
                self._sending[item.recipient] = []
            finished = True
            try:
                finished = await self._send_one(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one notice stop the sender
                log.error("sender: unexpected %s for a %s notice", type(exc).__name__, item.job.kind)
                log.debug("traceback", exc_info=True)
                M.NOTICE_FAILURES.labels("error").inc()
                await self._dead_letter(item.job, f"{type(exc).__name__}: {exc}")
            finally:
                async with self._changed:
                    self._busy_domains[item.domain] -= 1
                    self._in_flight[item.partition] -= 1
                    for later in self._sending.pop(item.recipient, ()):
                        self._requeue(later)
                    self._unpark(item.domain)
                    if finished:
                        self._forget(item)
                        item.batch.finish_one()
                        for batch in item.joined:
                            batch.finish_one()
                    if not self._owed and not self._sources:
                        self.rate.idle()
                    self._changed.notify_all()
                M.SEND_QUEUE.set(self.depth)

    def _forget(self, item: _Item) -> None:
        if self._pending.get(item.job.message_id) is item:
            del self._pending[item.job.message_id]
        self._owed[item.partition] -= 1
        if self._owed[item.partition] <= 0:
            del self._owed[item.partition]
        self._owed_incident[item.job.incident_id] -= 1
        if self._owed_incident[item.job.incident_id] <= 0:
            del self._owed_incident[item.job.incident_id]

    def _retry_later(self, item: _Item, delay: float) -> None:
        """Send ``item`` again in ``delay`` seconds (what ``self.retry`` said); it stays owed
        meanwhile, holding no connection."""
        self._waiting[id(item)] = item

        def back() -> None:
            self._timers.pop(id(item), None)
            if self._waiting.pop(id(item), None) is not None and not self._stopping:
                self._requeue(item)
                asyncio.ensure_future(self._notify())

        self._timers[id(item)] = asyncio.get_running_loop().call_later(delay, back)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _compose_and_send(self, job: NoticeJob, now: datetime) -> SendResult:
        data = self._compose(job, now)
        started = time.perf_counter()
        result = await self._mailer.send(self._mail_from, job.email, data)
        M.SMTP_SECONDS.observe(time.perf_counter() - started)
        return result

    async def _record_and_count(self, item: _Item, job: NoticeJob) -> None:
        """Record a sent notice and count it in the send rate, unless the broker held a record
        back meanwhile (measured on three Kafka nodes: a leader lost mid fan-out held the records
        for 12 s, the windows with that stall made the rate 14/s instead of 100/s, and the next
        round started 44 s early with its promise stretched to three intervals). The window with a
        held record is dropped, and what is sent while one is held does not count."""
        self._recording[id(item)] = began = time.monotonic()
        try:
            await self._record(job, item.partition, self._clock())
        finally:
            self._recording.pop(id(item), None)
        now = time.monotonic()
        if now - began >= RECORD_STALL_SECONDS:
            self.rate.interrupt()
        elif not any(now - t >= RECORD_STALL_SECONDS for t in self._recording.values()):
            self.rate.tick()

    async def _send_one(self, item: _Item) -> bool:
        """Send one job; True when it is finished (sent, skipped or dead-lettered). Its log lines
        carry its incident (or maintenance) and round in the JSON format."""
        rnd = item.job.round
        with log_context(incident=getattr(rnd, "incident_id", None), round=getattr(rnd, "seq", None)):
            return await self._send_one_now(item)

    async def _send_one_now(self, item: _Item) -> bool:
        if self._gate is not None:
            await self._gate()
        job = self._refresh(item.job, item.partition)
        if job is None:
            M.NOTICES_SKIPPED.inc()
            item.batch.outcomes["owed no more"] += 1
            return True
        if self._pacer is not None:
            await self._pacer.wait()   # this hand-over's slot in the second (then ``now`` is taken)
        now = self._clock()
        item.first_try = item.first_try or time.monotonic()
        try:
            result = await self._deliver(job, now)
        except ValueError as exc:  # e.g. a header the message builder refuses: the notice cannot exist
            M.NOTICE_FAILURES.labels("permanent").inc()
            log.warning("sender: a %s notice could not be composed (%s)", job.kind, type(exc).__name__)
            await self._dead_letter(job, f"could not compose the notice: {exc}")
            return True
        if result.accepted:
            item.batch.outcomes["sent"] += 1
            self._unreachable, self._paused_until = 0, 0.0
            await self._record_and_count(item, job)
            M.NOTICES_SENT.labels(job.kind).inc()
            return True
        if result.permanent:
            M.NOTICE_FAILURES.labels("permanent").inc()
            log.warning("sender: %s notice refused for good: %s", job.kind, scrub(result.describe()))
            if self._refused is not None:
                try:
                    await self._refused(job, result)
                except Exception as exc:  # noqa: BLE001 - the notice is dead-lettered all the same
                    log.warning("sender: the refused address could not be suppressed (%s)", type(exc).__name__)
            await self._dead_letter(job, f"SMTP permanent failure: {result.describe()}")
            return True
        M.NOTICE_FAILURES.labels("temporary").inc()
        if result.code is None:   # no reply: the server, not this message; hold every send a while
            moment = time.monotonic()
            if moment >= self._paused_until:
                # the first failure since the last pause ended: one more step of the pause (the
                # sends that were under way with it fail too, and count as the same step)
                self._unreachable += 1
                self._paused_until = moment + self.retry.delay(self._unreachable, self._rng.random)
            self.rate.interrupt()  # an outage is not a slow rate
        item.attempts += 1
        age = time.monotonic() - item.first_try
        delay = self.retry.next_delay(item.attempts, age, self._rng.random)
        if delay is None:  # past the give-up age: dead-lettered with the reason
            result = replace(result, attempts=item.attempts)
            log.warning("sender: %s notice undeliverable for %.0fs, giving up: %s", job.kind, age,
                        scrub(result.describe()))
            await self._dead_letter(job, f"SMTP temporary failures for {age:.0f}s: {result.describe()}")
            return True
        log.warning("sender: %s notice not delivered yet (%s); retrying in %.1fs", job.kind,
                    scrub(result.describe()), delay)
        self._retry_later(item, delay)
        return False
