"""What a notice says, decided before any template renders it.

``NoticeContent`` is the interface between the domain and ``notifiers``: the renderer only
turns it into words; every decision (which services, whether the estimate is still in the
future, when the next update is due) is made here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

EtaState = Literal["unknown", "future", "passed"]


@dataclass(frozen=True, slots=True)
class NoticeContent:
    kind: str                      # one of core.vocabulary.NOTICE_KINDS
    locale: str                    # "en" | "ja" (already normalised)
    timezone: str                  # IANA name of the customer's zone
    now: datetime                  # aware; the time the notice is composed
    incident_id: str
    seq: int
    severity: str                  # critical | major | minor
    status: str                    # investigating | identified | monitoring | resolved
    title: str                     # incident title in the customer's locale
    message: str                   # latest ops message in the customer's locale (shown as written)
    services: tuple[tuple[str, str], ...]   # the customer's own affected (component, region), sorted
    started_at: datetime           # when the incident was declared
    eta: datetime | None = None    # the recovery estimate, when known
    eta_state: EtaState = "unknown"          # "passed": the estimate went by unresolved -> "being revised"
    next_update_at: datetime | None = None   # None only for resolved / unaffected
    resolved_at: datetime | None = None
    customer_name: str = ""
    contact_name: str | None = None
    ticket_id: str | None = None
    ticket_subject: str | None = None
    status_url: str = ""
    unsubscribe_url: str = ""
    feedback_url: str = ""         # resolved notices: the signed feedback link, ``?score=N`` appended per answer
    extra: dict = field(default_factory=dict)


def eta_state(eta: datetime | None, now: datetime) -> EtaState:
    """An estimate that went by unresolved is never shown as a future time: it is 'passed'."""
    if eta is None:
        return "unknown"
    return "future" if eta > now else "passed"


def notice_content(job, now: datetime, *, status_url: str = "", unsubscribe_url: str = "") -> NoticeContent:
    """What ``job`` (a ``domain.audience.NoticeJob``) says, composed at ``now``."""
    from core.vocabulary import RESOLVED, UNAFFECTED
    from schemas.common import localize, normalize_locale

    rnd = job.round
    customer = job.customer
    locale = normalize_locale(customer.locale)
    final = job.kind in (RESOLVED, UNAFFECTED)
    state = eta_state(rnd.eta, now)
    return NoticeContent(
        kind=job.kind, locale=locale, timezone=customer.timezone, now=now,
        incident_id=rnd.incident_id, seq=rnd.seq, severity=rnd.severity, status=rnd.status,
        title=localize(rnd.title, locale), message=localize(rnd.message, locale),
        services=tuple(job.services), started_at=rnd.started_at,
        eta=rnd.eta if state == "future" else None, eta_state=state if not final else "unknown",
        next_update_at=None if final else rnd.next_update_at, resolved_at=rnd.resolved_at,
        customer_name=customer.name, contact_name=job.contact_name,
        ticket_id=job.ticket_id, ticket_subject=job.ticket_subject,
        status_url=status_url, unsubscribe_url=unsubscribe_url,
    )
