"""Secure connections and the Kafka profile, without a broker: the settings' validation, the one
mapping of the settings to each client library's options, the profiles' faust settings, the
idempotent producer of the Kafka transport and the replication of the topics the worker creates."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings
from schemas import describe_validation_error
from streams.kafka import broker as B
from streams import topics as T

SCRAM = dict(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
             kafka_username="alice", kafka_password="s3cret-pw")


def error_of(**kwargs) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**kwargs)
    return describe_validation_error(info.value)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> Path:
    """A self-signed CA certificate in PEM, made with the openssl command."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=outage test CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")],
                   check=True, capture_output=True)
    return d / "ca.pem"


# -- settings ---------------------------------------------------------------------------------

def test_the_defaults_are_plaintext_and_no_credentials():
    s = Settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert (s.kafka_sasl_mechanism, s.kafka_username, s.kafka_password, s.kafka_ca_file) == (None,) * 4
    assert s.replication_factor is None and s.broker_session_timeout_seconds is None


def test_settings_come_from_the_contracts_variables(monkeypatch, ca_file):
    monkeypatch.setenv("OUTAGE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("OUTAGE_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("OUTAGE_KAFKA_USERNAME", "alice")
    monkeypatch.setenv("OUTAGE_KAFKA_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("OUTAGE_KAFKA_CA_FILE", str(ca_file))
    monkeypatch.setenv("OUTAGE_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("OUTAGE_BROKER_SESSION_TIMEOUT_SECONDS", "6")
    s = Settings.from_env()
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert s.kafka_username == "alice" and s.kafka_password.get_secret_value() == "s3cret-pw"
    assert s.kafka_ca_file == ca_file and s.replication_factor == 3 and s.broker_session_timeout_seconds == 6
    assert "s3cret-pw" not in repr(s) and "s3cret-pw" not in str(s)


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_sasl_protocol_needs_a_mechanism_a_username_and_a_password(protocol):
    message = error_of(kafka_security_protocol=protocol)
    assert message == (f"security protocol {protocol} (OUTAGE_KAFKA_SECURITY_PROTOCOL) needs "
                       "OUTAGE_KAFKA_SASL_MECHANISM, OUTAGE_KAFKA_USERNAME and OUTAGE_KAFKA_PASSWORD")
    message = error_of(kafka_security_protocol=protocol, kafka_sasl_mechanism="PLAIN", kafka_username="alice",
                       kafka_password="  ")   # blank is unset
    assert message.endswith("needs OUTAGE_KAFKA_PASSWORD")


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_credentials_without_a_sasl_protocol_are_refused_rather_than_ignored(protocol):
    message = error_of(kafka_security_protocol=protocol, kafka_username="alice", kafka_password="s3cret-pw")
    assert "OUTAGE_KAFKA_USERNAME and OUTAGE_KAFKA_PASSWORD" in message and f"protocol {protocol}" in message
    assert "SASL_PLAINTEXT or SASL_SSL" in message and "s3cret-pw" not in message


@pytest.mark.parametrize("field, value", [("kafka_security_protocol", "TLS"),
                                          ("kafka_sasl_mechanism", "GSSAPI"),
                                          ("replication_factor", "0"),
                                          ("broker_session_timeout_seconds", "0.5")])
def test_bad_values_are_refused(field, value):
    kwargs = {**SCRAM, field: value}
    assert error_of(**kwargs).startswith(field + ":")


def test_the_ca_file_must_exist_and_be_a_pem_bundle(tmp_path, ca_file):
    tls = dict(kafka_security_protocol="SSL")
    assert error_of(**tls, kafka_ca_file=str(tmp_path / "nope.pem")) == (
        f"the CA file {tmp_path / 'nope.pem'} (OUTAGE_KAFKA_CA_FILE): no such file")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert "is not a PEM CA bundle" in error_of(**tls, kafka_ca_file=str(junk))
    assert Settings(**tls, kafka_ca_file=str(ca_file)).kafka_ca_file == ca_file


def test_a_ca_file_without_tls_is_refused(ca_file):
    assert "does not use TLS" in error_of(kafka_ca_file=str(ca_file))
    assert "does not use TLS" in error_of(**SCRAM, kafka_ca_file=str(ca_file))


def test_the_cli_names_a_bad_security_setting_in_one_line(monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.setenv("OUTAGE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("OUTAGE_KAFKA_USERNAME", "alice")
    assert main(["incident", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        "outage: invalid settings: security protocol SASL_SSL (OUTAGE_KAFKA_SECURITY_PROTOCOL) needs "
        "OUTAGE_KAFKA_SASL_MECHANISM and OUTAGE_KAFKA_PASSWORD"]


# -- the options of each client library ---------------------------------------------------------

def test_plaintext_adds_no_options():
    s = Settings()
    assert B.kafka_python_options(s) == {} and B.aiokafka_options(s) == {}
    assert B.faust_credentials(s) is None and B.ssl_context(s) is None


def test_sasl_plaintext_scram():
    s = Settings(**SCRAM)
    expected = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                    sasl_plain_username="alice", sasl_plain_password="s3cret-pw")
    assert B.kafka_python_options(s) == expected
    assert B.aiokafka_options(s) == expected
    creds = B.faust_credentials(s)
    import faust

    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value, creds.username, creds.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "s3cret-pw")
    assert "s3cret-pw" not in repr(creds)


def test_sasl_ssl_verifies_the_brokers_with_the_ca_file(ca_file):
    s = Settings(**{**SCRAM, "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512"},
                 kafka_ca_file=str(ca_file))
    kp = B.kafka_python_options(s)
    assert kp == dict(security_protocol="SASL_SSL", ssl_cafile=str(ca_file), sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username="alice", sasl_plain_password="s3cret-pw")
    aio = B.aiokafka_options(s)
    context = aio.pop("ssl_context")
    assert aio == dict(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                       sasl_plain_username="alice", sasl_plain_password="s3cret-pw")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "outage test CA"),),)]
    creds = B.faust_credentials(s)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.ssl_context.get_ca_certs() == context.get_ca_certs()


def test_ssl_without_a_ca_file_uses_the_systems_cas():
    s = Settings(kafka_security_protocol="SSL")
    assert B.kafka_python_options(s) == dict(security_protocol="SSL", ssl_cafile=None)
    context = B.aiokafka_options(s)["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    import faust

    creds = B.faust_credentials(s)
    assert isinstance(creds, faust.SSLCredentials) and creds.protocol.value == "SSL"


@pytest.mark.parametrize("overrides", [{}, SCRAM, {**SCRAM, "kafka_security_protocol": "SASL_SSL"},
                                       {"kafka_security_protocol": "SSL"}],
                         ids=["plaintext", "sasl-plaintext", "sasl-ssl", "ssl"])
def test_faust_hands_its_aiokafka_clients_what_the_other_aiokafka_clients_get(overrides):
    """faust turns broker_credentials into aiokafka options itself: the same ones as ours."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    s = Settings(**overrides)
    faust_side = dict(credentials_to_aiokafka_auth(B.faust_credentials(s)))
    ours = B.aiokafka_options(s) or {"security_protocol": "PLAINTEXT"}
    contexts = faust_side.pop("ssl_context", None), ours.pop("ssl_context", None)
    assert faust_side == ours
    assert (contexts[0] is None) == (contexts[1] is None) == (not s.kafka_security_protocol.endswith("SSL"))


# -- the profiles -------------------------------------------------------------------------------

def test_the_kafka_profile_keeps_a_standby_and_waits_for_every_in_sync_replica():
    config = B.KAFKA.faust_config(Settings())
    assert config["table_standby_replicas"] == 1 and config["producer_acks"] == -1
    assert config["broker_session_timeout"] == 10.0 and "broker_credentials" not in config
    assert B.TANSU.faust_config(Settings())["table_standby_replicas"] == 0


def test_the_session_timeout_setting_overrides_the_profiles_with_a_heartbeat_a_third_of_it():
    config = B.KAFKA.faust_config(Settings(broker_session_timeout_seconds=6))
    assert config["broker_session_timeout"] == 6 and config["broker_heartbeat_interval"] == 2
    config = B.TANSU.faust_config(Settings(broker_session_timeout_seconds=45))
    assert config["broker_session_timeout"] == 45 and config["broker_heartbeat_interval"] == 2.0
    assert B.KAFKA.faust is not config and B.KAFKA.faust["broker_session_timeout"] == 10.0  # not changed


def test_the_faust_app_gets_the_credentials():
    import faust

    config = B.KAFKA.faust_config(Settings(**SCRAM))
    app = faust.App("t-creds", broker=B.KAFKA.faust_broker(Settings(broker="127.0.0.1:9", **SCRAM)), **config)
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert app.conf.broker_credentials.username == "alice"
    assert [str(u) for u in app.conf.broker] == ["outage-kafka://127.0.0.1:9"]


async def test_the_kafka_transports_producer_is_idempotent_with_acks_all():
    import faust

    settings = Settings(broker="127.0.0.1:9")
    app = faust.App("t-idem", broker=B.KAFKA.faust_broker(settings), **B.KAFKA.faust_config(settings))
    producer = app.producer._new_producer()   # the aiokafka producer faust would start
    try:
        assert producer._txn_manager is not None   # aiokafka's idempotence (producer ids, sequence numbers)
        assert producer._sender._acks == -1
    finally:
        await producer.stop()


async def test_the_tansu_transports_producer_is_not_idempotent():
    import faust

    settings = Settings(broker="127.0.0.1:9")
    app = faust.App("t-tansu", broker=B.TANSU.faust_broker(settings), **B.TANSU.faust_config(settings))
    producer = app.producer._new_producer()
    try:
        assert producer._txn_manager is None   # Tansu cannot issue producer ids (docs/kafka.md)
    finally:
        await producer.stop()


# -- the topics' replication --------------------------------------------------------------------

class FakeAdmin:
    def __init__(self, brokers: int, cluster_id: str = "kRaFtClusterId", topics: list[dict] | None = None):
        self.cluster = {"cluster_id": cluster_id,
                        "brokers": [{"broker_id": i + 1, "host": "127.0.0.1", "port": 9092 + i} for i in range(brokers)]}
        self.topics = topics or []
        self.created = []

    def describe_cluster(self):
        return self.cluster

    def describe_topics(self):
        return self.topics

    def create_topics(self, topics):
        self.created.extend(topics)


@pytest.mark.parametrize("brokers, factor, isr", [(1, 1, "1"), (2, 2, "2"), (3, 3, "2"), (5, 3, "2")])
def test_new_topics_get_min_3_brokers_replicas_and_min_2_in_sync(brokers, factor, isr):
    client = FakeAdmin(brokers)
    settings = Settings(broker="127.0.0.1:9092", topic_prefix="p.", partitions=4)
    assert B.ensure_topics(settings, client) == 4
    names = T.TopicNames("p.")
    by_name = {t.name: t for t in client.created}
    assert set(by_name) == ({names.name(b) for b in T.ALL} | {names.changelog(t) for t in T.TABLES})
    for name, topic in by_name.items():
        assert topic.replication_factor == factor
        assert topic.topic_configs["min.insync.replicas"] == isr
        compacted = name in (names.name(T.CUSTOMERS), names.name(T.FEEDBACK), names.name(T.SUPPRESSIONS)) \
            or name.endswith("-changelog")
        assert topic.topic_configs.get("cleanup.policy") == ("compact" if compacted else None), name
        # the preferences topic is kept whole: the view of the choices reads it from the start
        assert topic.topic_configs.get("retention.ms") == ("-1" if name == names.name(T.PREFERENCES) else None), name


def test_the_replication_factor_setting_wins_and_is_checked_against_the_brokers():
    settings = Settings(broker="127.0.0.1:9092", topic_prefix="p.", replication_factor=2)
    client = FakeAdmin(3)
    B.ensure_topics(settings, client)
    assert {(t.replication_factor, t.topic_configs["min.insync.replicas"]) for t in client.created} == {(2, "2")}
    with pytest.raises(B.BrokerRefused, match=r"OUTAGE_REPLICATION_FACTOR=3, but the cluster at 127.0.0.1:9092 "
                                              r"has 2 brokers up"):
        B.ensure_topics(Settings(broker="127.0.0.1:9092", replication_factor=3), FakeAdmin(2))


def test_on_tansu_topics_keep_one_replica_and_no_replication_configs():
    client = FakeAdmin(1, cluster_id="tansu_cluster")
    B.ensure_topics(Settings(broker="127.0.0.1:9092", topic_prefix="p.", replication_factor=3), client)
    assert {t.replication_factor for t in client.created} == {1}
    assert all("min.insync.replicas" not in t.topic_configs for t in client.created)
    assert {t.topic_configs.get("cleanup.policy") for t in client.created} == {"compact", None}


def test_existing_topics_are_not_created_again():
    names = T.TopicNames("p.")
    everything = [names.name(b) for b in T.ALL] + [names.changelog(t) for t in T.TABLES]
    topics = [{"error_code": 0, "name": n, "partitions": [{"partition_index": 0, "replica_nodes": [1, 2, 3]}]}
              for n in everything]
    client = FakeAdmin(3, topics=topics)
    assert B.ensure_topics(Settings(broker="127.0.0.1:9092", topic_prefix="p."), client) == 1
    assert client.created == []


# -- refusals -----------------------------------------------------------------------------------

def test_no_probe_without_security_or_when_nothing_answers():
    from devtools.embedded import free_port

    assert B.refusal(Settings(broker="127.0.0.1:9")) is None   # plaintext: nothing to refuse
    closed = f"127.0.0.1:{free_port()}"
    assert B.refusal(Settings(broker=closed, **SCRAM), timeout=5) is None   # unreachable is not refused


def test_existing_topics_with_fewer_replicas_than_asked_are_named_in_a_warning(caplog):
    names = T.TopicNames("p.")
    everything = [names.name(b) for b in T.ALL] + [names.changelog(t) for t in T.TABLES]
    topics = [{"error_code": 0, "name": n, "partitions": [{"partition_index": 0, "replica_nodes": [1]}]}
              for n in everything]
    with caplog.at_level("WARNING", logger="streams.kafka.broker"):
        B.ensure_topics(Settings(broker="127.0.0.1:9092", topic_prefix="p.", replication_factor=3),
                        FakeAdmin(3, topics=topics))
    warned = [r.getMessage() for r in caplog.records if "replicas, OUTAGE_REPLICATION_FACTOR is 3" in r.getMessage()]
    assert len(warned) == len(everything) and "topic p.customers has 1 replicas" in " ".join(warned)
