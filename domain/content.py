"""What a notice says, decided before any template renders it.

``NoticeContent`` is the interface between the domain and ``notifiers``: the renderer only
turns it into words; every decision (which services, whether the estimate is still in the
future, when the next update is due, whether a reply reaches a person) is made here.

The estimate, in one of three states (``eta_state``), each of them true when it is said:

- ``future``: the round's estimate is still ahead: it is shown;
- ``passed``: "recovery is taking longer than our earlier estimate": only when an estimate was
  stated before (an earlier round of the incident had one, ``Round.earlier_eta``, and this
  contact has had a notice of the incident before, so may have read it), that estimate has gone
  by, and nothing newer is ahead;
- ``unknown``: otherwise: "we don't have a recovery estimate yet". Never said as "taking longer"
  when no estimate was ever given.
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
    eta_state: EtaState = "unknown"          # "passed": an estimate stated before went by unresolved -> "being revised"
    next_update_at: datetime | None = None   # None only for resolved / unaffected
    resolved_at: datetime | None = None
    customer_name: str = ""
    contact_name: str | None = None
    ticket_id: str | None = None
    ticket_subject: str | None = None
    status_url: str = ""
    customer_status_url: str = ""  # the customer's own status page (a signed link: its services only)
    unsubscribe_url: str = ""
    feedback_url: str = ""         # resolved notices: the signed feedback link, ``?score=N`` appended per answer
    replies: bool = False          # a reply reaches a person (OUTAGE_REPLY_TO is set): the notice invites one
    extra: dict = field(default_factory=dict)


def eta_state(eta: datetime | None, now: datetime, earlier: datetime | None = None) -> EtaState:
    """``future`` when ``eta`` is still ahead; ``passed`` when no estimate is ahead and the one
    stated before (``earlier``) has gone by; ``unknown`` otherwise. A time that has gone by is
    never shown as ahead, and one never stated before is never called an earlier estimate."""
    if eta is not None and eta > now:
        return "future"
    if earlier is not None and earlier <= now:
        return "passed"
    return "unknown"


def notice_content(job, now: datetime, *, status_url: str = "", unsubscribe_url: str = "",
                   replies: bool = False, customer_status_url: str = "") -> NoticeContent:
    """What ``job`` (a ``domain.audience.NoticeJob``) says, composed at ``now``; ``replies``: a
    reply to it reaches a person (``OUTAGE_REPLY_TO`` is set)."""
    from core.vocabulary import RESOLVED, UNAFFECTED
    from schemas.common import localize, normalize_locale

    rnd = job.round
    customer = job.customer
    locale = normalize_locale(customer.locale)
    final = job.kind in (RESOLVED, UNAFFECTED)
    # an estimate stated before: an earlier round had one, and this contact heard from us before
    # (its first notice of the incident has no In-Reply-To)
    stated = rnd.earlier_eta if job.in_reply_to else None
    state = eta_state(rnd.eta, now, stated)
    return NoticeContent(
        kind=job.kind, locale=locale, timezone=customer.timezone, now=now,
        incident_id=rnd.incident_id, seq=rnd.seq, severity=rnd.severity, status=rnd.status,
        title=localize(rnd.title, locale), message=localize(rnd.message, locale),
        services=tuple(job.services), started_at=rnd.started_at,
        eta=rnd.eta if state == "future" else None, eta_state=state if not final else "unknown",
        next_update_at=None if final else rnd.next_update_at, resolved_at=rnd.resolved_at,
        customer_name=customer.name, contact_name=job.contact_name,
        ticket_id=job.ticket_id, ticket_subject=job.ticket_subject,
        status_url=status_url, unsubscribe_url=unsubscribe_url, replies=replies,
        customer_status_url=customer_status_url,
    )
