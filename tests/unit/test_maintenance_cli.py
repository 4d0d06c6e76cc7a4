"""``outage maintenance``: every action has --help, a bad event is exit 2 with one line naming the
field (nothing produced: no broker is reached), and a valid one is produced as validated."""

from __future__ import annotations

import pytest

from outage import cli, maintenance_cli


@pytest.mark.parametrize("action", ["schedule", "update", "cancel", "complete", "list"])
def test_every_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["maintenance", action, "--help"])
    assert done.value.code == 0 and "usage: outage maintenance" in capsys.readouterr().out


@pytest.mark.parametrize("argv, field", [
    (["--title", "DB", "--components", "api", "--starts-at", "2099-01-01T02:00:00+00:00",
      "--ends-at", "2099-01-01T01:00:00+00:00"], "ends_at"),
    (["--title", "DB", "--components", "api", "--starts-at", "2099-01-01T02:00:00",
      "--ends-at", "2099-01-01T03:00:00+00:00"], "starts_at"),
    (["--components", "api", "--starts-at", "2099-01-01T02:00:00+00:00", "--ends-at", "2099-01-01T03:00:00+00:00"],
     "title"),
])
def test_a_bad_schedule_is_exit_2_naming_the_field(argv, field, capsys, monkeypatch):
    produced = []
    monkeypatch.setattr(maintenance_cli, "produce", lambda *a: produced.append(a))
    assert cli.main(["maintenance", "schedule", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("outage: invalid scheduled event") and field in err[0]
    assert produced == []


def test_a_valid_schedule_is_produced_keyed_by_its_id(capsys, monkeypatch):
    produced = []
    monkeypatch.setattr(maintenance_cli, "produce", lambda settings, topic, records: produced.append((topic, records)))
    assert cli.main(["maintenance", "schedule", "--id", "mnt-9", "--title", "DB", "--title-ja", "DB更新",
                     "--components", "api", "--starts-at", "2099-01-01T02:00:00+09:00",
                     "--ends-at", "2099-01-01T03:00:00+09:00", "--reminder", "600"]) == 0
    ((topic, [(key, value)]),) = produced
    assert topic == "maintenance-events" and key == "mnt-9" and b'"reminder_seconds":600' in value
    assert cli.main(["maintenance", "cancel", "mnt-9", "--message", "Not needed after all"]) == 0
    assert produced[1][1][0][0] == "mnt-9" and b'"type":"cancelled"' in produced[1][1][0][1]


def test_the_commands_fold_their_topic_through_the_domain_and_pass_over_what_is_not_an_event(monkeypatch):
    """``outage maintenance list`` and ``outage incident list`` read the same way (streams/client.py
    ``fold_topic``): each record of the topic in order, a bad one or one the domain refuses passed over."""
    import json

    from core.settings import Settings
    from streams import client

    def event(**fields) -> bytes:
        return json.dumps({"at": "2099-01-01T00:00:00+00:00", **fields}).encode()

    window = {"title": "DB", "components": ["api"], "starts_at": "2099-01-01T02:00:00+00:00",
              "ends_at": "2099-01-01T03:00:00+00:00"}
    topics = {
        "maintenance-events": [
            event(event_id="e-1", maintenance_id="mnt-1", type="scheduled", **window), b"not json",
            event(event_id="e-2", maintenance_id="mnt-2", type="updated", title="never scheduled"),
            event(event_id="e-3", maintenance_id="mnt-1", type="updated", title="DB upgrade")],
        "incident-events": [
            event(event_id="e-1", incident_id="inc-1", type="declared", severity="major", title="API errors",
                  components=["api"]), b"{}",
            event(event_id="e-2", incident_id="inc-2", type="resolved"),
            event(event_id="e-3", incident_id="inc-1", type="updated", message="Fixing")]}
    monkeypatch.setattr(client, "read_topic", lambda settings, topic: iter(topics[topic]))
    settings = Settings(broker="127.0.0.1:9")
    held = maintenance_cli.read_maintenance(settings)
    assert list(held) == ["mnt-1"] and held["mnt-1"].title == "DB upgrade"
    incidents = cli.read_incidents(settings)
    assert list(incidents) == ["inc-1"] and incidents["inc-1"].message == "Fixing" and incidents["inc-1"].seq == 2


@pytest.mark.parametrize("content, named", [
    ({"maintenance_id": "mnt-8", "message": "x"}, "maintenance_id 'mnt-8'"),
    ({"type": "completed", "message": "x"}, "type 'completed'"),
])
def test_a_file_that_names_another_maintenance_or_type_is_exit_2(content, named, tmp_path, capsys, monkeypatch):
    """As for incidents (outage/event_input.py ``event_data``): ``outage maintenance cancel mnt-9 --file F``
    with a file of another maintenance, or of another type, is a mistake; it used to take the file's id."""
    import json

    produced = []
    monkeypatch.setattr(maintenance_cli, "produce", lambda *a: produced.append(a))
    path = tmp_path / "event.json"
    path.write_text(json.dumps(content))
    assert cli.main(["maintenance", "cancel", "mnt-9", "--file", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]
    assert produced == []
