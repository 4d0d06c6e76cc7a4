"""``outage dev`` as a new user runs it: twice in a row with the same data dir (each run starts
a new embedded broker, so the last run's local table state must not be taken for this one's),
and not twice at once on one data dir."""

from __future__ import annotations

import json
import os
import re
import signal
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.settings import Settings
from devtools.dev import sample_incident_path
from devtools.embedded import free_port
from devtools.http import call
from tests.integration.faults_kit import settled

pytestmark = pytest.mark.integration

TOKEN = "dev-test-token"


def _env(data: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGE_")}
    env.update({"OUTAGE_DATA_DIR": str(data), "OUTAGE_WEB_PORT": str(free_port()),
                "OUTAGE_SMTP_PORT": str(free_port()), "OUTAGE_API_TOKEN": TOKEN,
                "OUTAGE_BROKER_SESSION_TIMEOUT_SECONDS": "6", "PYTHONUNBUFFERED": "1"})
    return env


class Dev:
    def __init__(self, data: Path) -> None:
        self.log = data.parent / f"dev-{time.monotonic_ns()}.log"
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "outage.cli", "dev"], env=_env(data),
                                     stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_running(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if "outage dev is running" in text and "Declare a demo incident" in text:
                return {"status": re.search(r"status page\s+(\S+)", text).group(1),
                        "outbox": re.search(r"outbox\s+(\S+)", text).group(1)}
            assert self.proc.poll() is None, f"outage dev exited ({self.proc.returncode}):\n{text[-3000:]}"
            time.sleep(0.25)
        raise AssertionError(f"outage dev not running after {timeout:.0f}s:\n{self.text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        return self.proc.returncode


def _declare_and_get_mail(urls: dict, dev: Dev, timeout: float = 60) -> str:
    api = urls["status"].rsplit("/status", 1)[0] + "/api/incidents"
    status, body = call("POST", api, body=json.loads(sample_incident_path().read_text()), token=TOKEN)
    assert status == 201, (status, body)
    incident = body["incident_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert dev.proc.poll() is None, f"outage dev exited:\n{dev.text()[-3000:]}"
        status, found = call("GET", urls["outbox"].rstrip("/") + f"/api/messages?incident={incident}", timeout=5)
        if status == 200 and found:
            return incident
        time.sleep(0.5)
    raise AssertionError(f"no notice of {incident} in the outbox after {timeout:.0f}s:\n{dev.text()[-3000:]}")


def test_outage_dev_twice_in_a_row_and_not_twice_at_once(tmp_path):
    data = tmp_path / "var"
    first = Dev(data)
    try:
        urls = first.wait_running()
        _declare_and_get_mail(urls, first)
        # the same data dir, while the first runs: refused in one line, nothing started
        second = Dev(data)
        try:
            assert second.proc.wait(60) == 1
        finally:
            second.stop()   # also when it did not refuse: stop what the test started
        assert "another `outage dev` is running with the data dir" in second.text()
        assert "outage dev is running" not in second.text()
        assert call("GET", urls["status"], timeout=5)[0] == 200   # the first is untouched
    finally:
        assert first.stop() == 0
    # again, as a user does the next day: a new embedded broker, the data dir of the last run
    again = Dev(data)
    try:
        urls = again.wait_running()
        _declare_and_get_mail(urls, again)
        # the worker has done everything the incident asked (sent, recorded, committed) and is still
        # there: alive and ready, and outage dev reported no exit
        base = urls["status"].rsplit("/status", 1)[0]
        bootstrap = re.search(r"OUTAGE_BROKER=(\S+)", again.text()).group(1)
        prefix = Settings.model_fields["topic_prefix"].default   # _env leaves OUTAGE_TOPIC_PREFIX out
        asyncio.run(settled(bootstrap, prefix, [SimpleNamespace(url=base)]))
        assert call("GET", base + "/readyz", timeout=5)[0] == 200, again.text()[-3000:]
        assert again.proc.poll() is None and "exited with status" not in again.text(), again.text()[-3000:]
    finally:
        assert again.stop() == 0
