"""Times and durations as a customer reads them: in their zone, with the zone shown.

Pure functions, no I/O. English: ``3:30 PM AEDT``, ``3:30 PM AEDT on 26 Nov``.
Japanese: ``15:30（日本時間）``, ``11月26日 15:30（日本時間）``, ``15:30（CET）``.
Zones whose tz database abbreviation is a bare offset (``+04``, ``-03``, ``+0545``) are shown
as ``UTC+4``, ``UTC-3``, ``UTC+5:45``. The date is added when the day differs from ``now``'s
day in that zone, or when ``with_date`` asks for it (the resolution notice's start and end).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "get_zone",
    "zone_label",
    "format_time",
    "format_duration",
    "format_window",
]

log = logging.getLogger(__name__)

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Zones whose Japanese readers expect 「日本時間」 rather than "JST".
_JA_NAMED_ZONES = {"Asia/Tokyo": "日本時間", "Japan": "日本時間"}


@lru_cache(maxsize=1024)
def get_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; UTC (with a warning) when it is unknown or malformed."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        log.warning("unknown time zone %r; showing times in UTC", name)
        return ZoneInfo("UTC")


def _require_aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {at!r}")


def _offset_label(offset: timedelta) -> str:
    total = int(offset.total_seconds()) // 60
    if total == 0:
        return "UTC"
    sign = "+" if total > 0 else "-"
    hours, minutes = divmod(abs(total), 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


def zone_label(local: datetime, locale: str = "en") -> str:
    """The zone as shown next to a time: ``AEDT``, ``UTC+4``; in ja ``日本時間`` for Tokyo."""
    _require_aware(local, "time")
    key = getattr(local.tzinfo, "key", None)
    if locale == "ja" and key in _JA_NAMED_ZONES:
        return _JA_NAMED_ZONES[key]
    abbr = local.strftime("%Z")
    if abbr and abbr.isalpha():
        return abbr
    return _offset_label(local.utcoffset() or timedelta(0))


def _date_part(day: date, locale: str, today: date) -> str:
    if locale == "ja":
        return (f"{day.year}年" if day.year != today.year else "") + f"{day.month}月{day.day}日"
    return f"{day.day} {_EN_MONTHS[day.month - 1]}" + (f" {day.year}" if day.year != today.year else "")


def format_time(
    at: datetime,
    tz: str,
    locale: str = "en",
    *,
    now: datetime | None = None,
    with_date: bool = False,
) -> str:
    """``at`` in zone ``tz`` for ``locale``, with the zone, and the date when it is needed.

    The date is shown when ``with_date`` is true, when ``now`` is not given, or when ``at``
    falls on another day than ``now`` in that zone. The year is added when it differs from
    ``now``'s year.
    """
    _require_aware(at, "time")
    zone = get_zone(tz)
    local = at.astimezone(zone)
    today = local.date()
    if now is not None:
        _require_aware(now, "now")
        today = now.astimezone(zone).date()
    show_date = with_date or now is None or local.date() != today
    label = zone_label(local, locale)
    if locale == "ja":
        clock = f"{local.hour}:{local.minute:02d}"
        text = f"{clock}（{label}）"
        return f"{_date_part(local.date(), 'ja', today)} {text}" if show_date else text
    hour12 = local.hour % 12 or 12
    clock = f"{hour12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    text = f"{clock} {label}"
    return f"{text} on {_date_part(local.date(), 'en', today)}" if show_date else text


def format_window(start: datetime, end: datetime, tz: str, locale: str = "en", *,
                  now: datetime | None = None) -> str:
    """A window from ``start`` to ``end``, its start with the date. Japanese writes a window within one
    day with the zone once, as a reader expects it: ``12月5日 1:00〜3:00（日本時間）``; any other window
    (English, or one over midnight or a change of offset) is its two times, ``A〜B`` / ``A to B``."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    zone = get_zone(tz)
    a, b = start.astimezone(zone), end.astimezone(zone)
    if locale == "ja" and a.date() == b.date() and zone_label(a, "ja") == zone_label(b, "ja"):
        today = (now or start).astimezone(zone).date()
        return (f"{_date_part(a.date(), 'ja', today)} {a.hour}:{a.minute:02d}〜{b.hour}:{b.minute:02d}"
                f"（{zone_label(a, 'ja')}）")
    first = format_time(start, tz, locale, now=now, with_date=True)
    second = format_time(end, tz, locale, now=start)
    return f"{first}〜{second}" if locale == "ja" else f"{first} to {second}"


def format_duration(delta: timedelta, locale: str = "en") -> str:
    """``2 hours 5 minutes`` / ``2時間5分``, rounded to the minute; negative counts as zero."""
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes == 0:
        return "1分未満" if locale == "ja" else "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if locale == "ja":
        return "".join(
            f"{n}{unit}" for n, unit in ((days, "日"), (hours, "時間"), (mins, "分")) if n
        )
    parts = []
    for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute")):
        if n:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts)
