"""Planned-maintenance notices into words and bytes: what one says (``MaintenanceContent``), its subject,
text and HTML (``render_maintenance``: ``templates/<locale>/maintenance.jinja`` in
``templates/maintenance-layout.txt`` / ``.html``, through the one Jinja environment of
``notifiers/render.py``, so every ops-provided string is escaped in HTML), and the message
(``compose_maintenance``) with its headers: ``X-Outage-Maintenance`` (its id) instead of
``X-Outage-Incident``, ``X-Outage-Notice``, ``X-Outage-Seq`` (the round its Message-ID carries),
``X-Outage-Starts-At`` / ``X-Outage-Ends-At`` (RFC 3339 in UTC; a maintenance completed early
ends when it was completed).

Times are written in the customer's zone (``notifiers/timefmt.py``); a notice names the customer's
own affected services only (``job.services``, worked out by ``domain/maintenance.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from core.vocabulary import DEFAULT_LOCALE, LOCALES, M_CANCELLED, M_CHANGED, M_COMPLETED, M_SCHEDULED
from domain.maintenance import CANCELLED, MaintenanceRound
from notifiers.message import build_message
from notifiers.render import RenderedNotice, _block, _one_line, render_in_layout
from notifiers.timefmt import format_duration, format_time, format_window


def is_maintenance(job) -> bool:
    """Whether a sender's job is a planned-maintenance notice (its round is a ``MaintenanceRound``)."""
    return isinstance(job.round, MaintenanceRound)


@dataclass(frozen=True, slots=True)
class MaintenanceContent:
    kind: str
    locale: str
    timezone: str
    now: datetime
    rnd: MaintenanceRound
    services: tuple[tuple[str, str], ...]
    customer_name: str = ""
    contact_name: str | None = None
    status_url: str = ""
    unsubscribe_url: str = ""
    preferences_url: str = ""     # the contact's preferences page (streams/preferences_web.py)
    replies: bool = False


def maintenance_content(job, now: datetime, *, status_url: str = "", unsubscribe_url: str = "",
                        replies: bool = False, preferences_url: str = "") -> MaintenanceContent:
    from schemas.common import normalize_locale

    customer = job.customer
    return MaintenanceContent(kind=job.kind, locale=normalize_locale(customer.locale), timezone=customer.timezone,
                              now=now, rnd=job.round, services=tuple(job.services), customer_name=customer.name,
                              contact_name=job.contact_name, status_url=status_url,
                              unsubscribe_url=unsubscribe_url, preferences_url=preferences_url, replies=replies)


def _view(c: MaintenanceContent) -> dict[str, Any]:
    from schemas.common import localize

    r = c.rnd
    locale = c.locale if c.locale in LOCALES else DEFAULT_LOCALE

    def at(when: datetime | None, *, now: datetime | None = None) -> str:
        return format_time(when, c.timezone, locale, now=now or c.now, with_date=now is None) if when else ""

    moved = r.previous_starts_at is not None and r.content_round == r.seq and c.kind == M_CHANGED and (
        (r.previous_starts_at, r.previous_ends_at) != (r.starts_at, r.ends_at))
    # the reminder is named only when one will come: this window has one, and it is still ahead
    reminder = at(r.reminder_at()) if c.kind in (M_SCHEDULED, M_CHANGED) and r.reminds() and \
        c.now <= r.reminder_at() else ""
    ended = r.end() if c.kind == M_COMPLETED else None

    def window(start: datetime | None, end: datetime | None) -> str:
        return format_window(start, end, c.timezone, locale, now=c.now) if start and end else ""

    return {
        "kind": c.kind, "locale": locale,
        "title": _one_line(localize(r.title, locale)), "message": "" if c.kind == M_CANCELLED else _block(localize(r.message, locale)),   # work that will not happen
        "services": [(_one_line(comp), _one_line(region)) for comp, region in c.services],
        "start": at(r.starts_at), "end": at(r.ends_at, now=r.starts_at),
        "moved": bool(moved),
        "prev_start": at(r.previous_starts_at) if moved else "",
        "prev_end": at(r.previous_ends_at, now=r.previous_starts_at) if moved else "",
        "reminder": reminder,
        # the same windows written as one (Japanese: the date and the zone once, 12月5日 1:00〜3:00（日本時間）)
        "window": window(r.starts_at, r.ends_at),
        "prev_window": window(r.previous_starts_at, r.previous_ends_at) if moved else "",
        "done_window": window(r.starts_at, ended) if ended else "",
        "ended": at(ended, now=r.starts_at) if ended else "",
        "duration": format_duration(ended - r.starts_at, locale) if ended else "",
        "reason": "cancelled" if r.status == CANCELLED else "scope",
        "customer_name": _one_line(c.customer_name or ""), "contact_name": _one_line(c.contact_name or ""),
        "status_url": (c.status_url or "").strip(), "unsubscribe_url": (c.unsubscribe_url or "").strip(),
        "preferences_url": (c.preferences_url or "").strip(),
        "replies": bool(c.replies),
    }


def render_maintenance(content: MaintenanceContent) -> RenderedNotice:
    """Subject, text and HTML of one maintenance notice, in the customer's locale and zone."""
    n = _view(content)
    return render_in_layout(n, f"{n['locale']}/maintenance.jinja", "maintenance-layout")


def _utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def compose_maintenance(job, now: datetime, *, public_url: str, mail_from: str, unsubscribe_url: str,
                        reply_to: str | None, preferences_url: str = "") -> bytes:
    """The bytes of one maintenance notice (``notifiers.notice.NoticeComposer`` calls this for them)."""
    r: MaintenanceRound = job.round
    content = maintenance_content(job, now, status_url=f"{public_url}/status", unsubscribe_url=unsubscribe_url,
                                  replies=reply_to is not None, preferences_url=preferences_url)
    headers = {
        "X-Outage-Maintenance": r.maintenance_id,
        "X-Outage-Notice": job.kind,
        "X-Outage-Seq": str(r.seq),
        "X-Outage-Starts-At": _utc(r.starts_at),
        "X-Outage-Ends-At": _utc(r.end() if job.kind == M_COMPLETED else r.ends_at),
    }
    return build_message(rendered=render_maintenance(content), mail_from=mail_from, to_email=job.email,
                         to_name=job.contact_name, message_id=job.message_id, in_reply_to=job.in_reply_to,
                         headers=headers, list_unsubscribe_url=unsubscribe_url, reply_to=reply_to, date=now)


__all__ = ["MaintenanceContent", "compose_maintenance", "is_maintenance", "maintenance_content", "render_maintenance"]
