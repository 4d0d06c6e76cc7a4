"""The wiring of a worker: the faust app and its topics (streams/faust_app.py), the tables, the
agents, the sender and the rebalance callbacks (streams/rebalance.py), each handed only what it
uses, never the whole pipeline. Agents are thin: they parse a record (bad input goes to the
dead-letter topic, the stream goes on), call the domain, and move the result on. Where each part
lives (each agent's module starts with its runtime contract) and the data flow: docs/design.md.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Callable

import faust

from core.settings import Settings
from domain.audience import NoticeJob
from domain.promises import PromiseBook
from domain.schedule import LatencyGauge
from streams import topics as T
from streams.audience import Audience, LatestRounds
from streams.customers import customers_of
from streams.deadletter import DeadLetters
from streams.deliveries import Deliveries
from streams.faust_app import Topics, assigned, build_app
from streams.holding import HoldingUpdates
from streams.incident_view import IncidentView
from streams.incidents import IncidentDesk
from streams.kafka.broker import BrokerProfile
from streams.kafka.tables import PartitionedTable
from streams.preferences import Preferences
from streams.reach import BrokerReach
from streams.rebalance import Membership, Rebalance
from streams.sender import Sender
from streams.tickets import TicketDesk
from streams.views import PartitionViews
from streams.web import register_pages

Clock = Callable[[], datetime]
HOLDING_TICK_SECONDS = 0.25   # how often the contacts coming due are looked for


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Pipeline:
    """Builds the faust app from settings and the injected outside world, and wires it."""

    def __init__(self, settings: Settings, *, profile: BrokerProfile, partitions: int, mailer,
                 compose: Callable[[NoticeJob, datetime], bytes],
                 comment: Callable[[NoticeJob, datetime], str] | None = None, clock: Clock = utc_now,
                 delivery=None) -> None:
        comment = comment or (lambda job, now: "")
        self.promises = PromiseBook(margin=timedelta(seconds=settings.schedule_lead_seconds))
        self.names = names = T.TopicNames(settings.topic_prefix)
        self.membership = Membership()   # the partitions held, joined, recovered (streams/rebalance.py)
        self.app = app = build_app(settings, profile=profile, partitions=partitions, names=names)
        self.topics = topics = Topics(app, names, partitions)
        self.dlq = DeadLetters(topics.dead_letters, clock)

        table_kw = dict(default=None, partitions=partitions, key_type=str, value_type=None)
        self.customers = customers_of(   # read straight from their topic, kept on disk (streams/customers.py)
            app, settings=settings, names=names, profile=profile, partitions=partitions, dlq=self.dlq)
        self.incidents = self._table(T.INCIDENTS_TABLE, table_kw)
        self.ledger = self._table(T.LEDGER_TABLE, table_kw)
        self.tickets = self._table(T.TICKETS_TABLE, table_kw)
        self.latest = self._table(T.LATEST_TABLE, table_kw)
        self.rounds = LatestRounds(self.latest)   # the latest round of each incident per partition
        self.views = PartitionViews(self.customers, self.ledger)

        self.deliveries = d = Deliveries(
            ledger=self.ledger, promises=self.promises, views=self.views, dlq=self.dlq, names=self.names,
            mail_domain=settings.mail_domain, compose=compose, delivery=delivery,
            produce=lambda *record: self.app.producer.send(*record),
            noted=lambda *notice: self.holding.noted(*notice))
        self.sender = Sender(
            mailer=mailer, mail_from=settings.mail_from, compose=d.compose, record=d.record_sent,
            refresh=d.refresh, dead_letter=d.undeliverable, clock=clock,
            concurrency=settings.smtp_concurrency, give_up_seconds=settings.smtp_give_up_seconds,
            deliver=d.deliver_elsewhere if delivery is not None else None,
            in_flight=2 * settings.smtp_concurrency if delivery is not None else None,
            rate_limit=settings.smtp_rate)   # OUTAGE_SMTP_RATE: sends spread over each second
        self.holding = HoldingUpdates(   # each contact's holding update by its own deadline
            ledger=self.ledger, views=self.views, latest=self.rounds, sender=self.sender, promises=self.promises,
            clock=clock, held=self.membership.held, recovered=self.membership.is_recovered,
            lead_seconds=settings.schedule_lead_seconds, mail_domain=settings.mail_domain)
        self.latency = LatencyGauge()         # round decided -> seen by the audience agent, seconds
        self.reach = BrokerReach.of(settings)   # whether any broker answers (/readyz, the API, the latency)
        app.service(self.reach)
        self._background: set[asyncio.Task] = set()
        self.preferences = Preferences(topic=topics.preferences, ledger=self.ledger, dlq=self.dlq, clock=clock)
        self.desk = TicketDesk(
            tickets=self.tickets, ledger=self.ledger, latest=self.rounds, views=self.views, sender=self.sender,
            requests_topic=topics.ticket_requests, updates_topic=topics.ticket_updates, dlq=self.dlq,
            clock=clock, comment=comment, mail_domain=settings.mail_domain, spawn=self.spawn)
        self.incident_desk = IncidentDesk(
            incidents=self.incidents, ticks_topic=topics.ticks, rounds_topic=topics.rounds, partitions=partitions,
            dlq=self.dlq, clock=clock, joined=self.membership.is_joined, owned=lambda: assigned(app, topics.events),
            lead_seconds=settings.schedule_lead_seconds, latency=self.latency, rate=self.sender.rate)
        self.audience = Audience(
            latest=self.rounds, sender=self.sender, views=self.views, holding=self.holding,
            customers=self.customers, tickets=self.desk, dlq=self.dlq, latency=self.latency, reach=self.reach,
            clock=clock, mail_domain=settings.mail_domain, held=self.membership.held,
            ledger_entries=d.ledger_entries, spawn=self.spawn, unplannable=d.unplannable)
        self.rebalance = Rebalance(
            membership=self.membership, rounds_topic=topics.rounds.get_topic_name(), sender=self.sender,
            views=self.views, holding=self.holding, audience=self.audience, spawn=self.spawn,
            flush=lambda: self.app.producer.flush(), customers_ready=self.customers.readiness,
            timeout=settings.smtp_timeout * 2, delivery=delivery)

        app.agent(topics.tickets, name="tickets")(self.desk.ticket_agent)
        app.agent(topics.ticket_requests, name="ticket-requests")(self.desk.request_agent)
        app.agent(topics.preferences, name="preferences")(self.preferences.agent)
        app.task(self.customers.serve)   # the customers reader: not a faust agent (streams/customers.py)
        app.agent(topics.incident, name="incidents")(self.incident_desk.agent)
        app.agent(topics.rounds, name="audience")(self.audience.agent)
        app.timer(settings.schedule_tick_seconds, name="schedule")(self.incident_desk.schedule_timer)
        app.timer(HOLDING_TICK_SECONDS, name="holding")(self.holding.tick)
        self.rebalance.wire(app)   # revoke, assign, recovered, shutdown
        register_pages(app, settings=settings, reach=self.reach, events_topic=topics.events,
                       view=IncidentView.of(settings, names=names, partitions=partitions, profile=profile),
                       readiness=self.rebalance.readiness, clock=clock, unsubscribe=self.preferences.request_unsubscribe)

    def _table(self, name: str, kwargs: dict) -> PartitionedTable:
        return self.app.tables.add(PartitionedTable(self.app, name=name, beacon=self.app.tables.beacon, **kwargs))

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def worker(self, loglevel: str) -> faust.Worker:
        """The faust worker that runs the app."""
        self.customers.begin_preload()   # a restart's index is rebuilt in a child process while faust starts
        return faust.Worker(self.app, loglevel=loglevel)
