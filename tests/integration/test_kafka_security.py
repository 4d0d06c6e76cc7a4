"""A real Apache Kafka with a SASL_PLAINTEXT listener (SCRAM-SHA-256 and SCRAM-SHA-512): the command
line and a real worker connect with credentials, create their topics with the intended configs and
send a first notice; wrong credentials end the command and the worker with one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from core.settings import Settings
from streams import topics as T
from tests.conftest import API_TOKEN, ROOT, http
from tests.integration.test_first_notice import CUSTOMERS, DECLARE

# the session's broker (conftest's ``broker``, behind ``workers``) is not used by these tests, which
# start their own clusters: run them once, with the Kafka suite
pytestmark = [pytest.mark.integration, pytest.mark.only_broker("kafka")]

USER, PASSWORD = "alice", "s3cret-pw"


def _start(**kwargs):
    from devtools.kafka import KafkaCluster, cache_dir

    have_jars = (cache_dir() / "libs" / ".complete").exists()
    if not shutil.which("java") or not (have_jars or shutil.which("mvn")):
        pytest.skip("Apache Kafka needs Java 17 and Maven (mvn) to fetch its jars; not installed here")
    return KafkaCluster(**kwargs).start()


@pytest.fixture(scope="module")
def kafka():
    cluster = _start(nodes=1, scram_users={USER: PASSWORD})
    yield cluster
    cluster.stop()


def sasl_env(cluster, mechanism: str = "SCRAM-SHA-256", password: str = PASSWORD) -> dict:
    return {"OUTAGE_BROKER": cluster.sasl_bootstrap, "OUTAGE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "OUTAGE_KAFKA_SASL_MECHANISM": mechanism, "OUTAGE_KAFKA_USERNAME": USER,
            "OUTAGE_KAFKA_PASSWORD": password}


def cli(env: dict, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGE_")}
    return subprocess.run([sys.executable, "-m", "outage.cli", *args], env={**clean, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def topic_configs(cluster, names: list[str]) -> dict[str, dict[str, str]]:
    """The topic-level configs (those set on the topic, not the broker's defaults) of each topic."""
    from kafka.admin import ConfigResource, ConfigResourceType

    with cluster.admin() as client:
        found = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    topics = found.get("topic") or found.get("TOPIC") or {}
    return {name: {k: v["value"] for k, v in configs.items()} for name, configs in topics.items()}


def replicas(cluster, names: list[str], timeout: float = 30.0) -> dict[str, set[int]]:
    """Replica counts of each topic's partitions, once the metadata lists partitions for every
    topic (a topic just created was once described with none on a three-node cluster)."""
    deadline = time.monotonic() + timeout
    while True:
        with cluster.admin() as client:
            got = {m["name"]: {len(p["replica_nodes"]) for p in m["partitions"]} for m in client.describe_topics(names)}
        if all(got.get(n) for n in names) or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def all_topics(prefix: str) -> list[str]:
    names = T.TopicNames(prefix)
    return [names.name(b) for b in T.ALL] + [names.changelog(t) for t in T.TABLES]


async def test_a_worker_over_sasl_scram_creates_its_topics_and_sends_the_first_notice(kafka, workers, smtp, prefix,
                                                                                       tmp_path):
    # the command line (SCRAM-SHA-512) creates the topics and imports the customers
    path = tmp_path / "customers.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CUSTOMERS))
    done = cli({**sasl_env(kafka, "SCRAM-SHA-512"), "OUTAGE_TOPIC_PREFIX": prefix}, "customers", "import", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"imported {len(CUSTOMERS)}, rejected 0"   # the summary line of every import

    # the worker (SCRAM-SHA-256) reads them, joins its group and sends over the same listener
    worker = workers({**sasl_env(kafka), "OUTAGE_BROKER_SESSION_TIMEOUT_SECONDS": "6"})
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, body
    entries = await smtp.wait_for(3, timeout=60, incident=body["incident_id"])
    assert sorted(e["recipients"][0] for e in entries) == ["dev@example.jp", "noc@example.com.au", "ops@example.jp"]
    assert {e["kind"] for e in entries} == {"acknowledged"}
    log = worker.log_tail(400)
    assert "broker profile kafka" in log, log

    # every topic is there, on a one-node cluster with one replica, and configured as intended
    names = all_topics(prefix)
    assert replicas(kafka, names) == {n: {1} for n in names}
    configs = topic_configs(kafka, names)
    for name in names:
        compacted = name in {prefix + t for t in T.COMPACTED} or name.endswith("-changelog")   # streams/topics.py
        assert configs[name].get("cleanup.policy") == ("compact" if compacted else None), (name, configs[name])
        assert configs[name].get("min.insync.replicas") == "1", (name, configs[name])


def test_wrong_credentials_end_the_command_with_one_clear_line(kafka, prefix):
    env = {**sasl_env(kafka, password="wrong"), "OUTAGE_TOPIC_PREFIX": prefix}
    server = kafka.sasl_bootstrap.split(",")[0]
    for args in (["incident", "declare", "--severity", "minor", "--title", "x", "--message", "y",
                  "--components", "api"], ["incident", "list"]):
        started = time.monotonic()
        done = cli(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.strip().splitlines() == [
            f"outage: broker {server} refused the credentials (SASL SCRAM-SHA-256 authentication failed for "
            f"user '{USER}')"], args
        assert "wrong" not in done.stderr
        assert time.monotonic() - started < 30, args   # no waiting for a broker that answered


def test_wrong_credentials_end_the_worker_with_one_clear_line(kafka, workers):
    worker = workers({**sasl_env(kafka, mechanism="SCRAM-SHA-512", password="wrong")}, ready=False)
    assert worker.process.wait(timeout=60) == 2
    log = worker.log_path.read_text(errors="replace")
    server = kafka.sasl_bootstrap.split(",")[0]
    assert log.strip().splitlines()[-1] == (f"outage: broker {server} refused the credentials (SASL SCRAM-SHA-512 "
                                            f"authentication failed for user '{USER}')")
    assert "Traceback" not in log and "wrong" not in log


def test_on_three_brokers_topics_get_three_replicas_and_two_in_sync(prefix):
    from streams.kafka.broker import ensure_topics

    cluster = _start(nodes=3, heap="384m")
    try:
        assert ensure_topics(Settings(broker=cluster.bootstrap, topic_prefix=prefix, partitions=2)) == 2
        names = all_topics(prefix)
        assert replicas(cluster, names) == {n: {3} for n in names}
        configs = topic_configs(cluster, names)
        assert {n: configs[n].get("min.insync.replicas") for n in names} == {n: "2" for n in names}
        assert configs[prefix + T.CUSTOMERS]["cleanup.policy"] == "compact"
        assert "cleanup.policy" not in configs[prefix + T.NOTICES]
    finally:
        cluster.stop()


# -- TLS: a listener with a certificate from a CA the test makes (devtools/kafka.py, openssl) --------

@pytest.fixture(scope="module")
def kafka_tls():
    if not shutil.which("openssl"):
        pytest.skip("the test's CA is made with openssl, which is not installed here")
    cluster = _start(nodes=1, tls=True)
    yield cluster
    cluster.stop()


def ssl_env(cluster, ca_file=None) -> dict:
    env = {"OUTAGE_BROKER": cluster.ssl_bootstrap, "OUTAGE_KAFKA_SECURITY_PROTOCOL": "SSL"}
    if ca_file is not None:
        env["OUTAGE_KAFKA_CA_FILE"] = str(ca_file)
    return env


async def test_a_worker_over_tls_verifies_the_brokers_with_the_ca_file_and_sends_the_first_notice(
        kafka_tls, workers, smtp, prefix, tmp_path):
    path = tmp_path / "customers.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CUSTOMERS))
    env = ssl_env(kafka_tls, kafka_tls.ca_file)
    done = cli({**env, "OUTAGE_TOPIC_PREFIX": prefix}, "customers", "import", str(path))
    assert done.returncode == 0, done.stderr
    worker = workers(env)
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, body
    entries = await smtp.wait_for(3, timeout=60, incident=body["incident_id"])
    assert sorted(e["recipients"][0] for e in entries) == ["dev@example.jp", "noc@example.com.au", "ops@example.jp"]
    assert "broker profile kafka" in worker.log_tail(400)


def test_a_broker_certificate_the_ca_did_not_sign_ends_the_command_with_one_line(kafka_tls, prefix):
    # the system's CAs (no OUTAGE_KAFKA_CA_FILE) do not know the test's CA: the handshake fails
    started = time.monotonic()
    done = cli({**ssl_env(kafka_tls), "OUTAGE_TOPIC_PREFIX": prefix}, "incident", "list")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("outage: broker 127.0.0.1:"), lines
    assert "certificate" in lines[0].lower(), lines
    assert time.monotonic() - started < 30
