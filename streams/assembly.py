"""The components of a worker, built and wired to each other in one place: the faust worker
(``streams/app.py``) and the in-memory test broker (``tests/inmemory/``) both use ``assemble``.

``assemble`` is handed the outside world it needs, and nothing of faust: the topics (an object
with the attributes of ``streams.faust_app.Topics``), a function that makes a table by name
(``streams/state.py``), one that makes the customers store given the dead letters, the mailer,
the functions that compose a notice and a ticket comment, the clock, ``spawn`` (a background
task), ``produce`` and ``flush`` (the producer), ``owned`` (the partitions of the incident
events held now), ``reach`` (whether any broker answers), the delivery helpers (or None),
the view of every incident (``incident_view``: ``states()`` and ``sync()``, for the ticket surges;
None: no incident is known to cover anything) and the book of suppressed addresses that the caller
keeps up to date (``suppression_book``, ``streams/suppression_view.py``; ``suppression_sync`` waits
for it, ``suppression_caught_up`` says whether it has read what its topic held at the start, and no
notice leaves before it has; None: an empty book of this worker's own).
It returns the components, and which agent reads which topic and which timer runs how often:
the caller registers those with its runtime (faust's app, or the in-memory broker).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from core.settings import Settings
from domain.audience import NoticeJob
from domain.promises import PromiseBook
from domain.schedule import LatencyGauge
from domain.surge import SurgeRule
from streams import topics as T
from streams.audience import Audience, LatestRounds
from streams.deadletter import DeadLetters
from streams.deliveries import Deliveries
from streams.holding import HoldingUpdates
from streams.incidents import IncidentDesk
from streams.maintenance import TICK_SECONDS as MAINTENANCE_TICK_SECONDS, MaintenanceDesk, routed
from streams.preferences import Preferences
from streams.rebalance import Membership, Rebalance
from streams.sender import Sender
from streams.surge import Surges
from streams.state import PartitionedTable
from streams.suppressions import Suppressions
from domain.suppression import SuppressionBook
from streams.tickets import TicketDesk
from streams.views import PartitionViews

Clock = Callable[[], datetime]
HOLDING_TICK_SECONDS = 0.25   # how often the contacts coming due are looked for


@dataclass
class Components:
    """A worker's components, wired; ``agents``: (topic, name, agent) for each stream read;
    ``timers``: (seconds, name, timer) for each periodic task."""

    dlq: DeadLetters
    promises: PromiseBook
    membership: Membership
    customers: Any
    incidents: PartitionedTable
    ledger: PartitionedTable
    tickets: PartitionedTable
    latest: PartitionedTable
    rounds: LatestRounds
    views: PartitionViews
    deliveries: Deliveries
    sender: Sender
    holding: HoldingUpdates
    latency: LatencyGauge
    preferences: Preferences
    suppressions: Suppressions
    desk: TicketDesk
    incident_desk: IncidentDesk
    audience: Audience
    rebalance: Rebalance
    surges: Surges
    agents: list[tuple[Any, str, Callable]]
    timers: list[tuple[float, str, Callable[[], Awaitable]]]
    maintenance: MaintenanceDesk | None = None


def assemble(settings: Settings, *, topics, names: T.TopicNames, partitions: int,
             table: Callable[[str], PartitionedTable], customers: Callable[[DeadLetters], Any], mailer,
             compose: Callable[[NoticeJob, datetime], bytes],
             comment: Callable[[NoticeJob, datetime], str] | None, clock: Clock, spawn: Callable,
             produce: Callable[..., Awaitable], flush: Callable[[], Awaitable], owned: Callable[[], set[int]],
             reach, delivery=None, incident_view=None, suppression_book=None, suppression_sync=None,
             suppression_caught_up=None) -> Components:
    comment = comment or (lambda job, now: "")
    promises = PromiseBook(margin=timedelta(seconds=settings.schedule_lead_seconds))
    membership = Membership()   # the partitions held, joined, recovered (streams/rebalance.py)
    dlq = DeadLetters(topics.dead_letters, clock, names)   # metrics label topics without the prefix
    store = customers(dlq)      # the customers, per partition (streams/customers.py)
    incidents = table(T.INCIDENTS_TABLE)
    ledger = table(T.LEDGER_TABLE)
    tickets = table(T.TICKETS_TABLE)
    latest = table(T.LATEST_TABLE)
    rounds = LatestRounds(latest)   # the latest round of each incident per partition
    views = PartitionViews(store, ledger)
    # addresses refused for good: the book is the view every worker keeps of their topic
    suppressions = Suppressions(topic=topics.suppressions, book=suppression_book if suppression_book is not None else SuppressionBook(), clock=clock,
                                sync=suppression_sync, caught_up=suppression_caught_up)

    deliveries = d = Deliveries(
        ledger=ledger, promises=promises, views=views, dlq=dlq, names=names, mail_domain=settings.mail_domain,
        compose=compose, delivery=delivery, produce=produce, noted=lambda *notice: holding.noted(*notice))
    sender = Sender(   # a planned maintenance's notices are refreshed and recorded by its desk
        mailer=mailer, mail_from=settings.mail_from, compose=d.compose,
        record=routed(d.record_sent, lambda *a: maintenance.record_sent(*a)),
        # a suppressed address is tried by no notice, an incident's or a maintenance's
        refresh=suppressions.guard(routed(d.refresh, lambda *a: maintenance.refresh(*a))),
        dead_letter=routed(d.undeliverable, lambda *a: maintenance.dead_letter(*a)), clock=clock,
        concurrency=settings.smtp_concurrency, give_up_seconds=settings.smtp_give_up_seconds,
        deliver=d.deliver_elsewhere if delivery is not None else None,
        in_flight=2 * settings.smtp_concurrency if delivery is not None else None,
        rate_limit=settings.smtp_rate,   # OUTAGE_SMTP_RATE: sends spread over each second
        refused=suppressions.refused,    # a 5xx suppresses the address
        gate=suppressions.ready)         # nothing leaves before the suppressed addresses are read
    holding = HoldingUpdates(   # each contact's holding update by its own deadline
        ledger=ledger, views=views, latest=rounds, sender=sender, promises=promises,
        clock=clock, held=membership.held, recovered=membership.is_recovered,
        lead_seconds=settings.schedule_lead_seconds, mail_domain=settings.mail_domain)
    latency = LatencyGauge()   # round decided -> seen by the audience agent, seconds
    surges = Surges(   # ticket surges: possible incidents on outage.signals
        table=table(T.SURGES_TABLE), mentions_topic=topics.mentions, signals_topic=topics.signals, dlq=dlq,
        clock=clock, rule=SurgeRule(tickets=settings.surge_tickets, window_seconds=settings.surge_window_seconds),
        incidents=incident_view.states if incident_view is not None else tuple,
        sync=incident_view.sync if incident_view is not None else None)
    preferences = Preferences(topic=topics.preferences, ledger=ledger, dlq=dlq, clock=clock)
    desk = TicketDesk(
        tickets=tickets, ledger=ledger, latest=rounds, views=views, sender=sender,
        requests_topic=topics.ticket_requests, updates_topic=topics.ticket_updates, dlq=dlq,
        clock=clock, comment=comment, mail_domain=settings.mail_domain, spawn=spawn, mentions=surges.mention)
    incident_desk = IncidentDesk(
        incidents=incidents, ticks_topic=topics.ticks, rounds_topic=topics.rounds, partitions=partitions,
        dlq=dlq, clock=clock, joined=membership.is_joined, owned=owned,
        lead_seconds=settings.schedule_lead_seconds, latency=latency, rate=sender.rate,
        maintenance=lambda p, rnd: maintenance.under_way(p, rnd))
    audience = Audience(
        latest=rounds, sender=sender, views=views, holding=holding,
        customers=store, tickets=desk, dlq=dlq, latency=latency, reach=reach,
        clock=clock, mail_domain=settings.mail_domain, held=membership.held,
        ledger_entries=d.ledger_entries, spawn=spawn, unplannable=d.unplannable)
    maintenance = MaintenanceDesk(   # planned maintenance (streams/maintenance.py)
        maintenance=table(T.MAINTENANCE_TABLE), plans=table(T.MAINTENANCE_PLANS_TABLE),
        rounds_topic=topics.maintenance_rounds, partitions=partitions, ledger=ledger, views=views, sender=sender,
        dlq=dlq, clock=clock, held=membership.held, recovered=membership.is_recovered,
        assignment=lambda: membership.partitions, lead_seconds=settings.schedule_lead_seconds,
        mail_domain=settings.mail_domain, produce=produce, names=names, undeliverable=d.undeliverable)
    rebalance = Rebalance(
        membership=membership, rounds_topic=topics.rounds.get_topic_name(), sender=sender,
        views=views, holding=holding, audience=audience, spawn=spawn, flush=flush,
        customers_ready=store.readiness, timeout=settings.smtp_timeout * 2, delivery=delivery)
    agents = [(topics.tickets, "tickets", desk.ticket_agent),
              (topics.ticket_requests, "ticket-requests", desk.request_agent),
              (topics.preferences, "preferences", preferences.agent),
              (topics.mentions, "surges", surges.agent),
              (topics.incident, "incidents", incident_desk.agent),
              (topics.rounds, "audience", audience.agent),
              (topics.maintenance, "maintenance", maintenance.agent),
              (topics.maintenance_rounds, "maintenance-plans", maintenance.plan_agent)]
    timers = [(settings.schedule_tick_seconds, "schedule", incident_desk.schedule_timer),
              (HOLDING_TICK_SECONDS, "holding", holding.tick),
              (MAINTENANCE_TICK_SECONDS, "maintenance", maintenance.tick)]
    return Components(
        dlq=dlq, promises=promises, membership=membership, customers=store, incidents=incidents, ledger=ledger,
        tickets=tickets, latest=latest, rounds=rounds, views=views, deliveries=deliveries, sender=sender,
        holding=holding, latency=latency, preferences=preferences, suppressions=suppressions, desk=desk,
        incident_desk=incident_desk, audience=audience, rebalance=rebalance, surges=surges, agents=agents,
        timers=timers, maintenance=maintenance)
