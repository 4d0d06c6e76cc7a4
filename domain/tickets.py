"""Tickets about a known incident: answered at once, kept informed, closed out at the end.

A ticket opened by an affected customer is *linked* to the incident it is about (the active
incident affecting the customer's services — and the ticket's components, when it names
some), its requester gets a ``ticket-ack`` notice with the incident's status, estimate and next
update, and joins the incident's audience. The help desk gets a public reply to post on the
ticket for each step (``linked``, ``incident-updated``, ``incident-resolved``).
"""

from __future__ import annotations

from typing import Iterable

from domain import ledger as L
from domain.affected import Scope, affected_services
from domain.audience import TICKET_PREFIX, NoticeJob, _job, services_of
from domain.ids import contact_key
from domain.incident import Round
from domain.kinds import TICKET_ACK

LINKED = "linked"
INCIDENT_UPDATED = "incident-updated"
INCIDENT_RESOLVED = "incident-resolved"

_SEVERITY_RANK = {"critical": 0, "major": 1, "minor": 2}


def matching_incident(customer, components: Iterable[str] | None, rounds: Iterable[Round]) -> Round | None:
    """The active incident a ticket is about, if any: it affects the customer's services (and,
    when the ticket names components, one of those); the most severe, then the most recent."""
    wanted = set(components or ())
    services = services_of(customer)
    candidates = []
    for rnd in rounds:
        if rnd.trigger == "resolved":
            continue
        hit = affected_services(services, rnd.scope())
        if wanted:
            hit = tuple(s for s in hit if s[0] in wanted)
        if hit:
            candidates.append(rnd)
    candidates.sort(key=lambda r: (_SEVERITY_RANK.get(r.severity, 9), -r.started_at.timestamp()))
    return candidates[0] if candidates else None


def requester_key(customer, email: str) -> str:
    """A requester who is one of the customer's contacts keeps that contact's thread; anyone
    else is a ticket requester of their own (``ticket:<contact key>``)."""
    key = contact_key(email)
    if any(contact_key(c.email) == key for c in customer.contacts):
        return key
    return TICKET_PREFIX + key


def ticket_ack_job(*, ticket_id: str, subject: str | None, requester_email: str, requester_name: str | None,
                   customer, rnd: Round, entry: dict | None, domain: str) -> NoticeJob | None:
    """The ticket-ack owed to the requester, or None if it was sent already."""
    key = requester_key(customer, requester_email)
    known = L.recipients(entry, rnd.incident_id).get(key, {})
    if known.get("state") == "resolved" or key in L.unsubscribed(entry):
        return None
    services = affected_services(services_of(customer), Scope.of(rnd.components, rnd.regions))
    job = _job(TICKET_ACK, rnd, customer, key, requester_email, requester_name, known, services, domain,
               ticket_id=ticket_id, ticket_subject=subject)
    return None if L.was_sent(entry, rnd.incident_id, job.message_id) else job


def ticket_action(rnd: Round) -> str | None:
    """What a round means for the tickets linked to its incident."""
    if rnd.trigger == "resolved":
        return INCIDENT_RESOLVED
    if rnd.trigger == "updated":
        return INCIDENT_UPDATED
    return None  # scheduled rounds repeat the status: nothing new to post on a ticket


def comment_job(kind: str, rnd: Round, customer, ticket_id: str, subject: str | None) -> NoticeJob:
    """What a ticket comment says is composed like a notice to the customer (never sent as one)."""
    services = affected_services(services_of(customer), Scope.of(rnd.components, rnd.regions))
    return NoticeJob(kind=kind, round=rnd, customer=customer, recipient="", email="", contact_name=None,
                     message_id="", in_reply_to=None, services=services, ticket_id=ticket_id,
                     ticket_subject=subject)
