"""Tickets about a known incident, on the customer's partition (the rules: ``domain/tickets.py``).

Ticket events arrive keyed by ticket; the ticket agent re-keys them by customer onto the
customer's partition (``ticket-requests``), where the request agent links the ticket to the
active incident affecting the customer, posts the ``linked`` reply, records the ticket-ack as
owed on the ticket (so it outlives this worker) and hands it to the sender; the event is
acknowledged at once. Each later round of the incident posts a reply on the ticket, and the
resolution closes it.

Runtime contract:
- Input: ``ticket-events`` (keyed by ``ticket_id``; the key must match it), re-keyed by
  ``customer_id`` onto ``ticket-requests`` with the input's coordinates, so a dead letter later
  still points at the input record.
- On the customer's partition: an ``opened`` ticket about an active incident that affects the
  customer (``domain.tickets.matching_incident``) is linked (the ``tickets`` table), a ``linked``
  update goes to ``ticket-updates`` the first time only, and the ticket-ack is owed until the
  sender has finished it; a ``closed`` ticket is marked closed. A ticket about no known incident
  is logged and left. A replay links nothing twice and the ledger sends no ticket-ack twice.
- Each round of a linked incident posts an ``incident-updated`` (or, at the end,
  ``incident-resolved``) update on every open ticket linked to it; after a rebalance every
  ticket-ack still owed on the partitions held is queued again (``resume``).
- Each ``opened`` ticket of a known customer is also handed to the surge counting
  (``mentions``: ``streams/surge.py``), whether or not it is about a known incident.
- Bad input (invalid fields, a key that is not the ticket's id, an unknown customer) goes to the
  dead-letter topic with the reason; the stream goes on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Awaitable, Callable, MutableMapping

from core.vocabulary import LINKED
from domain import tickets as TK
from domain.audience import NoticeJob
from domain.incident import Round
from schemas import RecordError, TicketEvent, TicketUpdate, parse_record
from streams import topics as T
from streams.deadletter import origin_of, record_key

log = logging.getLogger(__name__)


class TicketDesk:
    def __init__(self, *, tickets: MutableMapping, ledger: MutableMapping, latest, views, sender, requests_topic,
                 updates_topic, dlq, clock: Callable[[], datetime], comment: Callable[[NoticeJob, datetime], str],
                 mail_domain: str, spawn: Callable, mentions: Callable[..., Awaitable] | None = None) -> None:
        self.tickets = tickets               # the tickets table: ticket_id -> its link
        self.ledger = ledger                 # the deliveries ledger: customer_id -> what was sent
        self.latest = latest                 # the latest round of each incident per partition (LatestRounds)
        self.views = views
        self.sender = sender
        self.requests_topic = requests_topic   # ticket-requests: ticket events re-keyed by customer
        self.updates_topic = updates_topic     # ticket-updates: what is posted on a ticket
        self.dlq = dlq
        self.clock = clock
        self.comment = comment               # a ticket update's comment, rendered
        self.mail_domain = mail_domain
        self.spawn = spawn
        self.mentions = mentions             # an opened ticket, to the surge counting (streams/surge.py)

    async def ticket_agent(self, stream) -> None:
        """Ticket events arrive keyed by ticket: re-key them by customer, onto the customer's partition."""
        async for event in stream.events():
            async with self.dlq.guard(event, T.TICKET_EVENTS):
                ticket = parse_record(TicketEvent, event.value)
                key = record_key(event)
                if key is not None and key != ticket.ticket_id:
                    raise RecordError(f"record key {key!r} differs from ticket_id", field="ticket_id")
                # the original coordinates travel along, so a later dead letter points at the input
                request = {"ticket": ticket.model_dump(mode="json"), "origin": origin_of(event)}
                await self.requests_topic.send(key=ticket.customer_id.encode(), value=json.dumps(request).encode())

    async def request_agent(self, stream) -> None:
        async for event in stream.events():
            request = json.loads(event.value)
            async with self.dlq.guard(event, T.TICKET_EVENTS, origin=request.get("origin")):
                ticket = TicketEvent.model_validate(request["ticket"])
                p = event.message.partition
                customer = self.views.customer_lookup(p)(ticket.customer_id)
                if customer is None:
                    raise RecordError(f"unknown customer {ticket.customer_id!r}", field="customer_id")
                if ticket.type == "closed":
                    tickets = self.tickets.partition(p)
                    entry = TK.on_closed(tickets.get(ticket.ticket_id))
                    if entry is not None:
                        tickets.set(ticket.ticket_id, entry)
                    continue
                if self.mentions is not None:
                    await self.mentions(ticket, customer, request.get("origin"))
                await self._link(p, ticket, customer)

    async def _link(self, p: int, ticket: TicketEvent, customer) -> None:
        rnd = TK.matching_incident(customer, ticket.components, self.latest.rounds(p))
        if rnd is None:
            log.info("ticket on partition %d is not about a known active incident", p)
            return
        tickets = self.tickets.partition(p)
        entry, linked_now = TK.on_opened(tickets.get(ticket.ticket_id), customer_id=customer.customer_id,
                                         rnd=rnd, subject=ticket.subject,
                                         requester={"email": ticket.requester.email, "name": ticket.requester.name})
        tickets.set(ticket.ticket_id, entry)
        if linked_now:
            await self._post_update(ticket.ticket_id, LINKED, TK.comment_job(
                "ticket-ack", rnd, customer, ticket.ticket_id, ticket.subject))
        await self.submit_ack(p, ticket.ticket_id, entry)

    async def submit_ack(self, p: int, ticket_id: str, linked: dict) -> None:
        """Queue the ticket-ack owed for ``ticket_id`` (its entry says to whom); once it is
        finished the entry says nothing is owed."""
        owed = linked["ack_owed"]
        customer = self.views.customer_lookup(p)(linked["customer_id"])
        rnd = self.latest.round(p, linked["incident_id"])
        job = None
        if customer is not None and rnd is not None and rnd.trigger != "resolved":
            job = TK.ticket_ack_job(ticket_id=ticket_id, subject=linked.get("subject"),
                                    requester_email=owed["email"], requester_name=owed.get("name"),
                                    customer=customer, rnd=rnd, entry=self.ledger.partition(p).get(customer.customer_id),
                                    domain=self.mail_domain)
        await self.sender.submit([job] if job is not None else [], p,
                                 on_done=lambda: self.spawn(self._acked(p, ticket_id)))

    async def _acked(self, p: int, ticket_id: str) -> None:
        tickets = self.tickets.partition(p)
        entry = TK.on_acked(tickets.get(ticket_id))
        if entry is not None:
            await tickets.put(ticket_id, entry)

    async def resume(self, partitions: set[int]) -> None:
        """Submit every ticket-ack still owed on ``partitions``."""
        for p in partitions:
            for ticket_id, linked in self.tickets.partition(p).items():
                if linked and linked.get("ack_owed"):
                    await self.submit_ack(p, ticket_id, linked)

    async def on_round(self, p: int, rnd: Round) -> None:
        """Post what ``rnd`` means on every open ticket linked to its incident on partition p."""
        if TK.ticket_action(rnd) is None:
            return
        lookup = self.views.customer_lookup(p)
        tickets = self.tickets.partition(p)
        for ticket_id, linked in tickets.items():
            change = TK.on_round(linked, rnd)
            if change is None:
                continue
            entry, action, kind = change
            tickets.set(ticket_id, entry)
            customer = lookup(linked["customer_id"])
            if customer is not None:
                await self._post_update(ticket_id, action, TK.comment_job(
                    kind, rnd, customer, ticket_id, linked.get("subject")))

    async def _post_update(self, ticket_id: str, action: str, job: NoticeJob) -> None:
        now = self.clock()
        update = TicketUpdate(ticket_id=ticket_id, incident_id=job.incident_id, action=action, at=now,
                              comment=self.comment(job, now))
        await self.updates_topic.send(key=ticket_id.encode(), value=update.model_dump_json().encode())
