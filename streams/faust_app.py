"""The faust app of a worker (its settings: the broker, the store, the web server) and its topics.

``streams/app.py`` builds the app with ``build_app``, declares the topics with ``Topics`` and
wires the agents to them. Every topic is read and written as raw bytes: the agents parse and
validate the records themselves (``schemas/``), so bad input is dead-lettered with its reason.
"""

from __future__ import annotations

import faust

from core.settings import Settings
from streams import topics as T
from streams.kafka.broker import BrokerProfile
from streams.kafka.tables import STORE_URL, TableManager


def build_app(settings: Settings, *, profile: BrokerProfile, partitions: int, names: T.TopicNames) -> faust.App:
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    return faust.App(
        names.app_id,
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


class Topics:
    """The topics the agents read and write, declared on ``app`` (``streams/topics.py`` names them
    and says which attribute reads which: ``WORKER_TOPICS``)."""

    customers: faust.TopicT
    incident: faust.TopicT          # incident-events and ticks: the incident agent reads both
    events: faust.TopicT
    ticks: faust.TopicT
    rounds: faust.TopicT
    tickets: faust.TopicT
    ticket_requests: faust.TopicT
    preferences: faust.TopicT
    ticket_updates: faust.TopicT
    dead_letters: faust.TopicT
    feedback: faust.TopicT
    mentions: faust.TopicT
    signals: faust.TopicT

    def __init__(self, app: faust.App, names: T.TopicNames, partitions: int) -> None:
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

        for attribute, bases in T.WORKER_TOPICS.items():
            count = 1 if bases == (T.DEAD_LETTERS,) else partitions
            setattr(self, attribute, app.topic(*(names.name(base) for base in bases), partitions=count, **raw))


def assigned(app: faust.App, topic) -> set[int]:
    """The partitions of ``topic`` assigned to this worker now."""
    name = topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}
