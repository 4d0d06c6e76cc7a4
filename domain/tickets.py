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
from domain import preferences as P
from domain.affected import Scope, affected_services
from domain.audience import NoticeJob, _job, services_of
from domain.ids import TICKET_PREFIX, contact_key
from domain.incident import Round
from core.vocabulary import INCIDENT_RESOLVED, INCIDENT_UPDATED, SEVERITIES, TICKET_ACK

_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


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
    receive = P.receive_of(entry, key)
    if known.get("state") == "resolved" or not P.wants_kind(receive, TICKET_ACK):
        return None   # a ticket-ack is a reply: kept for start-and-end, not for none or unsubscribed
    services = affected_services(services_of(customer), Scope.of(rnd.components, rnd.regions))
    job = _job(TICKET_ACK, rnd, customer, key, requester_email, requester_name, known, services, domain,
               ticket_id=ticket_id, ticket_subject=subject, receive=receive)
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


# -- the lifecycle of a linked ticket (the entry kept per ticket on its customer's partition) ------
# {"customer_id", "incident_id", "state": "open"|"closed", "seq": newest round posted,
#  "subject", "ack_owed": {"email", "name"} while its ticket-ack is owed, else None}
OPEN = "open"
CLOSED = "closed"


def on_closed(linked: dict | None) -> dict | None:
    """The ticket was closed by the help desk: the new entry, or None when nothing changes."""
    if linked and linked.get("state") == OPEN:
        return {**linked, "state": CLOSED, "ack_owed": None}
    return None


def on_opened(linked: dict | None, *, customer_id: str, rnd: Round, subject: str | None,
              requester: dict) -> tuple[dict, bool]:
    """A ticket opened about ``rnd``'s incident: (its entry, whether it is newly linked to it).
    A ticket opened again is answered again (the ledger says whether the answer went out)."""
    if linked is None or linked.get("incident_id") != rnd.incident_id:
        return ({"customer_id": customer_id, "incident_id": rnd.incident_id, "state": OPEN, "seq": rnd.seq,
                 "subject": subject, "ack_owed": requester}, True)
    if linked.get("ack_owed") is None:
        return {**linked, "ack_owed": requester}, False
    return linked, False


def on_acked(linked: dict | None) -> dict | None:
    """The ticket-ack owed was finished: the new entry, or None when nothing was owed."""
    if linked and linked.get("ack_owed"):
        return {**linked, "ack_owed": None}
    return None


def on_round(linked: dict | None, rnd: Round) -> tuple[dict, str, str] | None:
    """A round on the ticket's partition: (the new entry, the ticket-update action, the kind of
    comment to post), or None when it means nothing for this ticket."""
    action = ticket_action(rnd)
    if (action is None or not linked or linked["incident_id"] != rnd.incident_id
            or linked["state"] != OPEN or linked["seq"] >= rnd.seq):
        return None
    closing = action == INCIDENT_RESOLVED
    entry = {**linked, "seq": rnd.seq, "state": CLOSED if closing else OPEN}
    return entry, action, "resolved" if closing else "progress"
