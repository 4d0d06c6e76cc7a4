"""The ``outage`` command without a broker: ``main([...])`` with the producer and the incident
reader replaced. The import (quoted and multi-line CSV, the rejects file, progress only on a
terminal), ``--version`` and ``--help``, and every failure: one line on stderr and exit 2."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest

import outage.cli as cli_module
import streams.client as client
from domain.incident import decide
from outage.cli import main
from schemas import IncidentEvent
from streams.customer_import import Progress, customer_from_cells

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)


class FakeSink:
    """The customers topic: what was sent, and whether it was flushed (once)."""

    sent: list[tuple[bytes, bytes]]
    flushes: int

    def __init__(self, settings) -> None:
        type(self).sent, type(self).flushes = [], 0

    def send(self, key: bytes, value: bytes) -> None:
        type(self).sent.append((key, value))

    def finish(self) -> None:
        type(self).flushes += 1


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setenv("OUTAGE_BROKER", "127.0.0.1:9092")
    monkeypatch.setattr(client, "KafkaSink", FakeSink)
    return FakeSink


def sent_records(sink) -> dict[str, dict]:
    return {key.decode(): json.loads(value) for key, value in sink.sent}


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("outage: ") and "Traceback" not in err
    return err


# -- --version and --help ---------------------------------------------------------------------
def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "outage 0.1.0"


COMMANDS = [[], ["dev"], ["worker"], ["customers"], ["customers", "import"], ["incident"],
            *[["incident", a] for a in ("declare", "update", "resolve", "list", "show")],
            ["ticket"], ["ticket", "open"], ["ticket", "close"], ["schemas"], ["schemas", "export"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "outage")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: outage{''.join(' ' + c for c in command)}")


def test_a_usage_error_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["incident", "declare", "--severity", "catastrophic"])
    assert done.value.code == 2
    assert "--severity" in one_line(capsys.readouterr().err)


# -- customers import -------------------------------------------------------------------------
CSV = '''customer_id,name,locale,timezone,tier,contacts,services
c-1,"Example, KK",ja,Asia/Tokyo,enterprise,"""Sato, Taro"" <sato@example.jp>, ops@example.jp","api@ap-northeast-1;dashboard@ap-northeast-1"
c-2,Example Ltd,en,Europe/London,,"Jo Bloggs <jo@example.co.uk>,
it@example.co.uk","api@eu-west-1
dashboard@eu-west-1"
'''


def test_import_of_quoted_and_multi_line_csv(broker, tmp_path, capsys):
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    assert main(["customers", "import", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "imported 2, rejected 0" and err == ""
    records = sent_records(broker)
    assert records["c-1"]["name"] == "Example, KK" and records["c-1"]["tier"] == "enterprise"
    assert records["c-1"]["contacts"] == [{"email": "sato@example.jp", "name": "Sato, Taro"},
                                          {"email": "ops@example.jp", "name": None}]
    assert records["c-2"]["contacts"][1] == {"email": "it@example.co.uk", "name": None}
    assert records["c-2"]["services"] == [{"component": "api", "region": "eu-west-1"},
                                          {"component": "dashboard", "region": "eu-west-1"}]
    assert broker.flushes == 1 and not (tmp_path / "customers.csv.rejects.jsonl").exists()


def test_rejected_rows_go_to_the_rejects_file_with_their_reasons(broker, tmp_path, capsys):
    good = {"customer_id": "c-1", "name": "Example KK", "services": [{"component": "api", "region": "r"}]}
    lines = [json.dumps(good), "", '{"customer_id": "c-2", "name": ', json.dumps({**good, "customer_id": "c-3",
             "timezone": "Mars/Base"}), json.dumps({**good, "customer_id": "c-4", "notes": "VIP"})]
    path = tmp_path / "customers.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["customers", "import", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "imported 1, rejected 3"
    assert "3 rows rejected" in one_line(err) and "customers.jsonl.rejects.jsonl" in err
    rejects = [json.loads(line) for line in (tmp_path / "customers.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["error"].split(":")[0]) for r in rejects] == [(3, "invalid JSON at line 1 column 32"),
                                                                        (4, "timezone"), (5, "notes")]
    assert rejects[0]["row"] == lines[2] and "unknown field" in rejects[2]["error"]
    assert list(sent_records(broker)) == ["c-1"]


def test_the_rejects_option_and_a_csv_row_with_too_many_cells(broker, tmp_path, capsys):
    path, rejects = tmp_path / "in.csv", tmp_path / "out" / "bad.jsonl"
    rejects.parent.mkdir()
    path.write_text("customer_id,name,services\nc-1,A,api@r\nc-2,B,api@r,extra\nc-3,C,api\n", encoding="utf-8")
    assert main(["customers", "import", str(path), "--rejects", str(rejects)]) == 2
    assert capsys.readouterr().out.splitlines()[-1] == "imported 1, rejected 2"
    found = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in found] == [3, 4]
    assert "cells" in found[0]["error"] and found[1]["error"].startswith("services:")


def test_progress_only_on_a_terminal(broker, tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"customer_id": "c-1", "name": "A"}) + "\n", encoding="utf-8")
    assert main(["customers", "import", str(path)]) == 0
    assert capsys.readouterr().err == ""          # stderr is not a terminal: no progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    ticks = iter(range(100))
    shown = Progress(Tty(), clock=lambda: float(next(ticks)))
    shown.update(5, 1)
    shown.done()
    assert shown.stream.getvalue().startswith("\r5 imported, 1 rejected (") and shown.stream.getvalue().endswith("\n")
    hidden = Progress(io.StringIO())
    hidden.update(5, 1, force=True)
    hidden.done()
    assert not hidden.on and hidden.stream.getvalue() == ""


def test_contacts_are_read_as_an_address_list():
    data = customer_from_cells({"customer_id": "c", "name": "n",
                                "contacts": '"Sato, Taro" <sato@example.jp>; Suzuki <s@example.jp>, ops@example.jp'})
    assert data["contacts"] == [{"email": "sato@example.jp", "name": "Sato, Taro"},
                                {"email": "s@example.jp", "name": "Suzuki"}, {"email": "ops@example.jp"}]
    with pytest.raises(ValueError, match="contacts"):
        customer_from_cells({"customer_id": "c", "name": "n", "contacts": "Sato"})


@pytest.mark.parametrize("content,needle", [
    ("customer_id,name,phone\n", "unknown column 'phone'"),
    ("name,locale\n", "no 'customer_id' column"),
    ('customer_id,name\nc-1,"unterminated\n', "malformed CSV"),
    (b"customer_id,name\nc-1,\xff\n", "not UTF-8"),
])
def test_a_csv_that_cannot_be_read_is_one_line_and_exit_2(broker, tmp_path, capsys, content, needle):
    path = tmp_path / "c.csv"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    assert main(["customers", "import", str(path)]) == 2
    assert needle in one_line(capsys.readouterr().err)


def test_a_malformed_csv_record_halfway_stops_the_import_after_flushing_what_came_before(broker, tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text('customer_id,name\nc-1,A\nc-2,B\nc-3,"unterminated\n', encoding="utf-8")
    assert main(["customers", "import", str(path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert ":4: malformed CSV" in err and "the 2 customers before it were imported" in err
    assert list(sent_records(broker)) == ["c-1", "c-2"] and broker.flushes == 1


def test_a_failed_delivery_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    class Failing(FakeSink):
        def finish(self) -> None:
            raise client.ClientError("3 customers were not delivered to the broker: KafkaTimeoutError")

    monkeypatch.setenv("OUTAGE_BROKER", "127.0.0.1:9092")
    monkeypatch.setattr(client, "KafkaSink", Failing)
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"customer_id": "c-1", "name": "A"}) + "\n", encoding="utf-8")
    assert main(["customers", "import", str(path)]) == 2
    assert "not delivered" in one_line(capsys.readouterr().err)


# -- failures ---------------------------------------------------------------------------------
def incidents(*, resolved: bool = False) -> dict:
    event = IncidentEvent.model_validate({"event_id": "e-1", "incident_id": "inc-1", "type": "declared",
                                          "at": T0.isoformat(), "severity": "major", "title": "API errors",
                                          "components": ["api"]})
    state = decide(None, event, T0).state
    if resolved:
        end = IncidentEvent.model_validate({"event_id": "e-2", "incident_id": "inc-1", "type": "resolved",
                                            "at": T0.isoformat()})
        state = decide(state, end, T0).state
    return {"inc-1": state}


@pytest.fixture
def topic(monkeypatch):
    """The incident-events topic as the command reads it, and what it produces."""
    monkeypatch.setenv("OUTAGE_BROKER", "127.0.0.1:9092")
    produced: list[dict] = []
    state = {"resolved": False}
    monkeypatch.setattr(cli_module, "read_incidents", lambda settings: incidents(resolved=state["resolved"]))
    monkeypatch.setattr(cli_module, "produce",
                        lambda settings, topic, records: produced.extend(json.loads(v) for _, v in records))
    return type("Topic", (), {"produced": produced, "state": state})


@pytest.mark.parametrize("argv,needle", [
    (["incident", "update", "inc-nope", "--message", "x"], "unknown incident inc-nope"),
    (["incident", "resolve", "inc-nope"], "unknown incident inc-nope"),
    (["incident", "show", "inc-nope"], "unknown incident inc-nope"),
    (["incident", "declare", "--id", "inc-1", "--title", "T", "--severity", "minor", "--components", "api"],
     "incident inc-1 already exists"),
    (["incident", "update", "inc-1"], "changes nothing"),
])
def test_what_the_api_refuses_the_command_refuses(topic, capsys, argv, needle):
    assert main(argv) == 2
    assert needle in one_line(capsys.readouterr().err)
    assert topic.produced == []


@pytest.mark.parametrize("action", [["update", "inc-1", "--status", "identified"], ["resolve", "inc-1"]])
def test_a_resolved_incident_takes_no_more_events(topic, capsys, action):
    assert main(["incident", *action]) == 0
    assert topic.produced[-1]["incident_id"] == "inc-1"
    capsys.readouterr()
    topic.state["resolved"] = True
    assert main(["incident", *action]) == 2
    assert "incident inc-1 is resolved" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("content,needle", [
    (None, "No such file"), ("{not json", "not JSON"), ("[1, 2]", "a JSON object"),
    ('{"mesage": "typo"}', "mesage: unknown field"), ('{"incident_id": "inc-2", "message": "x"}', "inc-2"),
])
def test_a_missing_or_malformed_file_is_one_line_and_exit_2(topic, tmp_path, capsys, content, needle):
    path = tmp_path / "event.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["incident", "update", "inc-1", "--file", str(path)]) == 2
    assert needle in one_line(capsys.readouterr().err)
    assert topic.produced == []


def test_a_broker_that_does_not_answer_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    import streams.kafka.broker as broker_module

    def unreachable(settings, wait_seconds=None):
        raise RuntimeError(f"broker {settings.broker} unreachable: KafkaTimeoutError: Unable to bootstrap")

    monkeypatch.setenv("OUTAGE_BROKER", "127.0.0.1:1")
    monkeypatch.setattr(broker_module, "admin", unreachable)
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"customer_id": "c-1", "name": "A"}) + "\n", encoding="utf-8")
    for argv in (["customers", "import", str(path)], ["incident", "list"],
                 ["incident", "resolve", "inc-1"], ["ticket", "close", "T-1", "--customer", "c-1"]):
        assert main(argv) == 2, argv
        assert "127.0.0.1:1 unreachable" in one_line(capsys.readouterr().err)


def test_an_unexpected_error_is_still_one_line(monkeypatch, topic, capsys):
    def broken(settings):
        raise KeyError("boom")

    monkeypatch.setattr(cli_module, "read_incidents", broken)
    assert main(["incident", "list"]) == 2
    assert "KeyError" in one_line(capsys.readouterr().err)


# -- streaming: memory does not grow with the file --------------------------------------------
class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def send(self, key: bytes, value: bytes) -> None:
        self.count += 1

    def finish(self) -> None:
        pass


def _peak_import_bytes(path, rows: int) -> int:
    import tracemalloc

    from bench.data import CustomerSet
    from bench.import_row import write_file
    from streams.customer_import import import_file

    write_file(path, CustomerSet(rows, 0, seed=7))
    # once first: the bounded caches of the validation (e-mail domains, time zones) fill up
    import_file(path, CountingSink(), progress=Progress(io.StringIO()))
    sink = CountingSink()
    tracemalloc.start()
    try:
        result = import_file(path, sink, progress=Progress(io.StringIO()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.imported, result.rejected, sink.count) == (rows, 0, rows)
    return peak


def test_the_import_streams_its_memory_does_not_grow_with_the_file(tmp_path):
    # pydantic-core's JSON parser keeps a bounded cache of strings (some 16,000): beyond that,
    # a file's rows only replace its entries
    small = _peak_import_bytes(tmp_path / "small.jsonl", 16_000)
    large = _peak_import_bytes(tmp_path / "large.jsonl", 48_000)
    assert large < small * 1.2 + 100_000 and large < 4_000_000, (small, large)   # three times the rows, same peak


def test_the_bench_row_runs_the_command_in_a_child_and_reads_its_peak_rss(tmp_path, monkeypatch):
    import os

    from bench.import_row import run_import, scenario_import

    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"customer_id": "c-1", "name": "A"}) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGE_")}   # no broker: exit 2
    got = run_import(path, env, tmp_path, timeout=120)
    assert got["code"] == 2 and got["seconds"] > 0 and 10e6 < got["maxrss"] < 1e9

    class Ctx:
        workdir, max_wait, seed = tmp_path, 60.0, 1

        def n(self, full, minimum=1):
            return minimum

        def start_broker(self, name):
            raise RuntimeError("no broker in a unit test")

        def log(self, text):
            pass

    rows = scenario_import(Ctx())
    assert [(r.key, r.status) for r in rows] == [("9a", "error"), ("9b", "error")]


def test_the_kafka_sink_batches_flushes_once_and_counts_failed_deliveries(monkeypatch):
    import kafka

    from core.settings import Settings

    class Future:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def add_errback(self, callback):
            if self.fail:
                callback(RuntimeError("KafkaTimeoutError: expired"))
            return self

    class Producer:
        def __init__(self, **kwargs) -> None:
            self.kwargs, self.sent, self.flushes, self.closed = kwargs, [], 0, False
            made.append(self)

        def send(self, topic, key, value):
            self.sent.append((topic, key, value))
            return Future(fail=key == b"bad")

        def flush(self, timeout=None):
            self.flushes += 1

        def close(self, timeout=None):
            self.closed = True

    made: list[Producer] = []
    monkeypatch.setattr(kafka, "KafkaProducer", Producer)
    monkeypatch.setattr(client, "_ensure_topics", lambda settings: None)
    settings = Settings(broker="127.0.0.1:9092", topic_prefix="p.")
    sink = client.KafkaSink(settings)
    sink.send(b"c-1", b"{}")
    sink.send(b"c-2", b"{}")
    sink.finish()
    (p,) = made
    assert p.kwargs["linger_ms"] == 50 and p.kwargs["batch_size"] == 512 * 1024 and p.kwargs["acks"] == "all"
    assert [s[:2] for s in p.sent] == [("p.customers", b"c-1"), ("p.customers", b"c-2")]
    assert (p.flushes, p.closed) == (1, True)
    failing = client.KafkaSink(settings)
    failing.send(b"bad", b"{}")
    with pytest.raises(client.ClientError, match="1 customers were not delivered.*expired"):
        failing.finish()


def test_a_declare_without_an_id_reads_nothing_first(topic, monkeypatch, capsys):
    def unread(settings):
        raise AssertionError("the topic was read")

    monkeypatch.setattr(cli_module, "read_incidents", unread)
    assert main(["incident", "declare", "--title", "T", "--severity", "minor", "--components", "api"]) == 0
    assert topic.produced[-1]["incident_id"].startswith("inc-")
