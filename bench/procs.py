"""The processes the bench starts — broker (embedded Tansu or Apache Kafka), SMTP sink, workers,
py-spy — and their clean-up.

Every process is registered in ``Processes`` as soon as it exists and stopped by
``Processes.stop_all()`` (newest first), which the CLI calls in a ``finally``: on success,
on an error and on Ctrl-C/SIGTERM alike. Only the processes started here are ever signalled,
by their own pid. Children other than the broker get their own session (so a Ctrl-C in the
terminal reaches the bench, which then stops them in order) and die with the bench if it is
killed outright (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from devtools.embedded import EmbeddedBroker, free_port, wait_listening
from devtools.kafka import KAFKA_VERSION, KafkaCluster
from devtools.procs import WorkerProcess, spawn, stop_process

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Unavailable(RuntimeError):
    """A tool the bench needs is missing and could not be installed: its rows are skipped."""


class Processes:
    """Everything started, in order; ``stop_all`` stops them newest first and never raises."""

    def __init__(self) -> None:
        self._items: list = []

    def add(self, thing):
        self._items.append(thing)
        return thing

    def remove(self, thing) -> None:
        if thing in self._items:
            self._items.remove(thing)

    def stop(self, thing) -> None:
        try:
            thing.stop()
        finally:
            self.remove(thing)

    def stop_all(self) -> list[str]:
        errors = []
        while self._items:
            thing = self._items.pop()
            try:
                thing.stop()
            except BaseException as exc:  # noqa: BLE001 - keep stopping the rest
                errors.append(f"{type(thing).__name__}: {exc!r}")
        return errors


# -- /proc ---------------------------------------------------------------------------------

def rss_bytes(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes, from /proc/<pid>/status (psutil is not installed)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount, _unit = line.split()
                values[name[:-1]] = int(amount) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def reaped_children_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s children that have ended and been waited for
    (e.g. a worker's pool of customer-validating helpers after a load)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLK_TCK  # cutime, cstime (fields 16, 17)


def machine_busy_seconds() -> float | None:
    """CPU seconds (all cores) the whole machine has been busy, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0        # already counted in user/nice
    return (sum(fields) - idle - guest) / CLK_TCK


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (a worker's delivery helpers), from /proc/<pid>/stat."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def delivery_helpers_of(pid: int) -> int:
    """How many of ``pid``'s children are delivery helpers (``python -m notifiers.delivery``); its
    other children (e.g. multiprocessing's resource tracker) are not counted."""
    found = 0
    for child in children_of(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"notifiers.delivery" in argv:
            found += 1
    return found


class CpuMeter:
    """CPU share (1.0 = one core busy) of a set of processes over an interval, and of everything
    else on the machine ("others": anything not started by this bench, e.g. someone's tests)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {k: v for k, v in pids.items() if v} | {"bench": os.getpid()}
        self.t0 = time.monotonic()
        self.c0 = {k: self._cpu(p) for k, p in self.pids.items()}
        # a process's children (a worker's delivery helpers, started when first needed): a
        # child born meanwhile counts from zero
        self.k0 = {c: self._cpu(c) for p in self.pids.values() for c in children_of(p)}
        self.r0 = {k: self._reaped(p) for k, p in self.pids.items()}
        self.m0 = machine_busy_seconds()

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            return cpu_seconds(pid)
        except OSError:
            return None

    @staticmethod
    def _reaped(pid: int) -> float | None:
        try:
            return reaped_children_cpu_seconds(pid)
        except OSError:
            return None

    def shares(self) -> dict[str, float | None]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        out = {}
        for k, pid in self.pids.items():
            now, before = self._cpu(pid), self.c0.get(k)
            out[k] = None if now is None or before is None else round((now - before) / wall, 3)
            kids = [(c, self._cpu(c)) for c in children_of(pid)] if k != "bench" else []
            # children that ended meanwhile count too (their CPU is the parent's cutime once reaped)
            reaped_now, reaped_before = (self._reaped(pid), self.r0.get(k)) if k != "bench" else (None, None)
            reaped = reaped_now - reaped_before if reaped_now is not None and reaped_before is not None else 0.0
            if kids or reaped > 0:
                out[f"{k} helpers"] = round((sum(n - (self.k0.get(c) or 0.0) for c, n in kids if n is not None)
                                             + reaped) / wall, 3)
        m1 = machine_busy_seconds()
        if m1 is not None and self.m0 is not None:
            out["machine"] = round((m1 - self.m0) / wall, 3)
            out["others"] = round(max(0.0, out["machine"] - sum(v for k, v in out.items()
                                                                 if v is not None and k != "machine")), 3)
        return out


# -- Postfix's smtp-sink and smtp-source -----------------------------------------------------

POSTFIX_DIRS = ("/usr/sbin", "/usr/bin", "/usr/lib/postfix/sbin")


def _find(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in POSTFIX_DIRS:
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


def postfix_tools(install: bool, log=print) -> tuple[str, str]:
    """Paths of ``smtp-sink`` and ``smtp-source``; installs Debian's ``postfix`` package if allowed.

    The postfix service itself is never started: while installing, a temporary
    ``/usr/sbin/policy-rc.d`` (if there is none) tells the package scripts not to start it.
    """
    sink, source = _find("smtp-sink"), _find("smtp-source")
    if sink and source:
        return sink, source
    how = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix"
    if not install:
        raise Unavailable(f"Postfix's smtp-sink/smtp-source are not installed (--no-install given); install: {how}")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"Postfix's smtp-sink/smtp-source are not installed and this user cannot apt-get; run: sudo {how}")
    log("installing Postfix's smtp-sink/smtp-source (apt-get install postfix; the service is not started) ...")
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        if own_policy:
            policy.write_text("#!/bin/sh\n# written by the outage bench while installing postfix\nexit 101\n")
            policy.chmod(0o755)
        for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postfix"]):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"installing postfix timed out: {exc}") from exc
    finally:
        if own_policy and policy.exists():
            policy.unlink()
    sink, source = _find("smtp-sink"), _find("smtp-source")
    if not (sink and source):
        raise Unavailable("postfix was installed but smtp-sink/smtp-source were not found")
    return sink, source


_MESG = re.compile(rb"mesg=(\d+)")


class SmtpSink:
    """``smtp-sink -c``: accepts and discards every message; its running ``mesg=N`` counter is
    read from its output by a thread, with (wall time, count) samples for arrival times."""

    def __init__(self, path: str, port: int | None = None, backlog: int = 1024) -> None:
        self.path, self.port, self.backlog = path, port or free_port(), backlog
        self.process: subprocess.Popen | None = None
        self.count = 0
        self.samples: list[tuple[float, int]] = []  # (time.time(), count) when it changed, >= 2 ms apart
        self._thread: threading.Thread | None = None

    def start(self) -> "SmtpSink":
        argv = [self.path]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += ["-c", "-m", "1000", f"127.0.0.1:{self.port}", str(self.backlog)]
        self.process = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._thread = threading.Thread(target=self._read, name="smtp-sink-counter", daemon=True)
        self._thread.start()
        try:
            wait_listening("127.0.0.1", self.port, timeout=10)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        fd = self.process.stdout.fileno()
        tail = b""
        last_sample = 0.0
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            data = tail + chunk
            at = data.rfind(b"mesg=")
            if at >= 0:
                m = _MESG.match(data, at)
                end = m.end() if m else -1
                if m and end < len(data):  # the number is complete
                    n = int(m.group(1))
                    if n != self.count:
                        self.count = n
                        now = time.time()
                        if now - last_sample >= 0.002:
                            self.samples.append((now, n))
                            last_sample = now
            tail = data[-64:]

    def first_arrival_after(self, base: int) -> float | None:
        for t, n in self.samples:
            if n > base:
                return t
        return None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=2)


def smtp_source(path: str, port: int, *, messages: int, sessions: int = 10, length: int = 2000,
                timeout: float = 300.0) -> float:
    """Seconds ``smtp-source`` takes to hand ``messages`` to the sink over ``sessions`` reused sessions."""
    argv = [path, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(length), f"127.0.0.1:{port}"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return elapsed


# -- the broker ------------------------------------------------------------------------------

BROKERS = ("embedded", "kafka")
BROKER_TITLES = {"embedded": "embedded broker (Tansu)",
                 "kafka": f"Apache Kafka {KAFKA_VERSION} (one KRaft node, from its jars)"}


class Broker(EmbeddedBroker):
    """The project's embedded Tansu broker, on a free port, registered for clean-up."""

    kind = "embedded"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def rss(self) -> int | None:
        try:
            return rss_bytes(self.pid)[0] if self.pid else None
        except OSError:
            return None


class KafkaBroker:
    """A one-node Apache Kafka (KRaft, broker and controller in one JVM) from its jars
    (``devtools/kafka.py``), on free ports, registered for clean-up like ``Broker``: ``pid`` is
    the JVM's (its CPU and RSS are the broker's). Its log stays in ``work_dir``; its data
    (the topics) is removed when it stops."""

    kind = "kafka"

    def __init__(self, work_dir: Path, heap: str = "1g") -> None:
        self.work_dir = work_dir
        self.cluster = KafkaCluster(nodes=1, work_dir=work_dir, heap=heap)
        self.started = False

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def log_path(self) -> Path | None:
        return self.cluster.nodes[0].log_path if self.cluster.nodes else None

    @property
    def pid(self) -> int | None:
        node = self.cluster.nodes[0] if self.cluster.nodes else None
        return node.process.pid if node is not None and node.process is not None else None

    def rss(self) -> int | None:
        try:
            return rss_bytes(self.pid)[0] if self.pid else None
        except OSError:
            return None

    def start(self) -> "KafkaBroker":
        self.started = True
        self.cluster.start()       # stops what it started if it fails
        return self

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        self.cluster.stop()        # exactly its own JVM (SIGTERM, SIGKILL after 30 s)
        for node in self.cluster.nodes:
            shutil.rmtree(node.directory / "data", ignore_errors=True)


# -- workers ---------------------------------------------------------------------------------

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value} (labels as written)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m:
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def metric_sum(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


class Worker(WorkerProcess):
    """One ``outage worker`` process of the bench (devtools/procs.py's, as the tests run theirs),
    detached, running in ``workdir`` with its log ``{name}.log`` and data ``{name}-data`` there:
    faust writes a "<app id>-data" directory where it runs, kept out of the repository. It runs
    the code of the checkout the bench runs from (``PYTHONPATH``): from ``workdir`` an editable
    install would import the checkout it was installed from, another worktree's."""

    probe_timeout = 3.0

    def __init__(self, env: dict, workdir: Path, name: str = "worker") -> None:
        code = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))}
        super().__init__({**env, **code, "OUTAGE_DATA_DIR": str(workdir / f"{name}-data")},
                         workdir / f"{name}.log", cwd=workdir, name=name)
        self.workdir = workdir

    def metrics(self) -> dict[str, float]:
        try:
            status, text = self.get("/metrics", timeout=10)
        except OSError:
            return {}
        return parse_metrics(text) if status == 200 and isinstance(text, str) else {}

    def rss(self) -> tuple[int, int]:
        return rss_bytes(self.process.pid)


# -- py-spy ----------------------------------------------------------------------------------

class PySpy:
    """``py-spy record --gil`` of one process, in py-spy's "raw" (collapsed stacks) format.

    ``--gil``: only the thread holding the GIL is sampled, so the profile is exactly where the
    worker's one usable core goes (threads blocked in C, e.g. an idle executor thread, which
    py-spy would otherwise often count as active, are left out), and samples / (rate × seconds)
    is the share of the time the GIL was held at all.
    """

    def __init__(self, path: str, pid: int, output: Path, rate: int = 100) -> None:
        self.path, self.pid, self.output, self.rate = path, pid, output, rate
        self.process: subprocess.Popen | None = None
        self.log_path = output.with_suffix(".log")
        self.started = self.stopped = None

    @property
    def seconds(self) -> float | None:
        return self.stopped - self.started if self.started and self.stopped else None

    def start(self) -> "PySpy":
        log = open(self.log_path, "ab")
        try:
            self.process = spawn([self.path, "record", "--pid", str(self.pid), "--gil", "--format", "raw", "--rate",
                                  str(self.rate), "--output", str(self.output)], stdout=log, stderr=subprocess.STDOUT)
            self.started = time.monotonic()
        finally:
            log.close()
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(f"py-spy exited at once: {self.log_path.read_text(errors='replace')[-500:]}")
        return self

    def stop(self) -> None:
        # SIGINT makes py-spy write its output file before it exits
        if self.process is not None and self.process.poll() is None and self.stopped is None:
            self.stopped = time.monotonic()
        stop_process(self.process, signal.SIGINT, timeout=30)
