"""The ``outage`` command against a real broker: imports, incidents, clear errors."""

from __future__ import annotations

import json

import pytest

from outage.cli import main as cli

pytestmark = pytest.mark.integration


@pytest.fixture
def env(broker, prefix, monkeypatch):
    monkeypatch.setenv("OUTAGE_BROKER", broker.bootstrap)
    monkeypatch.setenv("OUTAGE_TOPIC_PREFIX", prefix)


def test_customers_import_jsonl_and_csv(env, tmp_path, read_topic, capsys):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps({"customer_id": "c-1", "name": "Example KK", "locale": "ja",
                                 "timezone": "Asia/Tokyo", "contacts": [{"email": "ops@example.jp"}],
                                 "services": [{"component": "api", "region": "ap-northeast-1"}]}) + "\n")
    csv = tmp_path / "c.csv"
    csv.write_text("customer_id,name,locale,timezone,tier,contacts,services\n"
                   "c-2,Example Ltd,en,Europe/London,business,Jo Bloggs <jo@example.co.uk>;it@example.co.uk,"
                   "api@eu-west-1;dashboard@eu-west-1\n")
    assert cli(["customers", "import", str(jsonl)]) == 0
    assert cli(["customers", "import", str(csv)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "imported 1, rejected 0"
    records = {r["customer_id"]: r for r in read_topic("customers")}
    assert records["c-2"]["contacts"] == [{"email": "jo@example.co.uk", "name": "Jo Bloggs"},
                                          {"email": "it@example.co.uk", "name": None}]
    assert records["c-2"]["services"][1] == {"component": "dashboard", "region": "eu-west-1"}
    assert records["c-1"]["locale"] == "ja"


def test_clear_errors_for_bad_input(env, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"customer_id": "c-1", "name": "X", "timezone": "Mars/Base"}\n')
    assert cli(["customers", "import", str(bad)]) == 2   # the row is rejected, with its reason
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "imported 0, rejected 1" and "bad.jsonl.rejects.jsonl" in err
    assert "timezone" in (tmp_path / "bad.jsonl.rejects.jsonl").read_text()
    assert cli(["customers", "import", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli(["incident", "declare", "--title", "X", "--severity", "major"]) == 2
    assert "components" in capsys.readouterr().err
    assert cli(["incident", "declare", "--title", "X", "--severity", "major", "--components", "api",
                "--eta", "2026-11-25T10:00:00"]) == 2
    assert "eta" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["incident", "declare", "--severity", "catastrophic"])


def test_declare_update_resolve_list_show(env, capsys):
    assert cli(["incident", "declare", "--id", "inc-cli", "--title", "API errors", "--title-ja", "APIのエラー",
                "--severity", "minor", "--components", "api", "--regions", "ap-northeast-1"]) == 0
    declared = json.loads(capsys.readouterr().out)
    assert declared["title"] == {"en": "API errors", "ja": "APIのエラー"} and declared["regions"] == ["ap-northeast-1"]
    assert cli(["incident", "update", "inc-cli", "--status", "identified", "--eta", "none"]) == 0
    updated = json.loads(capsys.readouterr().out)
    assert updated["eta"] is None and "title" not in updated  # only what changes
    assert cli(["incident", "resolve", "inc-cli", "--message", "Fixed."]) == 0
    capsys.readouterr()
    assert cli(["incident", "list"]) == 0
    assert "inc-cli\tresolved\tminor\tAPI errors" in capsys.readouterr().out
    assert cli(["incident", "show", "inc-cli"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["type"] for h in shown["history"]] == ["declared", "updated", "resolved"]
    assert cli(["incident", "show", "inc-nope"]) == 2
    capsys.readouterr()
    # what the API refuses (404, 409), the command refuses (exit 2), reading the topic first
    assert cli(["incident", "update", "inc-nope", "--message", "x"]) == 2
    assert "unknown incident inc-nope" in capsys.readouterr().err
    assert cli(["incident", "resolve", "inc-cli"]) == 2
    assert "incident inc-cli is resolved" in capsys.readouterr().err
    assert cli(["incident", "declare", "--id", "inc-cli", "--title", "Again", "--severity", "minor",
                "--components", "api"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_schemas_export(tmp_path, capsys):
    assert cli(["schemas", "export", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.schema.json"))
    assert "customer.schema.json" in files and "incident-event.schema.json" in files
    assert "properties" in json.loads((tmp_path / "customer.schema.json").read_text())
