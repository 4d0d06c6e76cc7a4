"""When a scheduled round is decided, and the measures it is planned with (latency, send rate)."""

from __future__ import annotations

import time
from collections import deque
from datetime import timedelta
from typing import Callable

# a scheduled round is decided at most this much before its earliest contacts can come due (beyond
# the margin and the latency), so that a holding update released early (a queue ahead of it) finds
# its round decided, without an hourly incident's round being decided a third of an hour early
ROUND_LEAD_EXTRA = timedelta(seconds=60)


def round_lead(interval: timedelta, *, base: timedelta, latency: float = 0.0) -> timedelta:
    """How long before the incident's promised time its scheduled round is decided.

    Every contact's deadline is at or after the incident's promise, and a holding update is
    released at most a third of an interval before its deadline (``domain.deadlines``): the
    round is decided that much earlier (at most ``ROUND_LEAD_EXTRA`` beyond the margin), never
    less than the margin and the pipeline's latency (one hop each way).
    """
    floor = base + timedelta(seconds=2 * max(latency, 0.0))
    return max(floor, min(interval / 3, floor + ROUND_LEAD_EXTRA))


class LatencyGauge:
    """A cautious estimate of a recurring delay: jumps up to any slower sample at once, decays
    slowly towards faster ones (so one fast round does not shrink the lead)."""

    def __init__(self, initial: float = 0.5, decay: float = 0.05) -> None:
        self.value = initial
        self.decay = decay

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.value = seconds if seconds > self.value else self.value + (seconds - self.value) * self.decay


class SendRate:
    """Emails/second a worker sends *while it has work*: the steady rate that rounds are planned with.

    - Time with nothing to send does not count (an idle hour is not a slow hour).
    - The rate is the emails over the busy seconds of the last ``samples`` whole windows
      (``window`` seconds each), so one odd window moves it little.
    - The first window of each busy period (connections opening, the plan warming up) counts
      only until a later window replaces it, and alone it does not make the rate ``measured``:
      a round's ramp-up measured low, and a scheduled round planned with it started within
      seconds of the first notices.
    - A short burst (a few notices) is measured only if it lasted ``min_window`` seconds and sent
      ``min_count`` emails: a single slow email once made the rate 1/s and the next promise a
      day away.
    - Until a first window has been measured ``measured`` is False and ``value`` is a cautious prior.
    """

    def __init__(self, prior: float = 50.0, window: float = 2.0, min_window: float = 1.0, min_count: int = 20,
                 samples: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        self.value = prior
        self.measured = False
        self._window, self._min_window, self._min_count, self._clock = window, min_window, min_count, clock
        self._samples: deque[tuple[int, float]] = deque(maxlen=samples)
        self._warmup: tuple[int, float] | None = None
        self._start: float | None = None   # start of the current window, None when idle
        self._first = False                # the current window is the first of its busy period
        self._count = 0

    def busy(self) -> None:
        if self._start is None:
            self._start, self._count, self._first = self._clock(), 0, True

    def tick(self) -> None:
        self.busy()
        self._count += 1
        if self._clock() - self._start >= self._window:
            self._fold()

    def idle(self) -> None:
        if (self._start is not None and self._count >= self._min_count
                and self._clock() - self._start >= self._min_window):
            self._fold(whole=self._first)
        self._start = None

    def interrupt(self) -> None:
        """The work stopped for a reason that says nothing of the rate (the server unreachable):
        the current window is dropped, and the next send starts a new busy period."""
        self._start = None

    def _fold(self, whole: bool = False) -> None:
        """Close the current window; ``whole``: it was a whole busy period (warm-up included)."""
        now = self._clock()
        sample = (self._count, max(now - self._start, 1e-6))
        if self._first and not whole:
            self._warmup = sample
        else:
            self._samples.append(sample)
            self.measured = True
        chosen = list(self._samples) or [self._warmup]
        self.value = sum(c for c, _ in chosen) / sum(t for _, t in chosen)
        self._start, self._count, self._first = now, 0, False
