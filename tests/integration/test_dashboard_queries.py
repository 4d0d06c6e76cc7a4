"""The operators' view run for real (issue 17): a real Prometheus (Debian's ``prometheus``) with
``deploy/prometheus.yml`` (its targets pointed at two live workers, its intervals shortened) and the
alert rules of ``deploy/prometheus/alerts.yml``, scraping the workers while an incident is notified.

- Every alert rule is loaded and evaluated without an error, and none fires on a healthy pipeline.
- Every query of every panel of the Grafana dashboard (``deploy/grafana/dashboards``), with
  Grafana's ``$__rate_interval`` written as a window, is accepted by Prometheus; the panels of what
  a healthy pipeline always has (the workers up, the build, the customers, the notices sent) return
  data, and every ``outage_*`` metric a panel names is one the workers expose.

Grafana itself is not started (no Grafana on these machines): what it would send Prometheus is.
Skipped where no ``prometheus`` is installed."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from devtools.embedded import free_port
from devtools.procs import spawn, stop_process
from tests.conftest import API_TOKEN, http
from tests.factories import ROOT, customer, load_customers
from tests.integration.faults_kit import until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus on PATH")]

DEPLOY = ROOT / "deploy"
WINDOW = "30s"   # what $__rate_interval stands for here (four scrapes of one second, as Grafana asks)
# the panels a healthy pipeline that has notified an incident always has data for
ALWAYS = {"Workers up", "Versions running", "Customers", "Notices sent by kind", "Resident memory", "CPU"}


def config(targets: list[str], rules: Path) -> dict:
    """deploy/prometheus.yml with the live workers as its targets, one-second intervals, the rules
    file by its absolute path."""
    cfg = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (files,) = [cfg["rule_files"]]
    assert files == ["prometheus/alerts.yml"], files
    cfg["rule_files"] = [str(rules)]
    (job,) = cfg["scrape_configs"]
    job["static_configs"] = [{"targets": targets}]
    return cfg


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every target of every dashboard, Grafana's variables written out."""
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((panel["title"], target["expr"].replace("$__rate_interval", WINDOW)))
    return out


def query(base: str, expr: str) -> tuple[int, dict]:
    return http("GET", f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")


async def test_prometheus_evaluates_the_alert_rules_and_every_dashboard_query_against_live_workers(
        workers, broker, prefix, tmp_path):
    load_customers(broker.bootstrap, prefix, [customer("c-dash", contacts=["ops@dash.example"])])
    pair = [workers(), workers()]
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(
        config([w.url.removeprefix("http://") for w in pair], DEPLOY / "prometheus" / "alerts.yml")))
    log = open(tmp_path / "prometheus.log", "wb")
    server = spawn(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        def sent() -> bool:   # the notice counted, as Prometheus has scraped it
            status, body = query(base, "sum(outage_notices_sent_total)")
            return status == 200 and bool(body["data"]["result"]) and float(body["data"]["result"][0]["value"][1]) > 0

        def up() -> bool:
            try:
                status, body = query(base, 'sum(up{job="outage-worker"})')
            except OSError:
                return False
            return status == 200 and body["data"]["result"] and body["data"]["result"][0]["value"][1] == "2"

        assert await until(up, 60, poll=0.5), f"prometheus never saw both workers:\n{(tmp_path / 'prometheus.log').read_text()[-2000:]}"
        # declared once Prometheus scrapes both workers, so that the counters are seen rising
        status, declared = http("POST", pair[0].url + "/api/incidents", {
            "severity": "major", "title": {"en": "API errors"}, "message": {"en": "We are investigating."},
            "components": ["api"], "regions": ["ap-northeast-1"]}, token=API_TOKEN)
        assert status == 201, declared
        assert await until(sent, 60, poll=0.5), "the notice never showed in outage_notices_sent_total"
        seen = datetime.now(timezone.utc).isoformat()

        def rules() -> list[dict]:
            status, body = http("GET", base + "/api/v1/rules")
            assert status == 200, body
            return [r for g in body["data"]["groups"] for r in g["rules"]]

        # every alert rule evaluated again once the notice was counted
        assert await until(lambda: all(r.get("lastEvaluation", "") > seen for r in rules()), 30, poll=0.5), rules()
        # every alert rule loaded and evaluated without an error, and none firing
        loaded = rules()
        assert loaded and all(r["type"] == "alerting" for r in loaded)
        assert len(loaded) == len(re.findall(r"^\s*- alert:", (DEPLOY / "prometheus" / "alerts.yml").read_text(), re.M))
        broken = {r["name"]: r.get("lastError") for r in loaded if r["health"] != "ok"}
        assert not broken, broken
        firing = [r["name"] for r in loaded if r["state"] == "firing"]
        assert not firing, f"alerts firing on a healthy pipeline: {firing}"

        # every panel's query is accepted, the always-there panels have data
        exposed = set()
        for w in pair:
            status, text = w.get("/metrics")
            assert status == 200
            exposed |= {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", text, re.M)}
        queries = panel_queries()
        assert queries
        empty = []
        for title, expr in queries:
            status, body = query(base, expr)
            assert status == 200 and body["status"] == "success", (title, expr, body)
            if title in ALWAYS and not body["data"]["result"]:
                empty.append((title, expr))
            for name in re.findall(r"\b(outage_[a-z_]+)", expr):
                family = re.sub(r"_(bucket|sum|count|total)$", "", name)
                assert name in exposed or family in exposed, f"panel {title!r} reads {name}, which no worker exposes"
        assert not empty, f"panels without data on a healthy pipeline: {empty}"
    finally:
        stop_process(server)
        log.close()
