"""The command and a worker for real: customers imported from a CSV file (one row rejected, with
its reason), an incident declared with the command and notified, and the worker's whole output
with ``OUTAGE_LOG_FORMAT=json`` (faust's, aiokafka's and a delivery helper's lines included):
every line one JSON object, the incident's lines naming it and its round, no address anywhere."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.logs import ADDRESS
from outage.cli import main as cli

pytestmark = pytest.mark.integration

CSV = '''customer_id,name,locale,timezone,tier,contacts,services
c-json-1,"Example, KK",ja,Asia/Tokyo,enterprise,"""Sato, Taro"" <sato@json.example.jp>,
ops@json.example.jp",core@eu-1
c-json-2,Nowhere Ltd,en,Mars/Base,,ops@nowhere.example.com,core@eu-1
'''


@pytest.fixture
def env(base_env, monkeypatch):
    for name in ("OUTAGE_BROKER", "OUTAGE_TOPIC_PREFIX"):
        monkeypatch.setenv(name, base_env[name])


async def test_import_declare_and_a_json_worker(env, workers, smtp, tmp_path, capsys):
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    assert await asyncio.to_thread(cli, ["customers", "import", str(path)]) == 2   # one row rejected
    out, err = capsys.readouterr()
    assert out.splitlines()[-1:] == ["imported 1, rejected 1"] and err.count("\n") == 1, (out, err)
    (reject,) = [json.loads(line) for line in (tmp_path / "customers.csv.rejects.jsonl").read_text().splitlines()]
    assert reject["line"] == 4 and reject["error"].startswith("timezone: unknown timezone")

    worker = await asyncio.to_thread(workers, {"OUTAGE_LOG_FORMAT": "json", "OUTAGE_DELIVERY_PROCESSES": "1"})
    assert await asyncio.to_thread(cli, ["incident", "declare", "--id", "inc-json", "--title", "Core errors",
                                         "--severity", "minor", "--components", "core"]) == 0
    mail = await smtp.wait_for(2, incident="inc-json", timeout=60)
    assert sorted(m["recipients"][0] for m in mail) == ["ops@json.example.jp", "sato@json.example.jp"]
    capsys.readouterr()
    # what the API refuses, the command refuses: an update of an unknown incident, a misspelt field
    assert await asyncio.to_thread(cli, ["incident", "update", "inc-nope", "--message", "x"]) == 2
    assert "unknown incident inc-nope" in capsys.readouterr().err
    (tmp_path / "update.json").write_text('{"mesage": "typo"}')
    assert await asyncio.to_thread(cli, ["incident", "update", "inc-json", "--file", str(tmp_path / "update.json")]) == 2
    assert "mesage: unknown field" in capsys.readouterr().err

    await asyncio.to_thread(worker.stop)   # a clean stop: faust's shutdown lines too
    text = worker.log_path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]   # every line one JSON object
    assert not ADDRESS.search(text) and "json.example.jp" not in text
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    loggers = {line["logger"].split(".")[0] for line in lines}
    assert {"faust", "streams"} <= loggers, loggers
    assert any(line.get("incident") == "inc-json" and line.get("round") == 1 for line in lines)
    # the round's own lines name it too, not only the incident agent's: its plan on each partition
    # (streams/audience.py), written from the agent that visits the customers
    planned = [line for line in lines if "customers to visit" in line["message"]]
    assert planned and all(line.get("incident") == "inc-json" and line.get("round") == 1 for line in planned)
