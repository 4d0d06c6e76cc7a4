"""Ticket surges: many customers writing in about one component with no incident on it make a
possible incident on ``outage.signals`` (the rules: ``domain/surge.py``).

Ticket events are keyed by ticket, and a customer's tickets are handled on the customer's
partition, so tickets about one component are spread over every partition. To count them in one
place, the ticket desk hands each opened ticket of a known customer here (``mention``, on the
customer's partition, where its services say in which regions it has each component), and each
component the ticket names goes as a small *mention* record, keyed by the component, onto the
internal ``component-mentions`` topic. The surge agent reads that topic: all the mentions of one
component reach one partition, so one worker, whichever worker the ticket came through.

Runtime contract:
- Input: ``component-mentions`` (keyed by component; written by ``mention``), each with the input
  ticket's coordinates (``origin``) so a dead letter points at the ticket event.
- Per mentions partition, the ``surges`` table keeps per component the tickets counted in the
  window and when it was last signalled (``domain.surge.observe``); a mention is counted with the
  scopes of the active incidents of the view of every incident (``streams/incident_view.py``,
  which every worker follows); before a signal goes, the view is synced once (waiting at most a
  second) and the mention judged again, so a signal is judged against incidents no older than the
  mention unless the view cannot catch up that fast (a worker just started, a broker down): then
  it goes with what the view has read.
- Output: a ``SignalRecord`` on ``outage.signals``, keyed by the component, at most once per
  component per window; ``outage_possible_incidents_total`` counts it once (here, the one worker
  holding the component's partition). The signal is produced before the table is written, so a
  crash between the two repeats a signal rather than loses one.
- A replayed mention (a redelivered ticket event, a replay of ``ticket-requests``) counts nothing
  more: a ticket counts once. Bad input (a mention that is not one) goes to the dead letters with
  the reason; the stream goes on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Awaitable, Callable, Iterable

from domain import surge as S
from domain.affected import Scope
from schemas import RecordError, SignalRecord
from streams import metrics as M
from streams import topics as T

log = logging.getLogger(__name__)


def active_scopes(states: Iterable) -> list[Scope]:
    """The scopes of the unresolved incidents among ``states`` (``IncidentState``s)."""
    return [state.scope() for state in states if not state.resolved]


class Surges:
    """The mentions a ticket makes (``mention``) and the agent that counts them (``agent``).
    ``incidents()``: the states of every incident (the view); ``sync()``: wait until the view has
    read what its topic holds now (None: nothing to wait for)."""

    def __init__(self, *, table, mentions_topic, signals_topic, dlq, clock: Callable[[], datetime],
                 rule: S.SurgeRule, incidents: Callable[[], Iterable],
                 sync: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.table = table                     # the surges table: component -> its counted tickets
        self.mentions_topic = mentions_topic
        self.signals_topic = signals_topic
        self.dlq = dlq
        self.clock = clock
        self.rule = rule
        self.incidents = incidents
        self.sync = sync

    async def mention(self, ticket, customer, origin: dict | None = None) -> None:
        """An opened ``ticket`` (a ``TicketEvent``) of ``customer``: one mention per component it names."""
        services = [(s.component, s.region) for s in customer.services]
        for m in S.mentions_of(ticket_id=ticket.ticket_id, customer_id=ticket.customer_id, at=ticket.at,
                               components=ticket.components, services=services, event_id=ticket.event_id):
            value = {"mention": m.as_dict(), "origin": origin}
            await self.mentions_topic.send(key=m.component.encode(), value=json.dumps(value).encode())

    async def agent(self, stream) -> None:
        async for event in stream.events():
            record = _json(event.value)
            async with self.dlq.guard(event, T.MENTIONS, origin=record.get("origin")):
                mention = _mention(record)
                await self._count(event.message.partition, mention)

    async def _count(self, p: int, mention: S.Mention) -> None:
        part = self.table.partition(p)
        before = part.get(mention.component)
        state, signal = self._observe(before, mention)
        if signal is not None and self.sync is not None:
            await self.sync()   # at most a second: the view read up to the incidents' changelog's end now
            state, signal = self._observe(before, mention)   # judged again against the view as it is now
        if signal is not None:
            record = SignalRecord(type=signal.type, component=signal.component, region=signal.region,
                                  tickets=signal.tickets, customers=signal.customers,
                                  window_seconds=signal.window_seconds, first_at=signal.first_at, at=signal.at)
            await self.signals_topic.send(key=signal.component.encode(), value=record.model_dump_json().encode())
            M.POSSIBLE_INCIDENTS.inc()
            log.warning("possible incident: %d tickets from %d customers about one component within %d s "
                        "and no active incident covers it (outage.signals)",
                        signal.tickets, signal.customers, signal.window_seconds)
        part.set(mention.component, state)

    def _observe(self, state: dict | None, mention: S.Mention) -> tuple[dict, S.Signal | None]:
        return S.observe(state, mention, rule=self.rule, now=self.clock(), active=active_scopes(self.incidents()))


def _json(raw: bytes | None) -> dict:
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _mention(record: dict) -> S.Mention:
    try:
        return S.Mention.from_dict(record["mention"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"not a component mention ({type(exc).__name__})", field="mention") from None
