"""What the operators watch stays true to the code (issue 17).

- Every metric the alert rules (``deploy/prometheus/alerts.yml``) and the Grafana dashboard
  (``deploy/grafana/dashboards/``) use is one ``streams/metrics.py`` declares on the registry that
  ``GET /metrics`` serves (or one of prometheus_client's standard collectors on it), so neither
  can drift from the code; every alert has a summary and a runbook that is a section of
  ``docs/operating.md``; that page lists every ``outage_*`` metric and names no other.
- The registry carries the process, GC and platform collectors and ``outage_build_info``.
- A missed promise is counted where the margin is observed.
- Every ``topic`` label is the topic's name without the prefix (the in-memory broker's workers
  run with prefix ``t.``): the dead letters and events of an input topic, of the customers and of
  the notices alike.
- The consumer lag: per partition the high watermark minus the committed offset (else the
  position), summed per topic an agent reads, read from faust's consumer and aiokafka's
  assignment (the real classes; the broker is not needed).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition
from prometheus_client import generate_latest

from core.settings import Settings
from streams import metrics as M
from streams import topics as T
from streams.kafka import lag
from tests.factories import customer, declared
from tests.inmemory.broker import Broker
from tests.unit.test_deliveries import wired
from tests.unit.test_docs import anchors
from tests.unit.test_sender import T0, customers, jobs_for

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
OPERATING = ROOT / "docs" / "operating.md"
# names of the standard collectors, and Prometheus' own ``up``
STANDARD = re.compile(r"(process|python)_\w+")
METRIC = re.compile(r"(?<![\w.$])((?:outage|process|python)_[a-zA-Z0-9_]+|up)(?=\s*[{\[)]|\s|$)")


def declared_samples() -> set[str]:
    """Every sample name the registry can serve: counters' ``_total``, histograms' series..."""
    names = set()
    for family in M.REGISTRY.collect():
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                    "gauge": [""], "info": ["_info"], "summary": ["_sum", "_count", "_created", ""]}
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    found = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((panel["title"], target["expr"]))
            walk(panel.get("panels", []))

    for path in DASHBOARDS:
        walk(json.loads(path.read_text())["panels"])
    return found


def metrics_in(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def test_the_metric_pattern_sees_metrics_and_not_labels_or_functions():
    assert metrics_in('sum by (topic) (increase(outage_dead_letters_total{topic="x"}[5m])) > 0') == \
        {"outage_dead_letters_total"}
    assert metrics_in('absent(up{job="outage-worker"} == 1)') == {"up"}
    assert metrics_in("histogram_quantile(0.5, sum by (le) (rate(outage_smtp_send_seconds_bucket[1m])))") == \
        {"outage_smtp_send_seconds_bucket"}
    assert metrics_in("min(outage_capacity_ratio)") == {"outage_capacity_ratio"}


def test_every_metric_of_the_alerts_and_the_dashboard_is_declared():
    declared = declared_samples() | {"up"}
    used = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()] + dashboard_exprs()
    assert DASHBOARDS and len(used) > 20
    unknown = sorted({(where, name) for where, expr in used for name in metrics_in(expr) if name not in declared})
    assert not unknown, f"not declared in streams/metrics.py (or the standard collectors): {unknown}"
    empty = [where for where, expr in used if not metrics_in(expr)]
    assert not empty, f"these read no metric at all: {empty}"


def test_the_alerts_the_contract_asks_for_are_there():
    used = {rule["alert"]: metrics_in(rule["expr"]) for rule in alert_rules()}
    needed = {"OutagePromiseMissed": "outage_notices_late_total", "OutageNoWorkerUp": "up",
              "OutageDeadLettersGrowing": "outage_dead_letters_total",
              "OutageSmtpPermanentFailures": "outage_notice_failures_total",
              "OutageConsumerLag": "outage_consumer_lag_records",
              "OutageSendQueueStuck": "outage_send_queue_depth"}
    for alert, metric in needed.items():
        assert metric in used.get(alert, set()), f"{alert} does not read {metric}"


def test_every_alert_has_a_summary_and_a_runbook_section_in_operating_md():
    sections = anchors(OPERATING)
    for rule in alert_rules():
        notes = rule.get("annotations", {})
        assert notes.get("summary"), f"{rule['alert']}: no summary"
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), rule["alert"]
        path, _, anchor = notes.get("runbook", "").partition("#")
        assert path == "docs/operating.md" and anchor in sections, \
            f"{rule['alert']}: runbook {notes.get('runbook')!r} is no section of docs/operating.md"
        assert anchor == rule["alert"].lower(), f"{rule['alert']}: its section is named after it"


def test_operating_md_lists_every_metric_and_no_other():
    text = OPERATING.read_text()
    named = set(re.findall(r"`(outage_[a-z0-9_]+)", text))
    families = {f.name + ("_total" if f.type == "counter" else "") for f in M.REGISTRY.collect()
                if f.name.startswith("outage_")}
    assert families - named == set(), f"docs/operating.md does not list {sorted(families - named)}"
    samples = declared_samples() | {f.name for f in M.REGISTRY.collect()}   # a histogram by its name
    assert named - samples == set(), f"docs/operating.md names metrics that do not exist: {sorted(named - samples)}"


def test_the_registry_served_has_the_standard_collectors_and_the_build_info():
    text = generate_latest(M.REGISTRY).decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_gc_collections_total",
                 "python_info"):
        assert re.search(rf"^{name}[{{ ]", text, re.M), f"{name} is not served"
    (line,) = [x for x in text.splitlines() if x.startswith("outage_build_info{")]
    assert re.fullmatch(r'outage_build_info\{version="\d[^"]*"\} 1\.0', line), line
    web = (ROOT / "streams" / "web.py").read_text()
    assert "generate_latest(M.REGISTRY)" in web, "GET /metrics serves another registry than streams.metrics.REGISTRY"


def test_the_labels_the_alerts_read_are_exported_before_their_first_increment():
    """increase() misses a series' first increment when the series appears with it."""
    for reason in ("permanent", "temporary", "error"):
        assert M.REGISTRY.get_sample_value("outage_notice_failures_total", {"reason": reason}) is not None
    for topic in (T.CUSTOMERS, T.INCIDENT_EVENTS, T.TICKET_EVENTS, T.NOTICES):
        assert M.REGISTRY.get_sample_value("outage_dead_letters_total", {"topic": topic}) is not None
    assert M.REGISTRY.get_sample_value("outage_notices_sent_total", {"kind": "progress"}) is not None


# -- a missed promise ---------------------------------------------------------------------------

def value(name: str, labels: dict | None = None) -> float:
    return M.REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_a_notice_sent_after_its_promised_time_counts_one_missed_promise():
    deliveries, *_ = wired()
    early, late = jobs_for(customers(["a@example.com", "b@example.com"]))
    sent_at = T0 + timedelta(seconds=100)
    missed, below_zero = value("outage_notices_late_total"), value("outage_promise_margin_seconds_bucket", {"le": "0.0"})
    kept = value("outage_promise_margin_seconds_count")

    await deliveries.record_sent(replace(early, due=(sent_at + timedelta(seconds=30)).timestamp()), 1, sent_at)
    assert value("outage_notices_late_total") == missed            # kept, 30 s to spare
    await deliveries.record_sent(replace(late, due=(sent_at - timedelta(seconds=7)).timestamp()), 1, sent_at)
    assert value("outage_notices_late_total") == missed + 1        # 7 s after the promised time
    assert value("outage_promise_margin_seconds_count") == kept + 2
    assert value("outage_promise_margin_seconds_bucket", {"le": "0.0"}) == below_zero + 1


# -- the topic label ------------------------------------------------------------------------------

def test_a_topic_name_without_its_prefix():
    names = T.TopicNames("outage.")
    assert names.base("outage.incident-events") == "incident-events"
    assert names.base(names.name(T.CUSTOMERS)) == "customers"
    assert names.base("other.customers") == "other.customers"     # not ours: left as it is
    assert T.TopicNames("").base("incident-events") == "incident-events"


def topic_samples() -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in M.REGISTRY.collect() for s in f.samples
            if "topic" in s.labels and not s.name.endswith("_created")}


async def test_every_topic_label_is_the_name_without_the_prefix():
    samples = topic_samples()
    before = {t: value("outage_dead_letters_total", {"topic": t}) for t in ("customers", "incident-events", "notices")}
    handled = value("outage_events_total", {"topic": "incident-events", "result": "dead-letter"})
    async with Broker() as broker:
        good = customer("c-1")
        broker.produce("customers", "c-1", good)
        broker.produce("customers", "c-someone-else", customer("c-2"))   # its key is not its id
        broker.worker("w0")
        await broker.rebalance()
        await broker.pump()
        broker.relay.refuse(good["contacts"][0]["email"])
        broker.produce("incident-events", "inc-bad", b"{not json")
        broker.produce("incident-events", "inc-1", declared("inc-1", at=broker.at(), update_interval_seconds=60))
        await broker.pump()
        assert {letter["topic"] for letter in broker.read("dead-letters")} == \
            {"t.customers", "t.incident-events", "t.notices"}   # the record names the topic in full
    for topic, was in before.items():
        assert value("outage_dead_letters_total", {"topic": topic}) == was + 1, topic
    assert value("outage_events_total", {"topic": "incident-events", "result": "dead-letter"}) == handled + 1
    moved = {key for key, v in topic_samples().items() if samples.get(key) != v}   # by this test's worker
    assert moved and all(not dict(labels)["topic"].startswith("t.") for _, labels in moved), sorted(moved)


# -- the consumer lag -----------------------------------------------------------------------------

def test_a_partitions_lag_is_its_high_watermark_minus_what_was_handled():
    assert lag.partition_lag(highwater=120, committed=100, position=118) == 20
    assert lag.partition_lag(highwater=120, committed=None, position=118) == 2    # nothing committed yet
    assert lag.partition_lag(highwater=None, committed=100, position=100) == 0    # not fetched yet
    assert lag.partition_lag(highwater=100, committed=None, position=None) == 0
    assert lag.partition_lag(highwater=100, committed=100, position=100) == 0


@pytest.fixture
def faust_app(tmp_path):
    from streams.faust_app import build_app
    from streams.kafka.broker import TANSU

    settings = Settings(broker="127.0.0.1:9", data_dir=tmp_path, topic_prefix="outage.")
    yield build_app(settings, profile=TANSU, partitions=4, names=T.TopicNames("outage."))
    M.CONSUMER_LAG.clear()   # its functions read this app


async def test_the_lag_is_read_from_fausts_consumer_per_topic_an_agent_reads(faust_app, monkeypatch):
    names = T.TopicNames("outage.")
    read = {T.ROUNDS, T.INCIDENT_EVENTS, T.TICKS}
    assert lag.lag_by_topic(faust_app, names.base, read) == dict.fromkeys(read, 0)   # no consumer yet

    tps = [TopicPartition("outage.rounds", 0), TopicPartition("outage.rounds", 2),
           TopicPartition("outage.incident-events", 1), TopicPartition("outage.ticks", 3),
           TopicPartition("outage.customers", 0), TopicPartition("outage-worker-ledger-changelog", 0)]
    subscription = SubscriptionState()
    subscription.assign_from_user(tps)
    assignment = subscription.subscription.assignment
    offsets = {tps[0]: (50, 40, 45), tps[1]: (9, None, 4), tps[2]: (7, 7, 7), tps[3]: (None, None, None),
               tps[4]: (1000, None, 0), tps[5]: (500, None, 0)}     # highwater, committed, position
    consumer = faust_app.consumer                  # faust's consumer, its thread not started
    for tp, (highwater, committed, position) in offsets.items():
        state = assignment.state_value(tp)
        state.highwater = highwater
        if position is not None:
            state.seek(position)
        if committed is not None:
            consumer._committed_offset[tp] = committed
    monkeypatch.setattr(consumer._thread, "_consumer", type("AIOKafka", (), {"_subscription": subscription})())
    monkeypatch.setattr(faust_app.assignor, "assigned_actives", lambda: set(tps))

    assert lag.lag_by_topic(faust_app, names.base, read) == {T.ROUNDS: 10 + 5, T.INCIDENT_EVENTS: 0, T.TICKS: 0}

    gauge_name = "outage_consumer_lag_records"
    lag.expose(M.CONSUMER_LAG, faust_app, names.base, read)
    assert M.REGISTRY.get_sample_value(gauge_name, {"topic": "rounds"}) == 15
    assignment.state_value(tps[0]).highwater = 80                   # more written meanwhile
    assert M.REGISTRY.get_sample_value(gauge_name, {"topic": "rounds"}) == 45
    assert M.REGISTRY.get_sample_value(gauge_name, {"topic": "customers"}) is None   # not an agent's input


def test_a_worker_exposes_the_lag_of_every_topic_its_agents_read(tmp_path):
    """The Pipeline a worker builds (no broker needed to build it) sets the gauge per agent topic."""
    from streams.app import Pipeline
    from streams.kafka.broker import TANSU

    settings = Settings(broker="127.0.0.1:9", data_dir=tmp_path, topic_prefix="outage.")
    try:
        pipe = Pipeline(settings, profile=TANSU, partitions=4, mailer=None, compose=lambda job, now: b"")
        agents = {pipe.names.base(name) for topic, _, _ in pipe.parts.agents for name in topic.topics}
        assert {T.INCIDENT_EVENTS, T.TICKS, T.ROUNDS, T.TICKET_EVENTS} <= agents
        shown = {s.labels["topic"]: s.value for f in M.REGISTRY.collect() if f.name == "outage_consumer_lag_records"
                 for s in f.samples}
        assert shown == dict.fromkeys(agents, 0.0)      # nothing consumed: the consumer is not running
    finally:
        M.CONSUMER_LAG.clear()
