"""Everything that depends on which broker we talk to, in one place.

Production is Apache Kafka and keeps Kafka's defaults. The embedded Tansu broker (``outage dev``
and the tests) has measured defects (../shared/NOTES.md), worked around here only:

- its ListOffsets answer is the base offset of the last *batch* + 1, which silently breaks
  faust's table recovery: the workers' transport takes a changelog's end from a fetch's high
  watermark instead (``streams/tansu.py``), so producers keep normal batching;
- no idempotent producer or transactions: at-least-once processing (the ledger makes sends
  idempotent on every broker anyway);
- it holds the first JoinGroup for half the session timeout: a 6 s session timeout (the
  smallest a default Kafka accepts) keeps start-up and fail-over short;
- producing to a missing topic creates it with 4 partitions: every topic is created
  explicitly, with its intended partition count, before the worker starts;
- it answers a waiting fetch late, and faust hard-codes a 1.5 s fetch wait: the workers use
  a transport with a 100 ms wait (``streams/tansu.py``);
- standby table replicas are off: on one machine they only double the changelog traffic.

The profile is detected from the cluster id Tansu reports (``tansu_cluster`` by default) unless
``OUTAGE_BROKER_PROFILE`` says otherwise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from outage.settings import Settings
from streams import topics as T

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerProfile:
    name: str
    faust: dict
    scheme: str = "kafka"   # faust transport of the workers

    def faust_broker(self, settings: Settings) -> list[str]:
        if self.scheme != "kafka":
            from streams import tansu
            tansu.register()
        return [f"{self.scheme}://{b}" for b in bootstrap(settings)]


KAFKA = BrokerProfile("kafka", {
    "broker_session_timeout": 30.0,
    "broker_heartbeat_interval": 3.0,
})
TANSU = BrokerProfile("tansu", {
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 2.0,
    # standbys only double the changelog traffic on one machine (14 % of a worker's time, measured)
    "table_standby_replicas": 0,
}, scheme="outage-tansu")  # a short fetch wait (streams/tansu.py)


def bootstrap(settings: Settings) -> list[str]:
    if not settings.broker:
        raise RuntimeError("OUTAGE_BROKER is not set (outage dev sets it for its worker)")
    return [s.strip() for s in settings.broker.split(",")]


def admin(settings: Settings, wait_seconds: float | None = None):
    """A kafka-python admin client. While the broker is unreachable it waits, saying so in one
    log line per attempt, with growing delays; ``wait_seconds`` None waits for as long as it
    takes (a worker), a number gives up after that long (a command at a terminal)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap(settings), client_id="outage-admin",
                                    request_timeout_ms=10000, bootstrap_timeout_ms=3000,
                                    reconnect_backoff_max_ms=1000)
        except (KafkaError, OSError) as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise RuntimeError(f"broker {settings.broker} unreachable: {exc}") from exc
            log.warning("broker %s unreachable (%s); waiting %.1fs before trying again",
                        settings.broker, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def detect_profile(settings: Settings, client=None) -> BrokerProfile:
    if settings.broker_profile == "kafka":
        return KAFKA
    if settings.broker_profile == "tansu":
        return TANSU
    own = client is None
    client = client or admin(settings)
    try:
        cluster = client.describe_cluster()
    finally:
        if own:
            client.close()
    return TANSU if str(cluster.get("cluster_id") or "").startswith("tansu") else KAFKA


def ensure_topics(settings: Settings, client=None) -> int:
    """Create every missing topic; returns the partition count everything is co-partitioned on.

    An existing customers topic decides the count (its data is already placed); otherwise
    ``OUTAGE_PARTITIONS``. Changelog topics of the worker's tables get the same count.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    names = T.TopicNames(settings.topic_prefix)
    own = client is None
    client = client or admin(settings)
    try:
        existing = {}
        for meta in client.describe_topics():
            if not meta.get("error_code"):
                existing[meta.get("name") or meta.get("topic")] = len(meta.get("partitions") or [])
        partitions = existing.get(names.name(T.CUSTOMERS)) or settings.partitions
        wanted = {names.name(base): partitions for base in T.CO_PARTITIONED}
        wanted[names.name(T.DEAD_LETTERS)] = 1
        for table in T.TABLES:
            wanted[names.changelog(table)] = partitions
        new = []
        for name, count in wanted.items():
            if name in existing:
                if count != existing[name] and name != names.name(T.DEAD_LETTERS):
                    log.warning("topic %s has %d partitions, expected %d: keep all co-partitioned topics "
                                "at the customers topic's count", name, existing[name], count)
                continue
            compacted = name in {names.name(base) for base in T.COMPACTED} or name.endswith("-changelog")
            configs = {"cleanup.policy": "compact"} if compacted else {}
            new.append(NewTopic(name=name, num_partitions=count, replication_factor=1, topic_configs=configs))
        for topic in new:
            try:
                client.create_topics([topic])
                log.info("created topic %s (%d partitions)", topic.name, topic.num_partitions)
            except TopicAlreadyExistsError:
                pass
        return partitions
    finally:
        if own:
            client.close()
