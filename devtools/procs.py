"""Child processes of the bench and the tests: ``spawn`` and ``stop_process`` for any of them,
and ``WorkerProcess``, one ``outage worker`` process as both drive it — on a free loopback port,
its output in a log file, ready when its ``/readyz`` answers 200, stopped with SIGTERM (SIGKILL
after a timeout) or killed outright. Only the process started here is ever signalled, by its pid."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

from devtools.embedded import free_port
from devtools.http import call


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def spawn(argv: list[str], *, detach: bool = True, **kw) -> subprocess.Popen:
    """Start ``argv`` with no standard input. ``detach``: in a session of its own (a Ctrl-C in the
    terminal reaches only the parent, which stops it in order), and sent SIGTERM when the thread
    that started it ends (``PR_SET_PDEATHSIG``), so that it dies with a parent killed outright."""
    if detach:
        kw.update(start_new_session=True, preexec_fn=die_with_parent)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal exactly ``proc``; escalate to SIGKILL after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


class WorkerExited(RuntimeError):
    """The worker exited while it was awaited."""


class WorkerNotReady(TimeoutError):
    """The worker did not become ready in time."""


class WorkerProcess:
    """One ``outage worker`` process (a real one: it can be stopped, killed and started again).

    ``env``: its whole environment, to which its web settings (the port, 127.0.0.1 and the public
    URL) are added; ``log_path``: where its output goes (appended); ``cwd``: where it runs;
    ``detach``: as ``spawn`` says. The class attributes are what a user may tune in a subclass.
    """

    port_retries = 0       # times ``wait_ready`` starts it again on another port when its port was taken
    probe_timeout = 10.0   # seconds one /readyz request may take
    stop_timeout = 45.0    # seconds ``stop`` waits after SIGTERM before SIGKILL
    log_lines = 30         # lines of ``log_tail`` (in the errors of ``wait_ready``)

    def __init__(self, env: Mapping[str, str], log_path: Path, *, cwd: Path | None = None, detach: bool = True,
                 name: str = "worker") -> None:
        self.name, self.log_path, self.cwd, self.detach = name, log_path, cwd, detach
        self.process: subprocess.Popen | None = None
        self._env = dict(env)
        self._new_port()

    def _new_port(self) -> None:
        self.port = free_port()
        self.env = {**self._env, "OUTAGE_WEB_PORT": str(self.port), "OUTAGE_WEB_HOST": "127.0.0.1",
                    "OUTAGE_PUBLIC_URL": self.url}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = spawn([sys.executable, "-m", "outage.cli", "worker"], detach=self.detach, env=self.env,
                                 cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, dict | str]:
        return call("GET", self.url + path, timeout=timeout)

    def ready(self) -> bool:
        try:
            return self.get("/readyz", timeout=self.probe_timeout)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until /readyz answers 200; raises with the log's tail if the worker exits
        (``WorkerExited``) or after ``timeout`` (``WorkerNotReady``)."""
        started, retries = time.monotonic(), self.port_retries
        while time.monotonic() - started < timeout:
            if not self.alive():
                # the free port picked was taken before the worker bound it (another process's
                # connection got it meanwhile; seen in a full run of the tests): the same worker on
                # another port
                if retries and f"('127.0.0.1', {self.port}): address already in use" in self.log_tail():
                    retries -= 1
                    self._new_port()
                    self.start()
                    continue
                raise WorkerExited(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.25)
        raise WorkerNotReady(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int | None = None) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-(lines or self.log_lines):])
        except OSError:
            return ""

    def stop(self, timeout: float | None = None) -> None:
        """A clean stop (SIGTERM: the worker first drains its send queue, bounded by its SMTP
        timeout); SIGKILL if that takes longer than ``timeout`` (``stop_timeout`` unless given)."""
        stop_process(self.process, signal.SIGTERM, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL, as ``kill -9``; returns once it has exited."""
        if self.alive():
            self.process.kill()
            self.process.wait()
