"""When a scheduled round must start so that its last email still arrives by the promise."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timedelta
from typing import Callable

MIN_RATE = 1.0  # emails/s assumed at the very least, so a lead is always finite
# The send time is padded by half: a round's rate is measured on the previous one, and rounds
# differ (benchmark: a scheduled round to 100,000 contacts went 15 % slower than the
# acknowledged one it followed, and with no padding 11 % of it arrived up to 10 s late).
# Starting early costs nothing: the holding update simply arrives a little before its time.
SEND_TIME_HEADROOM = 1.5
# While the incident's previous round is still being sent here, the next one waits for it to end
# (so nobody is acknowledged by a newer round, nor told the same thing twice in a minute) when
# it can still keep the promise with this smaller pad: the rate is then being measured on the
# very work the next round repeats, through the same connections.
TIGHT_HEADROOM = 1.1


def send_seconds(send_rate: float | None, audience: int) -> float:
    """How long ``audience`` emails take at ``send_rate`` (0 while the rate is being measured)."""
    if send_rate is None:
        return 0.0
    return audience / max(send_rate, MIN_RATE)


def lead_time(send_rate: float | None, *, audience: int, base: timedelta, latency: float = 0.0,
              headroom: float = SEND_TIME_HEADROOM) -> timedelta:
    """How long before the promised time a scheduled round must start.

    ``base`` (a safety margin), plus twice the measured pipeline latency (tick -> decision and
    decision -> audience are one hop each), plus the time ``audience`` emails (the round's own
    and those queued ahead of it) take at ``send_rate`` (emails/second), padded by
    ``SEND_TIME_HEADROOM``.

    ``send_rate`` None means it is being measured right now (a big round has just started):
    within one measuring window (2 s) it is known, and a cautious guess meanwhile would start
    the next round absurdly early (an unmeasured 50/s made a 100,000-contact round "need" an
    hour and sent everyone a second email minutes after the first), so only the margin and
    the latency count until then.
    """
    if send_rate is None:
        return base + timedelta(seconds=2 * max(latency, 0.0))
    rate = max(send_rate, MIN_RATE)
    return base + timedelta(seconds=2 * max(latency, 0.0) + headroom * audience / rate)


def scheduled_start(due: datetime, now: datetime, send_rate: float | None, *, audience: int, running: int,
                    base: timedelta, latency: float = 0.0) -> datetime:
    """When the scheduled round that keeps the promise ``due`` should start.

    ``audience``: the emails the round sends here (and those queued ahead of it for other
    incidents); ``running``: the emails the incident's previous round still has to send here.
    As late as the lead allows (``due - lead_time``); but if the previous round is still being
    sent then, the round waits for it to end as long as it can still keep the promise with the
    smaller ``TIGHT_HEADROOM`` — two rounds overlap only when waiting would break the promise.
    """
    start = due - lead_time(send_rate, audience=audience, base=base, latency=latency)
    if running <= 0 or send_rate is None:
        return start
    previous_ends = now + timedelta(seconds=running / max(send_rate, MIN_RATE))
    latest = due - lead_time(send_rate, audience=audience, base=base, latency=latency, headroom=TIGHT_HEADROOM)
    return previous_ends if start < previous_ends <= latest else start


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
