"""When a scheduled round must start so that its last email still arrives by the promise."""

from __future__ import annotations

from datetime import timedelta

MIN_RATE = 1.0  # emails/s assumed at the very least, so a lead is always finite


def lead_time(send_rate: float, *, audience: int, base: timedelta) -> timedelta:
    """``base`` plus the time ``audience`` emails take at ``send_rate`` (emails/second)."""
    rate = max(send_rate, MIN_RATE)
    return base + timedelta(seconds=audience / rate)
