"""The sender: a bounded queue of notice jobs drained outside the consume loop.

Runtime contract (what the agents and the tests may rely on):
- ``submit(jobs, partition, on_done)`` waits while the queue is full (back-pressure on the
  consuming agent), and calls ``on_done()`` once every job of that call is finished: accepted
  and recorded, skipped as already sent, or failed for good (dead-lettered).
- A job whose Message-ID is pending, or that the ledger shows sent, is not sent again.
- After each SMTP acceptance, ``record(job, partition, sent_at)`` runs before the job counts
  as finished: it writes the ledger and the notices topic.
- ``drain(partitions)`` waits until no job of those partitions is queued or in flight
  (used on rebalance and on stop, so a stopped worker leaves nothing owed and nothing doubled).
SMTP is reached only through the ``Mailer`` interface; composing the bytes is a function.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Awaitable, Callable, Iterable

from domain.audience import NoticeJob
from streams import metrics as M

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    remaining: int
    on_done: Callable[[], None] | None

    def finish_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and self.on_done is not None:
            done, self.on_done = self.on_done, None
            done()


@dataclass
class _Item:
    job: NoticeJob
    partition: int
    batch: _Batch


@dataclass
class SendRate:
    """Exponentially smoothed emails/second of this worker, for starting rounds early enough."""

    value: float = 50.0  # a cautious prior until measured
    _window_start: float = field(default_factory=time.monotonic)
    _count: int = 0

    def tick(self) -> None:
        self._count += 1
        elapsed = time.monotonic() - self._window_start
        if elapsed >= 2.0:
            measured = self._count / elapsed
            self.value = 0.7 * self.value + 0.3 * measured if self.value else measured
            self._window_start, self._count = time.monotonic(), 0


class Sender:
    def __init__(self, *, mailer, mail_from: str, compose: Callable[[NoticeJob, datetime], bytes],
                 record: Callable[[NoticeJob, int, datetime], Awaitable[None]],
                 already_sent: Callable[[NoticeJob], bool],
                 dead_letter: Callable[[NoticeJob, str], Awaitable[None]],
                 clock: Callable[[], datetime], concurrency: int = 8, queue_size: int = 10_000) -> None:
        self._mailer = mailer
        self._mail_from = mail_from
        self._compose = compose
        self._record = record
        self._already_sent = already_sent
        self._dead_letter = dead_letter
        self._clock = clock
        self._concurrency = concurrency
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=queue_size)
        self._pending: set[str] = set()
        self._per_partition: Counter[int] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task] = []
        self.rate = SendRate()

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(), name=f"sender-{i}") for i in range(self._concurrency)]

    async def stop(self, timeout: float = 30.0) -> None:
        await self.drain(timeout=timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def depth(self) -> int:
        return sum(self._per_partition.values())

    def pending_in(self, partitions: Iterable[int] | None = None) -> int:
        if partitions is None:
            return self.depth
        return sum(self._per_partition[p] for p in partitions)

    async def drain(self, partitions: Iterable[int] | None = None, timeout: float = 30.0) -> bool:
        parts = None if partitions is None else set(partitions)
        deadline = time.monotonic() + timeout
        while self.pending_in(parts) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        left = self.pending_in(parts)
        if left:
            log.warning("sender: %d notices still owed after %.0fs drain", left, timeout)
        return left == 0

    # -- intake ----------------------------------------------------------------------------
    async def submit(self, jobs: list[NoticeJob], partition: int, on_done: Callable[[], None] | None = None) -> int:
        await self.start()
        fresh = [j for j in jobs if j.message_id not in self._pending]
        batch = _Batch(len(fresh), on_done)
        if not fresh:
            if on_done:
                on_done()
            return 0
        for job in fresh:
            self._pending.add(job.message_id)
            self._per_partition[partition] += 1
            M.SEND_QUEUE.set(self.depth)
            await self._queue.put(_Item(job, partition, batch))
        return len(fresh)

    # -- the work --------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._send_one(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one notice stop the sender
                log.exception("sender: unexpected error for a %s notice", item.job.kind)
                M.NOTICE_FAILURES.labels("error").inc()
            finally:
                self._pending.discard(item.job.message_id)
                self._per_partition[item.partition] -= 1
                if self._per_partition[item.partition] <= 0:
                    del self._per_partition[item.partition]
                M.SEND_QUEUE.set(self.depth)
                item.batch.finish_one()
                self._queue.task_done()

    async def _send_one(self, item: _Item) -> None:
        job = item.job
        if self._already_sent(job):
            M.NOTICES_SKIPPED.inc()
            return
        now = self._clock()
        data = self._compose(job, now)
        started = time.perf_counter()
        result = await self._mailer.send(self._mail_from, job.email, data)
        M.SMTP_SECONDS.observe(time.perf_counter() - started)
        if result.accepted:
            sent_at = self._clock()
            await self._record(job, item.partition, sent_at)
            self.rate.tick()
            M.NOTICES_SENT.labels(job.kind).inc()
            return
        reason = "permanent" if result.permanent else "temporary"
        M.NOTICE_FAILURES.labels(reason).inc()
        log.warning("sender: %s notice not delivered (%s): %s", job.kind, reason, result.describe())
        await self._dead_letter(job, f"SMTP {reason} failure: {result.describe()}")
