"""``OUTAGE_LOG_FORMAT=json``: every line one JSON object (time, level, logger, message, and
incident/round where they apply), faust's and aiokafka's lines and stray prints included once
mode (faust's worker) has set logging up with the worker's configuration; never an address."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from mode.utils import logging as mode_logging

from core.logs import log_context, logging_config, redact
from core.settings import Settings
from streams.worker import worker_logging

ADDRESS = "ops@example.jp"


@pytest.fixture
def stderr(capsys, monkeypatch):
    """The process's stderr, where the worker's handler writes; logging and the streams (which
    mode's redirect sets to the originals when it ends) restored afterwards."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    class Read:
        def getvalue(self) -> str:
            return capsys.readouterr().err

    yield Read()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(stream) -> list[dict]:
    out = []
    for line in stream.getvalue().splitlines():
        assert "@" not in line, line
        out.append(json.loads(line))
    return out


def test_every_line_is_one_json_object_without_addresses(stderr):
    worker_logging(Settings(log_format="json"))
    log = logging.getLogger("streams.incidents")
    log.info("round %s #%d decided", "inc-7", 3, extra={"incident": "inc-7", "round": 3})
    log.warning("SMTP said: 550 <%s> unknown user", ADDRESS)
    with log_context(incident="inc-8"):
        logging.getLogger("streams.sender").info("sending")
    try:
        raise ValueError(f"refused {ADDRESS}\nsecond line")
    except ValueError:
        log.exception("failed")
    got = lines(stderr)
    assert len(got) == 4
    assert {k: got[0][k] for k in ("level", "logger", "message", "incident", "round")} == {
        "level": "info", "logger": "streams.incidents", "message": "round inc-7 #3 decided", "incident": "inc-7",
        "round": 3}
    assert got[0]["time"].endswith("Z")
    assert got[1]["message"] == "SMTP said: 550 <<address>> unknown user" and "incident" not in got[1]
    assert got[2]["incident"] == "inc-8" and "round" not in got[2]
    assert "ValueError: refused <address>" in got[3]["exception"]


def test_faust_and_aiokafka_lines_and_prints_once_mode_takes_over(stderr):
    config = worker_logging(Settings(log_format="json"))
    mode_logging.setup_logging(loglevel="info", logging_config=config)   # what faust's worker does at start
    logging.getLogger("faust.worker").info("Starting...")
    logging.getLogger("aiokafka.consumer.group_coordinator").warning("Heartbeat failed for group %s", "g")
    logging.getLogger("mode.timers").info("Timer %s woke up (a@b.example)", "x")
    with mode_logging.redirect_stdouts(severity="warning"):
        print(f"a stray print to {ADDRESS}")
    got = lines(stderr)
    assert [g["logger"] for g in got] == ["faust.worker", "aiokafka.consumer.group_coordinator", "mode.timers",
                                         "mode.redirect"]
    assert got[-1]["message"] == "a stray print to <address>"


def test_the_text_format_is_the_default_and_redacts_too(stderr):
    assert Settings().log_format == "text"
    worker_logging(Settings())
    logging.getLogger("streams.sender").warning("refused %s", ADDRESS)
    text = stderr.getvalue()
    assert "WARNING streams.sender: refused <address>" in text and "@" not in text


@pytest.mark.parametrize("value,expected", [("json", "json"), (" JSON ", "json"), ("text", "text")])
def test_the_setting_is_validated(value, expected):
    assert Settings(log_format=value).log_format == expected


def test_a_bad_log_format_is_one_line_and_exit_2(monkeypatch, capsys):
    from outage.cli import main

    monkeypatch.setenv("OUTAGE_LOG_FORMAT", "xml")
    assert main(["incident", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("outage: invalid settings: log_format:")


def test_the_delivery_helpers_log_in_the_workers_format():
    from notifiers.delivery import DeliveryConfig

    assert DeliveryConfig(public_url="u", mail_from="m", signing_key=b"k", smtp={}).log_format == "text"
    with pytest.raises(ValueError):
        logging_config("xml")


@pytest.mark.parametrize("text", ["ops@example.jp", "<Ops.Team+x@mail.example.co.uk>", "to=a.b@c.example,"])
def test_redact(text):
    assert "@" not in redact(text)


def test_python_warnings_become_json_lines():
    """In a process of its own: pytest records warnings itself."""
    import subprocess
    from pathlib import Path

    code = ("import warnings; from core.settings import Settings; from streams.worker import worker_logging; "
            "worker_logging(Settings(log_format='json')); "
            f"warnings.warn('deprecated, ask {ADDRESS}', DeprecationWarning)")
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and done.stdout == "", done.stderr
    (line,) = [json.loads(text) for text in done.stderr.splitlines()]
    assert line["logger"] == "py.warnings" and "DeprecationWarning: deprecated, ask <address>" in line["message"]
