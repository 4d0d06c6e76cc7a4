"""The pacer: at most ``rate`` SMTP hand-overs per second from one worker, spread over the second.

Contract (what the sender and the tests may rely on):
- ``await pacer.wait()`` returns when the caller may start one hand-over. Consecutive returns are
  at least ``interval`` = ``SAFETY / rate`` seconds apart, so ``rate + 1`` of them never fall in
  one second (``SAFETY`` > 1 keeps float error from ever letting them): in any one-second
  window at most ``rate`` hand-overs start, and they are spread evenly, never a burst.
- Nothing is saved up while idle: after any pause, one caller goes at once and the next waits
  the full ``interval``.
- Callers waiting together are let through one at a time, first come first served. A caller
  cancelled while it waits takes no slot.
- The clock is the running event loop's (``loop.time()``): a test drives it with a loop whose
  time is virtual. One pacer belongs to one event loop.
- ``Pacer.of(rate)``: a pacer, or None for no limit (``rate`` None), as ``OUTAGE_SMTP_RATE``
  says; a rate that is not a finite number above 0 is refused (``ValueError``).

It is ``aiolimiter.AsyncLimiter`` with a capacity of one: a leaky bucket that holds one
hand-over and drains in ``interval``, which is exactly the spacing above (a capacity of ``rate``
per second would allow a burst of ``rate`` at once, and up to twice ``rate`` in one second).
"""

from __future__ import annotations

import math

from aiolimiter import AsyncLimiter

__all__ = ["Pacer", "SAFETY"]

# the spacing's margin over 1/rate: rate sends then span rate × 1.001/rate > 1 s, by far more
# than any float error of the clock or the bucket's arithmetic
SAFETY = 1.001


class Pacer:
    """Spaces the hand-overs of one worker at least ``SAFETY / rate`` seconds apart."""

    __slots__ = ("_rate", "_limiter")

    def __init__(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a send rate is a finite number of messages per second above 0, not {rate!r}")
        self._rate = float(rate)
        self._limiter = AsyncLimiter(1, SAFETY / self._rate)

    @classmethod
    def of(cls, rate: float | None) -> "Pacer | None":
        """A pacer for ``rate`` messages per second; None (no limit) when ``rate`` is None."""
        return None if rate is None else cls(rate)

    @property
    def rate(self) -> float:
        """The most hand-overs started in any one second."""
        return self._rate

    @property
    def interval(self) -> float:
        """The least time between two hand-overs, in seconds."""
        return SAFETY / self._rate

    async def wait(self) -> None:
        """Wait until one more hand-over may start now (and count it)."""
        await self._limiter.acquire()

    def __repr__(self) -> str:
        return f"Pacer(rate={self._rate:g})"
