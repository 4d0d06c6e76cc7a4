"""When a scheduled round must start so that its last email still arrives by the promise."""

from __future__ import annotations

from datetime import timedelta

MIN_RATE = 1.0  # emails/s assumed at the very least, so a lead is always finite
# The send time is padded by half: a round's rate is measured on the previous one, and rounds
# differ (benchmark: a scheduled round to 100,000 contacts went 15 % slower than the
# acknowledged one it followed, and with no padding 11 % of it arrived up to 10 s late).
# Starting early costs nothing: the holding update simply arrives a little before its time.
SEND_TIME_HEADROOM = 1.5


def lead_time(send_rate: float | None, *, audience: int, base: timedelta, latency: float = 0.0) -> timedelta:
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
    return base + timedelta(seconds=2 * max(latency, 0.0) + SEND_TIME_HEADROOM * audience / rate)


class LatencyGauge:
    """A cautious estimate of a recurring delay: jumps up to any slower sample at once, decays
    slowly towards faster ones (so one fast round does not shrink the lead)."""

    def __init__(self, initial: float = 0.5, decay: float = 0.05) -> None:
        self.value = initial
        self.decay = decay

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.value = seconds if seconds > self.value else self.value + (seconds - self.value) * self.decay
