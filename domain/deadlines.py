"""Per-contact deadlines: each contact's next notice is due by the time its last notice stated.

A promised time belongs to the contact it was stated to. With one deadline per contact, sent
earliest first, the relay has to carry each contact once per interval, not the whole audience
before one shared instant. The rules, pure (the time is passed in):

- ``stated_promise``: the next-update time a notice states when it is composed.
- ``release_at``: when a contact's holding update must join the send queue so that it still
  arrives by its deadline; ``earliest_release``: never sooner than a third of the span the
  contact's latest notice promised (at least an interval) before that deadline, nor than two
  thirds of an interval after that notice.
- ``stretch``: how much later than one interval a promise must be when this worker's measured
  send rate cannot carry its audience once per interval (with more margin when it is short).
- ``look_ahead``: how far ahead the deadlines are counted when planning when to start.
- ``DeadlineIndex``: the deadlines of one partition's contacts ordered by time, so the ones
  coming due are found without scanning them all.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sortedcontainers import SortedDict

from core.vocabulary import SCHEDULED

# a holding update may be sent at most this share of an interval before its deadline: the one
# before it was sent no later than its own deadline, one interval earlier, so two notices without
# news are always at least two thirds of an interval apart
EARLIEST_SHARE = 1 / 3
# the queue ahead of a holding update is waited for as if the rate were half the measured one:
# the rate measured in one pass is not the rate of the next. Measured: a pass of holding updates
# ran 15 % slower than the round that set their deadlines; after a kill -9 on Kafka a survivor,
# idle since its first pass, released its last 220 to 835 holding updates, due within 2 to 9 s,
# planned at the 97 to 142/s it had just measured, and sent them at 70 to 100/s: with 1.25, up
# to 2,425 contacts were 1.0 to 1.7 s late (in CI, and in 1 of 8 runs here), with 1.5 the tightest
# of 9 runs kept its promise by 1.8 s, with 2.0 the tightest of 3 by 1.0 s (three workers: two
# sending at once on a relay that one had to itself when it measured its rate). Leaving early
# costs nothing but the queue's order, and never sooner than EARLIEST_SHARE allows
QUEUE_HEADROOM = 2.0
# an operator's explicit next-update time sooner than two thirds of an interval after a contact's
# latest notice: its holding update leaves in this last share of an interval before it
LAST_SHARE = 1 / 6
# the send rate must carry the audience once per interval with this margin, else promises stretch
CAPACITY_TARGET = 1.15
# a stretched promise leaves this margin instead, reached over SHORT_RAMP below CAPACITY_TARGET (so
# the stretch grows smoothly from 1): a relay already short is sending flat out, and a promise
# stated from the rate measured so far has nothing to spare when that rate falls. Measured: with
# 1.15 at 0.7 times, a worker whose rate fell from 40 to 28.5/s (two cores shared with another
# run) 11 s into the test was late for 62 of 1,359 promises, by 1.0 to 1.35 s
# (bench/history/2026-12-04-fault-tests.md). 1.4 keeps the promises already stated through a fall
# of the rate by a quarter while the stretch of the next ones catches up with it
SHORT_TARGET = 1.4
SHORT_RAMP = 0.15
# a stretched promise is at most this many intervals away (never a day away for an hourly cadence)
MAX_STRETCH = 4.0


def stretch(send_rate: float | None, load: float) -> float:
    """The factor (>= 1) by which this worker's promises are later than one interval.

    1 while the rate carries the audience ``CAPACITY_TARGET`` times per interval; below that the
    stretched promises leave a margin that grows to ``SHORT_TARGET`` (at 1.0 times and below), so the
    factor rises continuously from 1: 1.12 at 1.1 times, 1.4 at 1.0, 2.0 at 0.7.

    ``load``: the emails per second its audience needs (the sum over its contacts of one over
    their interval); ``send_rate``: the measured rate (None while unknown: no stretch).
    """
    if send_rate is None or load <= 0:
        return 1.0
    ratio = send_rate / load
    if ratio >= CAPACITY_TARGET:
        return 1.0
    if ratio <= 0:
        return MAX_STRETCH
    short = min(1.0, (CAPACITY_TARGET - ratio) / SHORT_RAMP)
    target = CAPACITY_TARGET + (SHORT_TARGET - CAPACITY_TARGET) * short
    return min(MAX_STRETCH, max(1.0, target / ratio))


def capacity_ratio(send_rate: float | None, load: float) -> float | None:
    """How many times per interval this worker's send rate carries its audience."""
    if send_rate is None or load <= 0:
        return None
    return send_rate / load


def stated_promise(kind: str, *, now: datetime, interval: timedelta, keeps: datetime | None,
                   explicit: datetime | None = None, factor: float = 1.0,
                   margin: timedelta = timedelta(0)) -> datetime:
    """The next-update time a notice of ``kind`` composed at ``now`` states.

    - An operator's explicit ``next_update_at`` (a news round's), while it is still ahead
      (beyond ``margin``), is stated as it is.
    - A holding update (``scheduled``) promises one interval after the promise it keeps
      (``keeps``, the contact's own deadline): the contact's cadence does not drift, and the
      queue that made it leave early is not charged to the next interval.
    - Any other notice (news, an acknowledgement) promises one interval after it is sent, so
      the deadlines of notices sent together are no denser than the relay that sent them. (A
      third of an interval more for an acknowledgement sent by a scheduled round before the
      promise it keeps put those deadlines on top of the next ones: 53 promises missed with a
      leader killed at 1.3 times, bench/history/2026-12-04-fault-tests.md. Its reason, a holding
      update waiting for the next scheduled round, is gone: such a contact's holding update is
      that same round's, ``domain.audience.holding_job``.) Stating the round's own promise
      instead gave all of them one deadline, and 537 were late by up to 4.8 s on the embedded
      broker; a contact reached a moment after its round, sharing the round's own promise a few
      seconds less than an interval ahead, got its holding update 39 s later at a 60 s interval.
    The interval is stretched by ``factor`` when the relay cannot carry the audience once per
    interval. A late holding update promises one interval after it is sent: its own holding
    update, which may leave a third of an interval early, then still comes two thirds of an
    interval after it (promising two thirds from ``now`` gave 40 holding updates a third of an
    interval apart in a bench trial at 1.15 times).
    """
    now = now.astimezone(timezone.utc)
    step = interval * factor
    if explicit is not None and explicit > now + margin:
        return explicit.astimezone(timezone.utc)
    if kind == SCHEDULED and keeps is not None:
        return max(keeps.astimezone(timezone.utc), now) + step
    return now + step


def release_at(due: float, interval: float, *, ahead: int, send_rate: float, base: float,
               factor: float = 1.0) -> float:
    """When (epoch seconds) a holding update due at ``due`` must join the send queue.

    Early enough for the ``ahead`` notices queued before it and itself at ``send_rate`` (with
    ``QUEUE_HEADROOM``), plus ``base`` seconds of margin; never sooner than ``EARLIEST_SHARE`` of
    an interval (stretched by ``factor``, as the promises are) before.
    """
    need = base + QUEUE_HEADROOM * (ahead + 1) / max(send_rate, 1e-6)
    return due - min(need, interval * max(factor, 1.0) * EARLIEST_SHARE)


def earliest_release(due: float, interval: float, sent: float | None) -> float:
    """The soonest (epoch seconds) a holding update due at ``due`` may join the send queue: a third
    of the time its latest notice (``sent``, when known) promised before its deadline (a third of an
    interval when that is unknown or shorter), and two thirds of an interval after that notice.

    - A stretched promise (the relay short) may be kept a third of its own span early: two
      notices are still two thirds of that span apart, and the deadlines of a pass sent at one
      rate can be kept at a lower one (a third of an interval only, at 0.7 times, absorbs a fall of
      the rate by a fifth; a third of the stretched span, by a third).
    - The second bound counts when that notice stated a promise less than one interval ahead: an
      operator's explicit time, a notice sent late. It is not given up to the queue: two notices
      without news are two thirds of an interval apart, and a promise the relay cannot keep is
      counted late. Only an operator's explicit time sooner than that comes first: the holding
      update then leaves in the last ``LAST_SHARE`` of an interval before it.
    """
    span = max(interval, due - sent) if sent is not None else interval
    soonest = due - span * EARLIEST_SHARE
    if sent is not None:
        soonest = max(soonest, min(sent + interval * (1 - EARLIEST_SHARE), due - interval * LAST_SHARE))
    return soonest


def look_ahead(interval: float, factor: float = 1.0) -> float:
    """How far ahead (seconds) the deadlines are counted when working out when the holding updates
    must start leaving (``latest_start``): a third of an interval, and, when promises are stretched
    by ``factor``, the whole stretch beyond one interval as well. The deadlines of a pass sent at
    one rate come due as densely as it was sent; with the rate fallen by a quarter, the pass must
    start well before its first deadlines are within a third of an interval (looking a third of the
    stretched span ahead, 320 of 1,142 contacts were up to 3.5 s late in the list-in, list-out run
    of tests/unit/test_deadlines.py; with this, none)."""
    return interval * (EARLIEST_SHARE + max(factor, 1.0) - 1.0)


def latest_start(buckets: Iterable[tuple[float, int]], *, ahead: int, send_rate: float, base: float) -> float:
    """The latest time (epoch seconds) the holding updates of ``buckets`` may start leaving so
    that each arrives by its deadline: ``buckets`` are (second, contacts due in it), earliest
    first; everything due by a second must be sent, after the ``ahead`` notices queued, by that
    second less ``base`` (at ``send_rate``, with ``QUEUE_HEADROOM``). +inf when nothing is due.

    The queue ahead of the earliest contact alone is not enough: contacts whose notices went out
    faster than they can be kept (a first round sent by two workers, kept by the one left after a
    ``kill -9``) come due closer together than one send apart, and starting at the first one's
    own time left the last of them 20 s late.
    """
    start, count = math.inf, ahead
    rate = max(send_rate, 1e-6)
    for second, n in buckets:
        count += n
        start = min(start, second - base - QUEUE_HEADROOM * count / rate)
    return start


@dataclass(frozen=True, slots=True, order=True)
class Due:
    """One contact's deadline on a partition."""

    at: float                 # epoch seconds
    customer_id: str
    incident_id: str
    recipient: str


class DeadlineIndex:
    """One partition's contacts by deadline: a heap with a map of the current deadline of each.

    ``set`` replaces a contact's deadline (the old heap entry becomes stale and is skipped when
    it surfaces); ``clear`` removes it (the incident ended for the contact). ``load`` is the
    emails per second the partition's audience needs (each contact once per its interval).
    """

    def __init__(self) -> None:
        self._heap: list[Due] = []
        # key -> (due, interval, when its latest notice was accepted or None)
        self._current: dict[tuple[str, str, str], tuple[float, float, float | None]] = {}
        self._seconds: SortedDict = SortedDict()   # whole second -> contacts due in it, not popped
        self._popped: set[tuple[str, str, str]] = set()   # taken out of the order (handed on)
        self.load = 0.0

    def __len__(self) -> int:
        return len(self._current)

    def set(self, customer_id: str, incident_id: str, recipient: str, due: float, interval: float,
            sent: float | None = None) -> None:
        key = (customer_id, incident_id, recipient)
        self.clear(customer_id, incident_id, recipient)
        self._current[key] = (due, interval, sent)
        self.load += 1.0 / max(interval, 1e-6)
        self._count(due, +1)
        heapq.heappush(self._heap, Due(due, customer_id, incident_id, recipient))
        if len(self._heap) > 2 * len(self._current) + 1024:
            self._compact()

    def clear(self, customer_id: str, incident_id: str, recipient: str) -> None:
        key = (customer_id, incident_id, recipient)
        old = self._current.pop(key, None)
        if old is not None:
            self.load = max(0.0, self.load - 1.0 / max(old[1], 1e-6))
            if key in self._popped:
                self._popped.discard(key)
            else:
                self._count(old[0], -1)

    def _count(self, due: float, n: int) -> None:
        second = math.floor(due)
        left = self._seconds.get(second, 0) + n
        if left > 0:
            self._seconds[second] = left
        else:
            self._seconds.pop(second, None)

    @property
    def released(self) -> int:
        """Contacts taken out of the order (handed on to the sender), not recorded since."""
        return len(self._popped)

    def get(self, customer_id: str, incident_id: str, recipient: str) -> tuple[float, float, float | None] | None:
        """(due, interval, sent) of a contact, None if it has no deadline here."""
        return self._current.get((customer_id, incident_id, recipient))

    def earliest(self, item: Due) -> float:
        """The soonest its holding update may join the queue (``earliest_release``)."""
        due, interval, sent = self._current[(item.customer_id, item.incident_id, item.recipient)]
        return earliest_release(due, interval, sent)

    def _live(self, item: Due) -> tuple[float, float, float | None] | None:
        current = self._current.get((item.customer_id, item.incident_id, item.recipient))
        return current if current is not None and current[0] == item.at else None

    def _compact(self) -> None:
        self._heap = [d for d in self._heap if self._live(d) is not None]
        heapq.heapify(self._heap)

    def peek(self) -> tuple[Due, float] | None:
        """The earliest live deadline and its interval."""
        while self._heap:
            live = self._live(self._heap[0])
            if live is not None:
                return self._heap[0], live[1]
            heapq.heappop(self._heap)
        return None

    def pop(self) -> Due:
        """Take the earliest live deadline out of the order (it stays the contact's deadline
        until ``set`` or ``clear``, but no longer counts in ``seconds``); ``peek`` first."""
        item = heapq.heappop(self._heap)
        key = (item.customer_id, item.incident_id, item.recipient)
        if self._live(item) is not None and key not in self._popped:
            self._popped.add(key)
            self._count(item.at, -1)
        return item

    def restore(self, item: Due) -> None:
        """Put a popped deadline back in the order (it could not be served yet)."""
        key = (item.customer_id, item.incident_id, item.recipient)
        if self._live(item) is not None:
            heapq.heappush(self._heap, item)
            if key in self._popped:
                self._popped.discard(key)
                self._count(item.at, +1)

    def seconds(self, until: float) -> Iterator[tuple[float, int]]:
        """(second, contacts due in it) up to ``until``, earliest first (for ``latest_start``);
        a popped contact is not counted (it is in the queue ahead)."""
        for second in self._seconds.irange(maximum=math.floor(until)):
            yield float(second), self._seconds[second]

    def within(self, now: float, seconds: float) -> int:
        """How many contacts are due within ``seconds`` of ``now`` (for ops; scans the heap's
        entries up to that time only)."""
        limit, count, stack = now + seconds, 0, [0] if self._heap else []
        while stack:   # only the heap's nodes up to the limit: a node's children are no earlier
            i = stack.pop()
            item = self._heap[i]
            if item.at > limit:
                continue
            count += self._live(item) is not None
            stack.extend(c for c in (2 * i + 1, 2 * i + 2) if c < len(self._heap))
        return count
