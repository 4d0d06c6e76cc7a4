"""A real Apache Kafka on loopback, from its own jars: for the tests, the bench and ``outage dev
--broker kafka``. Production runs the same version (``deploy/``).

The jars (``org.apache.kafka:kafka_2.13`` and its runtime dependencies) are fetched once with
Maven into a cache outside the repository (``OUTAGE_KAFKA_CACHE``, default
``~/.cache/outage/kafka-<version>``): ``python -m devtools.kafka fetch``, which ``make test`` runs.
``KafkaCluster`` starts one node or three (KRaft, each node broker and controller, a static
quorum) on free loopback ports, waits until every node is in the metadata, kills, pauses and
restarts a chosen node, and stops exactly the processes it started.

    with KafkaCluster(nodes=3) as cluster:
        cluster.bootstrap          # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        cluster.kill(cluster.leader_of("outage.notices", 0))
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devtools.embedded import free_port, wait_listening

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"   # the log4j-core that kafka_2.13 4.1.1 depends on; its slf4j binding
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.outage</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
"""


def cache_dir() -> Path:
    root = os.environ.get("OUTAGE_KAFKA_CACHE")
    if root:
        return Path(root)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "outage" / f"kafka-{KAFKA_VERSION}"


def fetch(quiet: bool = True) -> Path:
    """The directory of Kafka's jars, fetched with Maven the first time."""
    libs = cache_dir() / "libs"
    if (libs / ".complete").exists():
        return libs
    if not shutil.which("mvn") or not shutil.which("java"):
        raise RuntimeError("Apache Kafka runs here from its jars, fetched with Maven: install Java 17 and Maven "
                           "(mvn), or point OUTAGE_KAFKA_CACHE at a directory holding libs/ of Kafka "
                           f"{KAFKA_VERSION}")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=libs.parent, prefix=".fetch-") as tmp:
        (Path(tmp) / "pom.xml").write_text(POM)
        out = Path(tmp) / "libs"
        cmd = ["mvn", "-B", "-f", str(Path(tmp) / "pom.xml"), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={out}"]
        if quiet:
            cmd.insert(1, "-q")
        done = subprocess.run(cmd, capture_output=quiet, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"mvn could not fetch Kafka {KAFKA_VERSION}'s jars:\n"
                               + ((done.stdout or "") + (done.stderr or ""))[-3000:])
        if not any(out.glob(f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar")):
            raise RuntimeError(f"mvn finished but kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar is not in {out}")
        (out / ".complete").write_text(KAFKA_VERSION + "\n")
        if libs.exists():      # a concurrent fetch finished first
            return libs
        out.rename(libs)
    return libs


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise RuntimeError("Apache Kafka needs Java 17 (java is not on PATH)")
    return found


@dataclass
class Node:
    node_id: int
    port: int             # PLAINTEXT listener (clients and other brokers)
    controller_port: int
    sasl_port: int | None
    ssl_port: int | None
    directory: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def config(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "kafka.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """One or three KRaft nodes on loopback; stops exactly the processes it started."""

    def __init__(self, nodes: int = 1, host: str = "127.0.0.1", work_dir: Path | None = None,
                 scram_users: dict[str, str] | None = None, tls: bool = False, heap: str = "512m",
                 log_level: str = "WARN",
                 broker_config: dict[str, str] | None = None, ready_timeout: float = 90.0) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.size = nodes
        self.host = host
        self.scram_users = dict(scram_users or {})
        self.tls = tls
        self.heap = heap
        self.log_level = log_level
        self.broker_config = dict(broker_config or {})
        self.ready_timeout = ready_timeout
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else None
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.nodes: list[Node] = []

    # -- addresses ------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def ssl_bootstrap(self) -> str:
        if not self.tls:
            raise RuntimeError("this cluster has no SSL listener (start it with tls=True)")
        return ",".join(f"{self.host}:{n.ssl_port}" for n in self.nodes)

    @property
    def ca_file(self) -> Path:
        """The CA (made for this cluster) that signed the brokers' certificates."""
        return self.work_dir / "tls" / "ca.pem"

    def _make_certificates(self) -> None:
        """A CA of this cluster's own and one broker certificate for 127.0.0.1 and localhost (openssl)."""
        tls = self.work_dir / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        (tls / "ext.cnf").write_text(f"subjectAltName=IP:{self.host},DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                     "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        steps = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
             "-subj", "/CN=outage test CA"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", "7", "-extfile", "ext.cnf"],
        ]
        for step in steps:
            done = subprocess.run(["openssl", *step], cwd=tls, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"openssl {step[0]} failed: {done.stderr.strip()[-500:]}")
        # Kafka's PEM key store: the private key (unencrypted PKCS#8) and the certificate chain
        (tls / "broker-keystore.pem").write_text((tls / "broker.key").read_text() + (tls / "broker.pem").read_text())

    @property
    def sasl_bootstrap(self) -> str:
        if not self.scram_users:
            raise RuntimeError("this cluster has no SASL listener (start it with scram_users)")
        return ",".join(f"{self.host}:{n.sasl_port}" for n in self.nodes)

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> "KafkaCluster":
        libs = fetch()
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="outage-kafka-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._classpath = f"{libs}/*"
        for i in range(self.size):
            d = self.work_dir / f"node-{i + 1}"
            (d / "data").mkdir(parents=True, exist_ok=True)
            self.nodes.append(Node(i + 1, free_port(self.host), free_port(self.host),
                                   free_port(self.host) if self.scram_users else None,
                                   free_port(self.host) if self.tls else None, d))
        if self.tls:
            self._make_certificates()
        try:
            for node in self.nodes:
                node.config.write_text(self._properties(node))
                (node.directory / "log4j2.properties").write_text(LOG4J2.format(level=self.log_level))
            formats = [subprocess.Popen(self._format_command(n), stdout=open(n.log_path, "ab"),
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) for n in self.nodes]
            for n, p in zip(self.nodes, formats):
                if p.wait(timeout=120) != 0:
                    raise RuntimeError(f"formatting node {n.node_id}'s storage failed:\n{self._tail(n)}")
            for node in self.nodes:
                self._launch(node)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _properties(self, node: Node) -> str:
        h = self.host
        voters = ",".join(f"{n.node_id}@{h}:{n.controller_port}" for n in self.nodes)
        listeners = [f"PLAINTEXT://{h}:{node.port}", f"CONTROLLER://{h}:{node.controller_port}"]
        advertised = [f"PLAINTEXT://{h}:{node.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        rf = min(3, self.size)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.directory / "data"),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min(2, rf)),
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(min(2, rf)),
            "num.partitions": "1",
            # the worker creates every topic it uses, with its partition count: nothing by accident
            "auto.create.topics.enable": "false",
            # a group forms as soon as its members join (a test, not a fleet rolling out)
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.scram_users:
            listeners.append(f"SASL_PLAINTEXT://{h}:{node.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://{h}:{node.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
            for mech in SCRAM_MECHANISMS:
                props[f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        if self.tls:
            listeners.append(f"SSL://{h}:{node.ssl_port}")
            advertised.append(f"SSL://{h}:{node.ssl_port}")
            protocols.append("SSL:SSL")
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = str(self.work_dir / "tls" / "broker-keystore.pem")
        props["listeners"] = ",".join(listeners)
        props["advertised.listeners"] = ",".join(advertised)
        props["listener.security.protocol.map"] = ",".join(protocols)
        props.update(self.broker_config)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _jvm(self, node: Node) -> list[str]:
        return [java(), "-Xms128m", f"-Xmx{self.heap}", "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
                "-cp", self._classpath]

    def _format_command(self, node: Node) -> list[str]:
        cmd = self._jvm(node) + ["kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}",
                                 "-c", str(node.config), "--ignore-formatted"]
        for name, password in self.scram_users.items():
            for mech in SCRAM_MECHANISMS:
                cmd += ["--add-scram", f"{mech}=[name={name},password={password}]"]
        return cmd

    def _launch(self, node: Node) -> None:
        node.process = subprocess.Popen(self._jvm(node) + ["kafka.Kafka", str(node.config)],
                                        stdout=open(node.log_path, "ab"), stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until every running node is an unfenced broker in the cluster's metadata."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        want = {n.node_id for n in self.nodes if n.running}
        last: object = None
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.process is not None and n.process.poll() is not None and n.node_id in want:
                    raise RuntimeError(f"Kafka node {n.node_id} exited with {n.process.returncode}:\n{self._tail(n)}")
            try:
                live = self.live_brokers()
                if want <= live:
                    return
                last = f"brokers in the metadata: {sorted(live)}, expected {sorted(want)}"
            except Exception as exc:  # noqa: BLE001 - still starting
                last = exc
            time.sleep(0.5)
        raise RuntimeError(f"Kafka not ready after {timeout or self.ready_timeout:.0f}s ({last}):\n"
                           + "\n".join(self._tail(n) for n in self.nodes))

    def live_brokers(self) -> set[int]:
        with self.admin() as client:
            return {b["broker_id"] for b in client.describe_cluster()["brokers"] if not b.get("is_fenced")}

    def admin(self):
        from kafka.admin import KafkaAdminClient

        running = [f"{self.host}:{n.port}" for n in self.nodes if n.running] or [self.bootstrap]
        client = KafkaAdminClient(bootstrap_servers=running, client_id="kafka-fixture",
                                  request_timeout_ms=5000, bootstrap_timeout_ms=3000)
        return contextlib.closing(client)

    def leader_of(self, topic: str, partition: int, timeout: float = 30.0) -> int:
        """The index (0-based, for ``kill``/``restart``) of the node leading ``topic``'s ``partition``."""
        deadline = time.monotonic() + timeout
        while True:
            with self.admin() as client:
                for meta in client.describe_topics([topic]):
                    for p in meta.get("partitions") or []:
                        if p["partition_index"] == partition and p["leader_id"] >= 0:
                            return next(i for i, n in enumerate(self.nodes) if n.node_id == p["leader_id"])
            if time.monotonic() > deadline:
                raise LookupError(f"{topic}:{partition} has no leader after {timeout:.0f}s")
            time.sleep(0.5)

    def kill(self, index: int) -> None:
        """``kill -9`` of one node."""
        node = self.nodes[index]
        if node.running:
            node.process.kill()
            node.process.wait(timeout=30)

    def stop_node(self, index: int, timeout: float = 60.0) -> None:
        node = self.nodes[index]
        if node.running:
            node.process.terminate()
            try:
                node.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=30)

    def restart(self, index: int, wait: bool = True) -> None:
        """Start a stopped or killed node again on its own ports and storage."""
        node = self.nodes[index]
        if node.running:
            raise RuntimeError(f"node {node.node_id} is running")
        self._launch(node)
        wait_listening(self.host, node.port, timeout=60)
        if wait:
            self.wait_ready()

    def pause(self) -> None:
        """Every node stops answering (SIGSTOP): the cluster is unreachable but loses nothing."""
        for n in self.nodes:
            if n.running:
                os.kill(n.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        for n in self.nodes:
            if n.running:
                os.kill(n.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        for n in self.nodes:
            if n.running:
                os.kill(n.process.pid, signal.SIGCONT)   # a paused node cannot act on SIGTERM
                n.process.terminate()
        for n in self.nodes:
            if n.process is not None:
                try:
                    n.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    n.process.kill()
                    n.process.wait(timeout=30)
        if self._own_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _tail(self, node: Node, lines: int = 30) -> str:
        try:
            text = node.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- node {node.node_id} ---\n" + "\n".join(text)

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.kafka", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"fetch Apache Kafka {KAFKA_VERSION}'s jars into the cache (once)")
    run = sub.add_parser("run", help="run a local cluster until interrupted")
    run.add_argument("--nodes", type=int, default=1, choices=(1, 3))
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch())
            return 0
        with KafkaCluster(nodes=args.nodes) as cluster:
            print(f"Apache Kafka {KAFKA_VERSION}, {args.nodes} node(s): OUTAGE_BROKER={cluster.bootstrap}", flush=True)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
