"""Fixtures that start real parts — a Tansu broker, an aiosmtpd SMTP server, worker processes —
on free loopback ports, and stop exactly what they started."""

from __future__ import annotations

import json
import uuid

import pytest

from devtools.embedded import EmbeddedBroker
from devtools.http import call as http  # noqa: F401 - the tests' name for it
from tests.factories import ROOT, WorkerProcess  # noqa: F401 - ROOT: for the tests that take it from here

API_TOKEN = "test-token"


BROKERS = ("tansu", "kafka")


def pytest_addoption(parser):
    parser.addoption("--broker", action="append", choices=BROKERS, dest="brokers",
                     help="run the integration tests on this broker (repeatable; default: both, "
                          "the embedded Tansu broker and Apache Kafka)")


def pytest_generate_tests(metafunc):
    # one integration suite, two brokers (getsentry/arroyo's contract tests): every test that
    # uses a broker runs on each; tests of one broker's own behaviour ask for ``broker_kind``
    if "broker_kind" in metafunc.fixturenames:
        kinds = list(dict.fromkeys(metafunc.config.getoption("brokers") or BROKERS))
        only = metafunc.definition.get_closest_marker("only_broker")
        if only is not None:
            kinds = [k for k in kinds if k in only.args]
        metafunc.parametrize("broker_kind", kinds, scope="session")


def pytest_configure(config):
    config.addinivalue_line("markers", "only_broker(*kinds): run this test only on these brokers")


@pytest.fixture(scope="session")
def broker(broker_kind, tmp_path_factory):
    """One broker of each kind for the session (every test uses its own topic prefix): the
    embedded Tansu broker, or a one-node Apache Kafka (KRaft) from its jars (devtools/kafka.py)."""
    if broker_kind == "kafka":
        from devtools.kafka import KafkaCluster

        cluster = KafkaCluster(nodes=1, work_dir=tmp_path_factory.mktemp("kafka")).start()
        cluster.kind = "kafka"
        yield cluster
        cluster.stop()
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = EmbeddedBroker(log_path=log).start()
    b.kind = "tansu"
    yield b
    b.stop()


@pytest.fixture
async def smtp(tmp_path):
    """A real SMTP server (aiosmtpd) capturing every message, on free ports."""
    from devtools.capture import MailCapture

    capture = MailCapture(tmp_path / "mail", smtp_port=0, web_port=0)
    await capture.start()
    yield capture
    await capture.stop()


@pytest.fixture
def prefix():
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def topics(broker, prefix):
    """The test's topics, created as the worker and the CLI create them (``ensure_topics``): on
    Apache Kafka nothing is created by producing to it (the fixture's brokers do not auto-create),
    so a record produced before the first worker starts lands in the intended partitions."""
    from core.settings import Settings
    from streams.kafka.broker import ensure_topics

    return ensure_topics(Settings(broker=broker.bootstrap, topic_prefix=prefix, partitions=4))


@pytest.fixture
def base_env(broker, smtp, prefix, tmp_path, topics):
    """Settings of one test's pipeline, as environment variables (what a worker process reads)."""
    return {
        "OUTAGE_BROKER": broker.bootstrap,
        "OUTAGE_TOPIC_PREFIX": prefix,
        "OUTAGE_PARTITIONS": "4",
        "OUTAGE_SMTP_HOST": "127.0.0.1",
        "OUTAGE_SMTP_PORT": str(smtp.smtp_port),
        "OUTAGE_API_TOKEN": API_TOKEN,
        "OUTAGE_MAIL_FROM": "status@example.com",
        "OUTAGE_DATA_DIR": str(tmp_path / "data"),
        "OUTAGE_SECRET": "test-secret",
        "OUTAGE_SCHEDULE_LEAD_SECONDS": "1",
        "OUTAGE_SCHEDULE_TICK_SECONDS": "0.5",
        # several workers share this machine's 2 cores in most tests: no delivery helpers (the
        # docs/operating.md setting for several workers per machine); test_delivery and test_first_notice
        # run them explicitly
        "OUTAGE_DELIVERY_PROCESSES": "0",
        # Kafka's smallest session timeout (the embedded broker's profile already uses it): a
        # killed worker's partitions move within seconds
        "OUTAGE_BROKER_SESSION_TIMEOUT_SECONDS": "6",
    }


@pytest.fixture
def workers(base_env, tmp_path):
    """Factory: ``workers()`` starts a worker process; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(env: dict | None = None, ready: bool = True) -> WorkerProcess:
        w = WorkerProcess({**base_env, **(env or {})}, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        if ready:
            w.wait_ready()
        return w

    yield start
    for w in started:
        w.kill()


@pytest.fixture
def produce(broker, prefix, topics):
    """Factory: ``produce(topic_base, key, value_dict_or_bytes_or_None)`` to the test's topics."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap.split(","), linger_ms=0)

    def send(topic: str, key: str | None, value) -> None:
        if isinstance(value, (dict, list)):
            value = json.dumps(value).encode()
        elif isinstance(value, str):
            value = value.encode()
        producer.send(prefix + topic, key=key.encode() if key is not None else None, value=value)
        producer.flush()

    yield send
    producer.close()


@pytest.fixture
def read_topic(broker, prefix):
    """Factory: ``read_topic(topic_base)`` -> every record's decoded JSON value, in offset order per partition."""
    from kafka import KafkaConsumer, TopicPartition

    def read(topic: str, idle: float = 1.0) -> list[dict]:
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap.split(","), enable_auto_commit=False,
                                 consumer_timeout_ms=int(idle * 1000))
        try:
            parts = consumer.partitions_for_topic(prefix + topic) or set()
            tps = [TopicPartition(prefix + topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            return [json.loads(m.value) for m in consumer if m.value is not None]
        finally:
            consumer.close()

    return read
