"""The whole-topic views share one base (streams/topic_view.py): each names its topic, its client
id and what it keeps, and ``of`` / ``apply`` / ``size`` / ``get`` come from the base."""

from __future__ import annotations

import json
import logging

from core.settings import Settings
from domain.suppression import Suppression
from streams import topics as T
from streams.feedback_view import FeedbackView
from streams.incident_view import IncidentView
from streams.kafka.broker import KAFKA
from streams.maintenance_view import MaintenanceView
from streams.preferences_view import PreferencesView
from streams.suppression_view import SuppressionView

NAMES = T.TopicNames(prefix="t.")


def test_each_view_reads_its_own_topic_under_its_own_client_id():
    settings = Settings(broker="127.0.0.1:9")
    expected = {IncidentView: (NAMES.changelog(T.INCIDENTS_TABLE), "outage-incident-view"),
                MaintenanceView: (NAMES.changelog(T.MAINTENANCE_TABLE), "outage-maintenance-view"),
                FeedbackView: (NAMES.name(T.FEEDBACK), "outage-feedback-view"),
                PreferencesView: (NAMES.name(T.PREFERENCES), "outage-preferences-view"),
                SuppressionView: (NAMES.name(T.SUPPRESSIONS), "outage-suppressions-view")}
    for cls, (topic, client_id) in expected.items():
        view = cls.of(settings, names=NAMES, partitions=3, profile=KAFKA)
        assert (type(view), view.topic, view.client_id, view.partitions) == (cls, topic, client_id, 3)
    assert IncidentView(bootstrap_servers=["h:9"], topic="x", partitions=1, client_id="mine").client_id == "mine"


def test_a_changelog_view_keeps_the_latest_state_per_key_and_skips_what_is_not_one(caplog):
    view = MaintenanceView(bootstrap_servers=["h:9"], topic="x", partitions=1)
    state = {"maintenance_id": "m-1", "title": "DB", "components": ["db"], "starts_at": "2026-11-25T10:00:00Z",
             "ends_at": "2026-11-25T11:00:00Z", "reminder_seconds": 3600, "window_set_at": "2026-11-24T10:00:00Z",
             "scheduled_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"}
    key = json.dumps("m-1").encode()
    with caplog.at_level(logging.WARNING):
        view.apply([(key, json.dumps(state).encode()), (b"not json", b"{}"), (key, b"[]")])
    assert view.get("m-1").title == "DB" and view.size() == 1 and view._skipped == 2
    assert "maintenance view: skipped a changelog value that is not a maintenance state" in caplog.text
    view.apply([(key, None)])
    assert view.get("m-1") is None and view.states() == []


def test_a_book_view_hands_its_records_to_its_book_and_logs_what_it_skipped(caplog):
    view = SuppressionView(bootstrap_servers=["h:9"], topic="x", partitions=1)
    gone = Suppression(email="bad@example.jp", at="2026-11-25T01:00:00+00:00", code=550, reason="550 gone")
    with caplog.at_level(logging.WARNING):
        view.apply([(b"bad@example.jp", gone.to_json()), (b"other@example.jp", gone.to_json()), (b"\xff", b"{}")])
    assert view.book.suppressed("BAD@example.jp") and view.size() == 1 and view.book.skipped == 2
    assert "suppressions view: skipped 2 records that are not suppressions" in caplog.text
