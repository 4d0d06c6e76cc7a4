"""The faust-streaming app: topics, tables, and the wiring of the agents, the sender and the
rebalance callbacks (streams/rebalance.py).

Agents are thin: they parse a record (bad input goes to the dead-letter topic, the stream goes
on), call the domain, and move the result on. Data flow (docs/design.md):

  customers ─▶ customers reader (streams/customers.py) ─▶ local store + per-partition index
  incident-events, ticks ─▶ incident agent (streams/incidents.py) ─▶ incidents table; a round to
      every partition of rounds; the schedule timer ticks when a promised time is near
  rounds (partition p) ─▶ audience agent (here) ─▶ owed on p ─▶ sender (SMTP) ─▶ ledger + notices
  ledger deadlines (partition p) ─▶ holding updates (streams/holding.py), each by its contact's deadline
  ticket-events ─▶ ticket agents (streams/tickets.py) ─▶ ticket-ack, ticket-updates
"""

from __future__ import annotations

import asyncio
import logging
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
from streams.holding import HoldingUpdates
from streams.incident_view import IncidentView
from streams.incidents import IncidentDesk
from streams.kafka.broker import BrokerProfile
from streams.kafka.tables import STORE_URL, PlacedTable, Table, TableManager
from streams.preferences import Preferences
from streams.reach import BrokerReach
from streams.rebalance import Membership, Rebalance
from streams.sender import Sender
from streams.tickets import TicketDesk
from streams.views import PartitionViews

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
HOLDING_TICK_SECONDS = 0.25   # how often the contacts coming due are looked for


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Pipeline:
    """Builds the faust app from settings and the injected outside world."""

    def __init__(self, settings: Settings, *, profile: BrokerProfile, partitions: int, mailer,
                 compose: Callable[[NoticeJob, datetime], bytes],
                 comment: Callable[[NoticeJob, datetime], str] | None = None, clock: Clock = utc_now,
                 delivery=None) -> None:
        self.settings = settings
        self.profile = profile
        self.partitions = partitions
        self.clock = clock
        self.comment = comment or (lambda job, now: "")
        self.delivery = delivery   # a ProcessDelivery: compose and send in helper processes
        self.promises = PromiseBook(margin=timedelta(seconds=settings.schedule_lead_seconds))
        self.names = T.TopicNames(settings.topic_prefix)
        self.membership = Membership()   # the partitions held, joined, recovered (streams/rebalance.py)
        (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            self.names.app_id,
            broker=profile.faust_broker(settings),
            store=STORE_URL,                 # memory, written through to RocksDB in the data dir (streams/kafka/tables.py)
            TableManager=TableManager,       # starts the tables without faust's one-second pause
            topic_partitions=partitions,
            topic_replication_factor=1,
            topic_allow_declare=False,       # ensure_topics() created them, with the right counts
            topic_disable_leader=True,
            web_enabled=True,
            web_host=settings.web_host,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            web_in_thread=False,
            # none of faust's own views: /table/* serves table data (customers and their
            # contacts, the ledger's addresses), /router/* the cluster, / and /graph internals
            web_tables_enabled=False,
            web_router_enabled=False,
            web_stats_enabled=False,
            web_graph_enabled=False,
            web_metrics_enabled=False,
            datadir=str(settings.data_dir / "faust"),
            autodiscover=False,
            key_serializer="raw",
            value_serializer="raw",
            **profile.faust_config(settings),   # session timeout, credentials (streams/kafka/broker.py)
        )
        app = self.app
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.customers_topic = app.topic(self.names.name(T.CUSTOMERS), partitions=partitions, **raw)
        self.incident_topic = app.topic(self.names.name(T.INCIDENT_EVENTS), self.names.name(T.TICKS),
                                        partitions=partitions, **raw)
        self.events_topic = app.topic(self.names.name(T.INCIDENT_EVENTS), partitions=partitions, **raw)
        self.ticks_topic = app.topic(self.names.name(T.TICKS), partitions=partitions, **raw)
        self.rounds_topic = app.topic(self.names.name(T.ROUNDS), partitions=partitions, **raw)
        self.ticket_topic = app.topic(self.names.name(T.TICKET_EVENTS), partitions=partitions, **raw)
        self.ticket_requests_topic = app.topic(self.names.name(T.TICKET_REQUESTS), partitions=partitions, **raw)
        self.preferences_topic = app.topic(self.names.name(T.PREFERENCES), partitions=partitions, **raw)
        self.ticket_updates_topic = app.topic(self.names.name(T.TICKET_UPDATES), partitions=partitions, **raw)
        self.dlq = DeadLetters(app.topic(self.names.name(T.DEAD_LETTERS), partitions=1, **raw), clock)

        table_kw = dict(default=None, partitions=partitions, key_type=str, value_type=None)
        self.customers = customers_of(   # read straight from their topic, kept on disk (streams/customers.py)
            app, settings=settings, names=self.names, profile=profile, partitions=partitions, dlq=self.dlq)
        self.incidents = self._table(Table, T.INCIDENTS_TABLE, table_kw)
        self.ledger = self._table(PlacedTable, T.LEDGER_TABLE, table_kw)
        self.tickets = self._table(PlacedTable, T.TICKETS_TABLE, table_kw)
        self.latest = self._table(PlacedTable, T.LATEST_TABLE, table_kw)
        self.rounds = LatestRounds(self.latest)   # the latest round of each incident per partition
        self.views = PartitionViews(self.customers, self.ledger)

        self.deliveries = Deliveries(
            ledger=self.ledger, promises=self.promises, views=self.views, dlq=self.dlq, names=self.names,
            mail_domain=settings.mail_domain, compose=compose, delivery=delivery,
            produce=lambda *record: self.app.producer.send(*record),
            noted=lambda *notice: self.holding.noted(*notice))
        d = self.deliveries
        self.sender = Sender(
            mailer=mailer, mail_from=settings.mail_from, compose=d.compose, record=d.record_sent,
            refresh=d.refresh, dead_letter=d.undeliverable, clock=clock,
            concurrency=settings.smtp_concurrency, give_up_seconds=settings.smtp_give_up_seconds,
            deliver=d.deliver_elsewhere if delivery is not None else None,
            in_flight=2 * settings.smtp_concurrency if delivery is not None else None,
            rate_limit=settings.smtp_rate,   # OUTAGE_SMTP_RATE: sends spread over each second
        )
        self.holding = HoldingUpdates(   # each contact's holding update by its own deadline
            ledger=self.ledger, views=self.views, latest=self.rounds, sender=self.sender, promises=self.promises,
            clock=clock, held=self.membership.held, recovered=self.membership.is_recovered,
            lead_seconds=settings.schedule_lead_seconds, mail_domain=settings.mail_domain)
        self.latency = LatencyGauge()         # round decided -> seen by the audience agent, seconds
        self.reach = BrokerReach.of(settings)   # whether any broker answers (/readyz, the API, the latency)
        app.service(self.reach)
        self._background: set[asyncio.Task] = set()
        self.preferences = Preferences(topic=self.preferences_topic, ledger=self.ledger, dlq=self.dlq, clock=clock)
        self.desk = TicketDesk(
            tickets=self.tickets, ledger=self.ledger, latest=self.rounds, views=self.views, sender=self.sender,
            requests_topic=self.ticket_requests_topic, updates_topic=self.ticket_updates_topic, dlq=self.dlq,
            clock=clock, comment=self.comment, mail_domain=settings.mail_domain, spawn=self.spawn)
        self.incident_desk = IncidentDesk(
            incidents=self.incidents, ticks_topic=self.ticks_topic, rounds_topic=self.rounds_topic,
            partitions=partitions, dlq=self.dlq, clock=clock, joined=self.membership.is_joined,
            owned=lambda: self.assigned(self.events_topic), lead_seconds=settings.schedule_lead_seconds,
            latency=self.latency, rate=self.sender.rate)
        self.audience = Audience(
            latest=self.rounds, sender=self.sender, views=self.views, holding=self.holding,
            customers=self.customers, tickets=self.desk, dlq=self.dlq, latency=self.latency, reach=self.reach,
            clock=clock, mail_domain=settings.mail_domain, held=self.membership.held,
            ledger_entry=d.ledger_entry, spawn=self.spawn, unplannable=d.unplannable)
        self.rebalance = Rebalance(
            membership=self.membership, rounds_topic=self.rounds_topic.get_topic_name(), sender=self.sender,
            views=self.views, holding=self.holding, audience=self.audience, spawn=self.spawn,
            flush=lambda: self.app.producer.flush(), customers_ready=self.customers.readiness,
            timeout=settings.smtp_timeout * 2, delivery=delivery)
        self._register()

    # -- wiring ------------------------------------------------------------------------------
    def _table(self, cls: type[Table], name: str, kwargs: dict) -> Table:
        return self.app.tables.add(cls(self.app, name=name, beacon=self.app.tables.beacon, **kwargs))

    def _register(self) -> None:
        app = self.app
        app.agent(self.ticket_topic, name="tickets")(self.desk.ticket_agent)
        app.agent(self.ticket_requests_topic, name="ticket-requests")(self.desk.request_agent)
        app.agent(self.preferences_topic, name="preferences")(self.preferences.agent)
        app.task(self._customer_agent)
        app.agent(self.incident_topic, name="incidents")(self.incident_desk.agent)
        app.agent(self.rounds_topic, name="audience")(self.audience.agent)
        app.timer(self.settings.schedule_tick_seconds, name="schedule")(self.incident_desk.schedule_timer)
        app.timer(HOLDING_TICK_SECONDS, name="holding")(self.holding.tick)
        self.rebalance.wire(app)   # revoke, assign, recovered, shutdown (streams/rebalance.py)
        from streams.web import register_pages
        register_pages(app, settings=self.settings, reach=self.reach, events_topic=self.events_topic,
                       view=IncidentView.of(self.settings, names=self.names, partitions=self.partitions,
                                            profile=self.profile),
                       readiness=self.rebalance.readiness, clock=self.clock, unsubscribe=self.preferences.request_unsubscribe)

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def assigned(self, topic) -> set[int]:
        name = topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}

    # -- customers ---------------------------------------------------------------------------
    async def _customer_agent(self) -> None:
        """The customers' reader (``streams/customers.py``): not a faust agent, which handles one
        event at a time; it reads the customers partitions this worker holds in bulk, validates
        each record (a bad one is dead-lettered with the reason), keeps them on local disk and
        indexes them. Faust's rebalance waits for it, so rounds see every customer."""
        await self.customers.serve()

    def worker(self, loglevel: str) -> faust.Worker:
        """The faust worker that runs the app; a restart's index of the customers is rebuilt in a
        child process while faust starts."""
        self.customers.begin_preload()
        return faust.Worker(self.app, loglevel=loglevel)
