"""Who gets which notice in a round, on one partition.

``RoundPlan`` is the whole rule: given a round, the partition's customers (through its
index) and the ledger, it lists the notices owed — and only those not already sent. Run it
again after a crash and it lists only what is still missing. It produces them lazily, as the
sender asks; ``plan_round`` is the same list at once.

Per recipient, in a round that is not ``resolved``:
- an affected customer's contact never notified of the incident (new incident, the scope
  grew, a new customer or contact, or affected again after ``unaffected``) -> ``acknowledged``;
- a contact already notified -> ``progress`` (an update) or ``scheduled`` (a kept promise);
- a notified contact whose customer is no longer affected -> ``unaffected``, then nothing more.
In a ``resolved`` round every contact still in the conversation gets ``resolved``.
A ``scheduled`` round sends nothing at once to a contact with a deadline: that contact's holding
update (``holding_job``) is released by its own deadline (``domain/deadlines.py``); the round
plan of a scheduled round acknowledges only the contacts new to the incident.
A recipient that already got this round or a newer one gets nothing (stale replays), and one
who unsubscribed, or chose ``none``, gets nothing at all; one who chose ``start-and-end`` gets only
the kinds ``domain/preferences.py`` names (no ``progress`` or ``scheduled``).

A job is worked out when the sender draws it and checked once more (``refresh``) right before
it is sent, with the ledger as it is then: a newer round may have reached the recipient in
between (the job is dropped), or an earlier round's acknowledgement (an ``acknowledged`` job
becomes the round's own kind), so a contact gets one acknowledgement per incident however
rounds overlap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from domain import ledger
from domain import preferences
from domain.affected import CustomerIndex, affected_services
from domain.ids import TICKET_PREFIX, contact_key, message_id
from domain.incident import Round
from core.vocabulary import (ACKNOWLEDGED, PROGRESS, RECEIVE_ALL, RECEIVE_START_AND_END, RESOLVED, SCHEDULED,
                             TICKET_ACK, UNAFFECTED)


class ContactLike(Protocol):
    email: str
    name: str | None


class CustomerLike(Protocol):
    customer_id: str
    name: str
    locale: str
    timezone: str
    contacts: list
    services: list


@dataclass(frozen=True, slots=True)
class NoticeJob:
    """One email owed to one recipient: everything needed to compose, send and record it."""

    kind: str
    round: Round
    customer: CustomerLike
    recipient: str            # contact key (or ticket:<id>): the ledger's and Message-ID's recipient part
    email: str
    contact_name: str | None
    message_id: str
    in_reply_to: str | None   # the recipient's first notice of the incident (thread root)
    services: tuple[tuple[str, str], ...]
    ticket_id: str | None = None
    ticket_subject: str | None = None
    due: float | None = None  # the recipient's deadline (epoch s): the next update its last notice stated
    receive: str = RECEIVE_ALL  # what the recipient chose (domain/preferences.py): start-and-end promises no update

    @property
    def incident_id(self) -> str:
        return self.round.incident_id

    @property
    def start_and_end(self) -> bool:
        """The recipient gets only the start and the end: this notice promises no next update."""
        return self.receive == RECEIVE_START_AND_END

    @property
    def seq(self) -> int:
        return self.round.seq

    @property
    def customer_id(self) -> str:
        return self.customer.customer_id



def services_of(customer: CustomerLike) -> list[tuple[str, str]]:
    return [(s.component, s.region) for s in customer.services]


def _job(kind: str, rnd: Round, customer: CustomerLike, recipient: str, email: str, name: str | None,
         known: dict, services: tuple, domain: str, ticket_id: str | None = None,
         ticket_subject: str | None = None, receive: str = RECEIVE_ALL) -> NoticeJob:
    mid = message_id(rnd.incident_id, rnd.seq, kind, customer.customer_id,
                     ticket_id if kind == TICKET_ACK else recipient, domain)
    return NoticeJob(kind=kind, round=rnd, customer=customer, recipient=recipient, email=email,
                     contact_name=name, message_id=mid, in_reply_to=known.get("first"),
                     services=services, ticket_id=ticket_id, ticket_subject=ticket_subject,
                     due=_due(known, receive), receive=receive)


def _due(known: dict, receive: str) -> float | None:
    """The deadline a notice to this recipient keeps: none for one owed no holding update (it
    chose start-and-end, so no promise of its is counted as kept or missed)."""
    return known.get("due") if preferences.wants_kind(receive, SCHEDULED) else None


def by_deadline(rnd: Round, known: dict) -> bool:
    """Whether this recipient's notice of ``rnd`` waits for its own deadline (a holding update to
    a recipient who has one) instead of going at once with the round."""
    return rnd.trigger == "scheduled" and known.get("state") == ledger.ACTIVE and known.get("due") is not None


def holding_job(rnd: Round, customer: CustomerLike, entry: dict | None, recipient: str,
                domain: str) -> NoticeJob | None:
    """The holding update (``rnd``, a scheduled round) owed to ``recipient`` of ``customer`` now
    that its deadline is near; None when nothing is (it opted out, the conversation ended, it
    got this round's holding update or a newer round, or it is no longer one of the customer's
    contacts). A recipient whose latest notice is this round's acknowledgement (or ticket-ack)
    gets this round's holding update: its deadline may come before the next round is decided,
    and waiting for that round made the contacts reached late in a first pass leave together."""
    known = ledger.recipients(entry, rnd.incident_id).get(recipient)
    if (not known or known.get("state") != ledger.ACTIVE or known.get("seq", 0) > rnd.seq
            or not preferences.wants(entry, recipient, SCHEDULED)):
        return None
    if recipient.startswith(TICKET_PREFIX):
        email, name = known["email"], known.get("name")
    else:
        contact = next((c for c in customer.contacts if contact_key(c.email) == recipient), None)
        if contact is None:
            return None
        email, name = contact.email, contact.name
    services = affected_services(services_of(customer), rnd.scope())
    job = _job(SCHEDULED, rnd, customer, recipient, email, name, known, services, domain)
    return None if ledger.was_sent(entry, rnd.incident_id, job.message_id) else job


class RoundPlan:
    """The notices owed on one partition for one round, produced lazily, in a stable order.

    Who is a candidate (affected now, or notified before) is settled when the plan is made;
    each candidate's notices are worked out only when the sender asks for the next one, with
    the ledger as it is then. So the first email of a big round leaves at once, and a plan
    that waits behind others holds a list of ids, not a list of emails.
    """

    def __init__(self, rnd: Round, index: CustomerIndex, customers: Callable[[str], CustomerLike | None],
                 ledger_of: Callable[[str], dict | None], notified: Iterable[str], domain: str,
                 on_error: Callable[[str, Exception], None] | None = None) -> None:
        """``on_error(customer_id, exc)``: a candidate whose notices could not be worked out is
        reported there and skipped (without it, the error propagates)."""
        self.round = rnd
        self._on_error = on_error
        if rnd.trigger == "resolved":
            self._affected: list[str] = []
            self._others = sorted(set(notified))
        else:
            affected = index.affected(rnd.scope())
            self._affected = sorted(affected)
            self._others = sorted(set(notified) - affected)
        self._customers, self._ledger_of, self._domain = customers, ledger_of, domain
        self.produced = 0           # notices handed out so far
        self.done = False           # every candidate visited

    @property
    def candidates(self) -> int:
        """Customers the plan visits: a lower bound of its notices when not yet done."""
        return len(self._affected) + len(self._others)

    def size(self) -> int:
        """Notices the round sends on this partition: exact once done, else an estimate."""
        return self.produced if self.done else max(self.produced, self.candidates)

    def remaining(self) -> int:
        """Notices still to come: an estimate while not done."""
        return self.size() - self.produced

    def __iter__(self) -> Iterator[NoticeJob]:
        for job in self._jobs():
            self.produced += 1
            yield job
        self.done = True

    def _jobs(self) -> Iterator[NoticeJob]:
        rnd = self.round
        following = following_kind(rnd)
        # resolved: everyone still in the conversation; otherwise: those no longer affected
        final = RESOLVED if rnd.trigger == "resolved" else UNAFFECTED
        for candidates, owed in ((self._affected, lambda c, e: self._affected_jobs(c, e, following)),
                                 (self._others, lambda c, e: self._final_jobs(c, e, final))):
            for cid in candidates:
                try:
                    customer = self._customers(cid)
                    if customer is None:
                        continue  # gone (tombstone): gets nothing more
                    jobs = owed(customer, self._ledger_of(cid))
                except Exception as exc:  # one customer's bad data must not cost the others their notice
                    if self._on_error is None:
                        raise
                    self._on_error(cid, exc)
                    continue
                yield from jobs

    def _owe(self, kind: str, customer: CustomerLike, entry: dict | None, key: str, email: str,
             name: str | None, known: dict, services: tuple, out: list[NoticeJob]) -> None:
        receive = preferences.receive_of(entry, key)
        if not preferences.wants_kind(receive, kind):
            return  # the recipient opted out of this kind (start-and-end, none, unsubscribed)
        job = _job(kind, self.round, customer, key, email, name, known, services, self._domain, receive=receive)
        if not ledger.was_sent(entry, self.round.incident_id, job.message_id):
            out.append(job)

    def _in_conversation(self, customer: CustomerLike, entry: dict | None):
        """(key, email, name, known) of recipients still receiving this incident's notices."""
        contacts = {contact_key(c.email): c for c in customer.contacts}
        for key, known in sorted(ledger.recipients(entry, self.round.incident_id).items()):
            if known.get("state") != ledger.ACTIVE or known.get("seq", 0) >= self.round.seq:
                continue
            contact = contacts.get(key)
            if contact is not None:
                yield key, contact.email, contact.name, known
            elif key.startswith(TICKET_PREFIX):
                yield key, known["email"], known.get("name"), known
            # a contact removed from the customer's list gets nothing more

    def _affected_jobs(self, customer: CustomerLike, entry: dict | None, following: str) -> list[NoticeJob]:
        rnd, out = self.round, []
        known_all = ledger.recipients(entry, rnd.incident_id)
        services = affected_services(services_of(customer), rnd.scope())
        for contact in customer.contacts:
            key = contact_key(contact.email)
            known = known_all.get(key, {})
            if known.get("state") == RESOLVED or known.get("seq", 0) >= rnd.seq or by_deadline(rnd, known):
                continue
            kind = following if known.get("state") == ledger.ACTIVE else ACKNOWLEDGED
            self._owe(kind, customer, entry, key, contact.email, contact.name, known, services, out)
        for key, email, name, known in self._in_conversation(customer, entry):
            if key.startswith(TICKET_PREFIX) and not by_deadline(rnd, known):  # a requester, not a contact
                self._owe(following, customer, entry, key, email, name, known, services, out)
        return out

    def _final_jobs(self, customer: CustomerLike, entry: dict | None, final: str) -> list[NoticeJob]:
        out: list[NoticeJob] = []
        services = affected_services(services_of(customer), self.round.scope()) if final == RESOLVED else ()
        for key, email, name, known in self._in_conversation(customer, entry):
            self._owe(final, customer, entry, key, email, name, known, services, out)
        return out


def following_kind(rnd: Round) -> str:
    """What a round says to a contact already in the conversation."""
    return PROGRESS if rnd.trigger == "updated" else SCHEDULED


def refresh(job: NoticeJob, entry: dict | None, domain: str) -> NoticeJob | None:
    """``job`` as it is owed now, given the customer's ledger ``entry``; None when nothing is.

    Nothing is owed when it was sent, the recipient opted out, or the recipient got this round
    or a newer one (or the incident's end) since the job was worked out; a holding update of a
    round whose acknowledgement the recipient got is still owed (``holding_job``). An ``acknowledged``
    job for a recipient whom an earlier round acknowledged in the meantime becomes that round's
    own kind (``progress``/``scheduled``), threaded under the first notice.
    """
    rnd = job.round
    if ledger.was_sent(entry, rnd.incident_id, job.message_id):
        return None
    receive = preferences.receive_of(entry, job.recipient)
    if not preferences.wants_kind(receive, job.kind):
        return None   # opted out meanwhile (a ticket-ack too, when it chose none)
    if job.receive != receive:
        job = dataclasses.replace(job, receive=receive, due=_due(ledger.recipients(entry, rnd.incident_id).get(
            job.recipient, {}), receive))
    if job.kind == TICKET_ACK:
        return job
    known = ledger.recipients(entry, rnd.incident_id).get(job.recipient, {})
    seq = known.get("seq", 0)
    if seq > rnd.seq or (seq == rnd.seq and job.kind != SCHEDULED) or known.get("state") == RESOLVED:
        return None
    if job.kind == ACKNOWLEDGED and known.get("state") == ledger.ACTIVE:
        if by_deadline(rnd, known):
            return None   # acknowledged meanwhile by an earlier round: its holding update keeps its deadline
        kind = following_kind(rnd)
        if not preferences.wants_kind(receive, kind):
            return None
        again = _job(kind, rnd, job.customer, job.recipient, job.email, job.contact_name, known,
                     job.services, domain, receive=receive)
        return None if ledger.was_sent(entry, rnd.incident_id, again.message_id) else again
    if _due(known, receive) != job.due:   # the deadline it keeps is the one the ledger shows now
        return dataclasses.replace(job, due=_due(known, receive))
    return job


def plan_round(rnd: Round, index: CustomerIndex, customers: Callable[[str], CustomerLike | None],
               ledger_of: Callable[[str], dict | None], notified: Iterable[str], domain: str) -> list[NoticeJob]:
    """The notices owed on one partition for ``rnd``, all at once (see :class:`RoundPlan`).

    ``index``: the partition's customer index; ``customers(id)``: the customer record;
    ``ledger_of(id)``: the customer's ledger entry; ``notified``: ids of the partition's
    customers with a ledger record for this incident.
    """
    return list(RoundPlan(rnd, index, customers, ledger_of, notified, domain))
