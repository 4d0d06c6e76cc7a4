"""The one retry policy for temporary SMTP failures: how long to wait before each new try, and
when to give up.

A temporary failure is a 4xx reply, a connection error or a timeout (a 5xx is permanent and
never retried). Exactly one layer retries, and that layer is the sender (``streams/sender.py``):

- it already keeps the job owed, ordered earliest deadline first, so a retried notice goes
  back in line by its promise and a job waiting for its retry holds no connection;
- its state outlives a pool: with delivery helpers (``notifiers/delivery.py``) a helper that
  dies or restarts takes in-pool retries with it, while the sender's job stays owed;
- it composes every try afresh, at send time, so a retry never states a promise (or an
  estimate) that has gone by meanwhile; a pool retrying the same bytes could;
- it gives up by age, measured from the job's first try, and dead-letters the job with the
  reason.

A pool retrying inside a connection slot would block that slot for its whole backoff (the old
one: up to 5 attempts within 2 minutes), stacking its own delays and attempts on the sender's. So
``SmtpPool.send`` makes one attempt, with one exception that is not a backoff: when a
kept-alive connection turns out to have been closed by the server meanwhile (a disconnect, or
a ``421`` closing reply), it tries once more at once on a fresh connection, which is cheap
and nearly always works. That never sends twice either, unless the connection was lost after
the message data went out and before the server's reply: that case cannot be told apart from
a lost message, and at least once is the rule.

The rule (pure; the random source is passed in):

- after the ``n``-th failed try, wait ``delay(n)``: the ceiling ``first_delay × 2^(n-1)``,
  capped at ``max_delay``, with "equal jitter" — half the ceiling fixed, half random — so the
  delays grow (the shortest possible one doubles too), never exceed the cap, and jobs that
  failed together do not come back together;
- give up once the job is ``give_up_after`` seconds past its first try; the last wait is cut
  short so that the final try happens at that age, not up to a delay later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["RetryPolicy"]

_MAX_DOUBLINGS = 60  # beyond this the ceiling is past any cap; keeps 2**n finite


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays and the give-up age of temporary failures, in seconds."""

    first_delay: float = 1.0          # ceiling of the first wait (so 0.5 to 1 s)
    max_delay: float = 60.0           # ceiling of any wait (so 30 to 60 s once reached)
    give_up_after: float = 6 * 3600   # OUTAGE_SMTP_GIVE_UP_SECONDS

    def __post_init__(self) -> None:
        if not (self.first_delay > 0 and self.max_delay > 0 and self.give_up_after >= 0):
            raise ValueError("first_delay and max_delay must be positive, give_up_after not negative")

    def ceiling(self, failures: int) -> float:
        """The longest wait after the ``failures``-th failed try (1 for the first)."""
        if failures < 1:
            raise ValueError("failures counts from 1")
        return min(self.max_delay, self.first_delay * 2.0 ** min(failures - 1, _MAX_DOUBLINGS))

    def delay(self, failures: int, random: Callable[[], float]) -> float:
        """The wait after the ``failures``-th failed try: half the ceiling plus a random part of
        the other half. ``random()`` returns a number in [0, 1) (e.g. ``random.Random().random``)."""
        ceiling = self.ceiling(failures)
        return ceiling / 2 + ceiling / 2 * random()

    def gives_up(self, age: float) -> bool:
        """Whether a job failing ``age`` seconds after its first try is given up on."""
        return age >= self.give_up_after

    def next_delay(self, failures: int, age: float, random: Callable[[], float]) -> float | None:
        """After the ``failures``-th failed try, ``age`` seconds after the first: the wait before
        the next try, or None to give up. A wait never reaches past the give-up age."""
        if self.gives_up(age):
            return None
        return min(self.delay(failures, random), self.give_up_after - age)
