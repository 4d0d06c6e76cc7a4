"""Everything that depends on which broker we talk to, in one place.

Production is Apache Kafka and keeps Kafka's defaults. The embedded Tansu broker (``outage dev``
and the tests) has measured defects (docs/kafka.md), worked around in this package only:

- its ListOffsets answer is the base offset of the last *batch* + 1, which silently breaks
  faust's table recovery: the workers' transport takes a changelog's end from a fetch's high
  watermark instead (``streams/kafka/transport.py``), so producers keep normal batching;
- no idempotent producer or transactions: at-least-once processing (the ledger makes sends
  idempotent on every broker anyway);
- it holds the first JoinGroup for half the session timeout: a 6 s session timeout (the
  smallest a default Kafka accepts) keeps start-up and fail-over short;
- producing to a missing topic creates it with 4 partitions: every topic is created
  explicitly, with its intended partition count, before the worker starts;
- it answers a waiting fetch late, and faust hard-codes a 1.5 s fetch wait: the workers'
  transport waits 100 ms (``streams/kafka/transport.py``, on both brokers);
- standby table replicas are off: on one machine they only double the changelog traffic.

On Apache Kafka (the production engine) the workers' producer is idempotent with ``acks=all``
(``streams/kafka/transport.py``), the topics are created with ``OUTAGE_REPLICATION_FACTOR`` (default
min(3, brokers)) and ``min.insync.replicas`` = min(2, replication factor), and every table keeps one
standby replica on another worker, so a failover does not rebuild it from its changelog.

The profile is detected from the cluster id Tansu reports (``tansu_cluster`` by default) unless
``OUTAGE_BROKER_PROFILE`` says otherwise: here (:func:`detect_profile`), and nowhere else.

Secure connections (``OUTAGE_KAFKA_SECURITY_PROTOCOL``, ``OUTAGE_KAFKA_SASL_MECHANISM``,
``OUTAGE_KAFKA_USERNAME``, ``OUTAGE_KAFKA_PASSWORD``, ``OUTAGE_KAFKA_CA_FILE``) are turned into each
client library's options here, and only here: :func:`faust_credentials` (the workers' faust app),
:func:`aiokafka_options` (the customers' reader and the incident view) and
:func:`kafka_python_options` (the admin client and the command line's producer and consumer).
A broker that refuses the credentials or the TLS handshake ends the worker or the command with one
line (:class:`BrokerRefused`) instead of retrying for ever.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from dataclasses import dataclass

from core.settings import Settings
from streams import topics as T
from streams.kafka.transport import FETCH_MAX_WAIT_MS, KAFKA_FLAVOUR, TANSU_FLAVOUR, Flavour, end_offsets, register

log = logging.getLogger(__name__)

__all__ = ["FETCH_MAX_WAIT_MS", "KAFKA", "TANSU", "BrokerProfile", "BrokerRefused"]


class BrokerRefused(RuntimeError):
    """The broker answered but refused us (credentials, TLS): retrying will not help. One line."""


@dataclass(frozen=True)
class BrokerProfile:
    name: str
    faust: dict
    flavour: Flavour            # the workers' transport on this broker
    replicated: bool = True     # topics get the replication factor and min.insync.replicas
    # a plain consumer's end offsets must come from a fetch (streams.kafka.transport.end_offsets)
    end_offsets_from_fetch: bool = False

    async def end_offsets(self, consumer, partitions) -> dict:
        """The end offsets of ``partitions`` for a started aiokafka consumer on this broker."""
        if self.end_offsets_from_fetch:   # Tansu's ListOffsets answer may fall short
            return await end_offsets(consumer, partitions)
        return await consumer.end_offsets(partitions)

    def faust_broker(self, settings: Settings) -> list[str]:
        scheme = register(self.flavour)
        return [f"{scheme}://{b}" for b in bootstrap(settings)]

    def faust_config(self, settings: Settings) -> dict:
        """The faust app settings of this profile, with the settings' session timeout and credentials."""
        config = dict(self.faust)
        session = settings.broker_session_timeout_seconds
        if session is not None:
            config["broker_session_timeout"] = session
            # a heartbeat at least three times per session, as Kafka recommends
            config["broker_heartbeat_interval"] = min(config.get("broker_heartbeat_interval", 3.0), session / 3)
        credentials = faust_credentials(settings)
        if credentials is not None:
            config["broker_credentials"] = credentials
        return config


KAFKA = BrokerProfile("kafka", {
    # a worker that dies is noticed after this long, and its partitions (and the promises owed
    # there) wait for it: 30 s kept a killed worker's share unserved for half a minute, and a
    # worker restarted after a kill -9 waited the same for its old membership to expire (bench row
    # 6c on Kafka: 32.5 s). 10 s, a heartbeat every 3 s, on the networks a worker runs in
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 3.0,
    "producer_acks": -1,              # all in-sync replicas (the idempotent producer needs it)
    # a standby copy of every table on another worker: a failover resumes from it, not from the
    # whole changelog (faust's default, stated because the Tansu profile turns it off)
    "table_standby_replicas": 1,
}, flavour=KAFKA_FLAVOUR)   # idempotent producer
TANSU = BrokerProfile("tansu", {
    "broker_session_timeout": 6.0,
    "broker_heartbeat_interval": 2.0,
    # standbys only double the changelog traffic on one machine (14 % of a worker's time, measured)
    "table_standby_replicas": 0,
}, flavour=TANSU_FLAVOUR, replicated=False, end_offsets_from_fetch=True)


# -- secure connections: the settings as each client library's options --------------------------

def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context that verifies the brokers (``OUTAGE_KAFKA_CA_FILE`` or the system's CAs);
    None when the protocol does not use TLS."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    cafile = str(settings.kafka_ca_file) if settings.kafka_ca_file else None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def _password(settings: Settings) -> str | None:
    return settings.kafka_password.get_secret_value() if settings.kafka_password else None


def aiokafka_options(settings: Settings) -> dict:
    """Keyword arguments for an aiokafka consumer, producer or client (empty for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_username,
                       sasl_plain_password=_password(settings))
    return options


def kafka_python_options(settings: Settings) -> dict:
    """Keyword arguments for a kafka-python admin client, producer or consumer (empty for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        # None: kafka-python loads the system's CAs; the host name is checked either way
        options["ssl_cafile"] = str(settings.kafka_ca_file) if settings.kafka_ca_file else None
    if protocol.startswith("SASL_"):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_username,
                       sasl_plain_password=_password(settings))
    return options


def faust_credentials(settings: Settings):
    """``broker_credentials`` of the faust app: SASL (over TLS for SASL_SSL), TLS alone, or None."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    import faust

    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=settings.kafka_username, password=_password(settings),
                                 mechanism=settings.kafka_sasl_mechanism, ssl_context=context)


def refusal(settings: Settings, timeout: float = 10.0) -> str | None:
    """Why the brokers refuse this client, in one line, or None when none of them says so (it may
    just be unreachable). kafka-python reports a failed SASL exchange as a dropped connection, so
    this asks each bootstrap server once with aiokafka, which names the broker's error."""
    if settings.kafka_security_protocol == "PLAINTEXT" or not settings.broker:
        return None
    found: list[str | None] = [None]

    def probe() -> None:
        found[0] = asyncio.run(asyncio.wait_for(_probe_all(settings), timeout))

    thread = threading.Thread(target=probe, name="outage-broker-probe", daemon=True)
    thread.start()   # in its own thread: callers may already run an event loop
    thread.join(timeout + 2)
    return found[0]


async def _probe_all(settings: Settings) -> str | None:
    for server in bootstrap(settings):
        reason = await _probe(settings, server)
        if reason is not None:
            return reason
    return None


async def _probe(settings: Settings, server: str) -> str | None:
    from aiokafka import errors as E
    from aiokafka.conn import create_conn

    host, _, port = server.rpartition(":")
    try:
        conn = await create_conn(host, int(port), client_id="outage-probe", request_timeout_ms=5000,
                                 **aiokafka_options(settings))
    except (E.SaslAuthenticationFailed, E.AuthenticationFailedError):
        return (f"broker {server} refused the credentials (SASL {settings.kafka_sasl_mechanism} authentication "
                f"failed for user {settings.kafka_username!r})")
    except E.UnsupportedSaslMechanismError as exc:
        return f"broker {server} does not accept SASL {settings.kafka_sasl_mechanism} ({exc})"
    except ssl.SSLCertVerificationError as exc:
        return f"broker {server}: its TLS certificate is not trusted ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f"broker {server}: the TLS handshake failed ({exc.reason or exc})"
    except (OSError, E.KafkaError, asyncio.TimeoutError):
        return None   # unreachable, or not answering yet: the caller waits
    conn.close()
    return None


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
                                    reconnect_backoff_max_ms=1000, **kafka_python_options(settings))
        except (KafkaError, OSError) as exc:
            refused = refusal(settings)
            if refused is not None:
                raise BrokerRefused(refused) from None
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


def replication(settings: Settings, client) -> tuple[int, dict[str, str]]:
    """The replication factor of the topics the worker creates and the configs that go with it.

    Kafka: ``OUTAGE_REPLICATION_FACTOR``, or min(3, brokers in the cluster), and
    ``min.insync.replicas`` = min(2, factor) (with ``acks=all`` a write then survives the loss of
    one broker, and one broker down stops no writes). Tansu: 1, as it has always been.
    """
    profile = detect_profile(settings, client)
    if not profile.replicated:
        if settings.replication_factor not in (None, 1):
            log.warning("OUTAGE_REPLICATION_FACTOR=%d ignored: the embedded broker keeps one copy",
                        settings.replication_factor)
        return 1, {}
    brokers = len(client.describe_cluster().get("brokers") or [])
    factor = settings.replication_factor or max(1, min(3, brokers))
    if brokers and factor > brokers:
        raise BrokerRefused(f"OUTAGE_REPLICATION_FACTOR={factor}, but the cluster at {settings.broker} has "
                            f"{brokers} broker{'s' if brokers != 1 else ''} up")
    return factor, {"min.insync.replicas": str(min(2, factor) if factor > 1 else 1)}


def ensure_topics(settings: Settings, client=None) -> int:
    """Create every missing topic; returns the partition count everything is co-partitioned on.

    An existing customers topic decides the count (its data is already placed); otherwise
    ``OUTAGE_PARTITIONS``. Changelog topics of the worker's tables get the same count. New topics
    get the profile's replication (:func:`replication`); existing ones are left as they are.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    names = T.TopicNames(settings.topic_prefix)
    own = client is None
    client = client or admin(settings)
    try:
        existing = {}
        replicas = {}
        for meta in client.describe_topics():
            if not meta.get("error_code"):
                name = meta.get("name") or meta.get("topic")
                existing[name] = len(meta.get("partitions") or [])
                replicas[name] = min((len(p.get("replica_nodes") or []) for p in meta.get("partitions") or []), default=0)
        partitions = existing.get(names.name(T.CUSTOMERS)) or settings.partitions
        wanted = {names.name(base): partitions for base in T.ALL}
        wanted[names.name(T.DEAD_LETTERS)] = 1
        for table in T.TABLES:
            wanted[names.changelog(table)] = partitions
        missing = [name for name in wanted if name not in existing]
        factor, replicated = replication(settings, client) if missing else (1, {})
        new = []
        for name, count in wanted.items():
            if name in existing:
                if count != existing[name] and name != names.name(T.DEAD_LETTERS):
                    log.warning("topic %s has %d partitions, expected %d: keep all co-partitioned topics "
                                "at the customers topic's count", name, existing[name], count)
                if settings.replication_factor and 0 < replicas.get(name, 0) < settings.replication_factor:
                    log.warning("topic %s has %d replicas, OUTAGE_REPLICATION_FACTOR is %d: existing topics are "
                                "not changed (kafka-reassign-partitions does that)", name, replicas[name],
                                settings.replication_factor)
                continue
            compacted = name in {names.name(base) for base in T.COMPACTED} or name.endswith("-changelog")
            configs = {"cleanup.policy": "compact"} if compacted else {}
            if name in {names.name(base) for base in T.RETAINED}:
                configs["retention.ms"] = "-1"
            configs.update(replicated)
            new.append(NewTopic(name=name, num_partitions=count, replication_factor=factor, topic_configs=configs))
        for topic in new:
            try:
                client.create_topics([topic])
                log.info("created topic %s (%d partitions, %d replicas)", topic.name, topic.num_partitions,
                         topic.replication_factor)
            except TopicAlreadyExistsError:
                pass
        return partitions
    finally:
        if own:
            client.close()
