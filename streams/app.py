"""The wiring of a worker: the faust app and its topics (streams/faust_app.py), the tables, and the
components (streams/assembly.py: the agents, the sender, the rebalance callbacks, each handed only
what it uses, never the whole pipeline) registered with the app. Agents are thin: they parse a
record (bad input goes to the dead-letter topic, the stream goes on), call the domain, and move the
result on. Where each part lives (each agent's module starts with its runtime contract) and the
data flow: docs/design.md.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Callable

import faust

from core.settings import Settings
from domain.audience import NoticeJob
from streams import metrics as M
from streams import topics as T
from streams.assembly import assemble
from streams.customers import customers_of
from streams.faust_app import Topics, assigned, build_app
from streams.feedback import FeedbackDesk, title_of
from streams.feedback_view import FeedbackView
from streams.customer_finder import CustomerFinder
from streams.incident_view import IncidentView
from streams.kafka import lag
from streams.kafka.broker import BrokerProfile, aiokafka_options, bootstrap
from streams.preferences_view import PreferencesView
from streams.preferences_web import PreferencesDesk
from streams.suppression_view import SuppressionView
from streams.kafka.tables import PartitionedTable
from streams.maintenance_view import MaintenanceView
from streams.reach import BrokerReach
from streams.web import register_pages

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def views_read(readiness: Callable[[], tuple[bool, str]], views: dict) -> Callable[[], tuple[bool, str]]:
    """``readiness`` (the worker's), not ready either until each of ``views`` (what it reads ->
    a topic view) has read what its topic held when it started."""
    def ready() -> tuple[bool, str]:
        ok, why = readiness()
        if ok:
            for what, view in views.items():
                if not view.caught_up:
                    return False, f"reading {what}"
        return ok, why
    return ready


class Pipeline:
    """Builds the faust app from settings and the injected outside world, and wires it."""

    def __init__(self, settings: Settings, *, profile: BrokerProfile, partitions: int, mailer,
                 compose: Callable[[NoticeJob, datetime], bytes],
                 comment: Callable[[NoticeJob, datetime], str] | None = None, clock: Clock = utc_now,
                 delivery=None) -> None:
        self.names = names = T.TopicNames(settings.topic_prefix)
        self.partitions = partitions
        self.app = app = build_app(settings, profile=profile, partitions=partitions, names=names)
        self.topics = topics = Topics(app, names, partitions)
        self.reach = BrokerReach.of(settings)   # whether any broker answers (/readyz, the API, the latency)
        self._background: set[asyncio.Task] = set()
        view = IncidentView.of(settings, names=names, partitions=partitions, profile=profile)
        # read whole by every worker: the suppressed addresses (the sender skips them) and the choices
        suppressed = SuppressionView.of(settings, names=names, partitions=partitions, profile=profile)
        choices = PreferencesView.of(settings, names=names, partitions=partitions, profile=profile)
        self.parts = parts = assemble(
            settings, topics=topics, names=names, partitions=partitions, table=self._table,
            # read straight from their topic, kept on disk (streams/customers.py)
            customers=lambda dlq: customers_of(app, settings=settings, names=names, profile=profile,
                                               partitions=partitions, dlq=dlq),
            mailer=mailer, compose=compose, comment=comment, clock=clock, spawn=self.spawn,
            produce=lambda *record: app.producer.send(*record), flush=lambda: app.producer.flush(),
            owned=lambda: assigned(app, topics.events), reach=self.reach, delivery=delivery, incident_view=view,
            suppression_book=suppressed.book, suppression_sync=suppressed.sync,
            suppression_caught_up=lambda: suppressed.caught_up)
        app.service(self.reach)
        app.service(suppressed)
        app.service(choices)
        for topic, name, agent in parts.agents:
            app.agent(topic, name=name)(agent)
        # outage_consumer_lag_records{topic}: read from faust's consumer at each scrape
        lag.expose(M.CONSUMER_LAG, app, names.base,
                   {names.base(name) for topic, _, _ in parts.agents for name in topic.topics})
        app.task(parts.customers.serve)   # the customers reader: not a faust agent (streams/customers.py)
        for seconds, name, timer in parts.timers:
            app.timer(seconds, name=name)(timer)
        parts.rebalance.wire(app)   # revoke, assign, recovered, shutdown
        register_pages(app, settings=settings, reach=self.reach, events_topic=topics.events, view=view,
                       readiness=views_read(parts.rebalance.readiness,
                                            {"every incident": view, "the suppressed addresses": suppressed,
                                             "the contacts' choices": choices}),
                       clock=clock,
                       preferences=PreferencesDesk(
                           keys=settings.verification_keys(), requests=parts.preferences, book=choices.book,
                           sync=choices.sync, suppressions=parts.suppressions,
                           reachable=lambda: self.reach.reachable,
                           find=CustomerFinder(bootstrap_servers=bootstrap(settings), topic=names.name(T.CUSTOMERS),
                                               partitions=partitions, profile=profile, local=parts.customers.lookup,
                                               security=aiokafka_options(settings)).find),
                       feedback=FeedbackDesk(keys=settings.verification_keys(), topic=topics.feedback,
                                             title=title_of(view), reachable=lambda: self.reach.reachable,
                                             clock=clock),
                       feedback_view=FeedbackView.of(settings, names=names, partitions=partitions, profile=profile),
                       maintenance_topic=topics.maintenance,
                       maintenance_view=MaintenanceView.of(settings, names=names, partitions=partitions, profile=profile))

    def _table(self, name: str) -> PartitionedTable:
        return self.app.tables.add(PartitionedTable(
            self.app, name=name, beacon=self.app.tables.beacon, default=None,
            partitions=self.partitions, key_type=str, value_type=None))

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def worker(self, loglevel: str, **options) -> faust.Worker:
        """The faust worker that runs the app (``options``: faust.Worker's, e.g. its logging)."""
        self.parts.customers.begin_preload()   # a restart's index is rebuilt in a child process while faust starts
        return faust.Worker(self.app, loglevel=loglevel, **options)
