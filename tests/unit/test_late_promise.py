"""A promise kept late (the brokers or the workers were down when it fell due): the scheduled round
promises the next update one interval after it is decided, not the rest of an interval mostly gone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain.incident import decide, keep_promise
from schemas import IncidentEvent

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
INTERVAL = timedelta(seconds=20)


def declared():
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": T0.isoformat(), "severity": "major",
        "title": "X", "components": ["api"], "update_interval_seconds": int(INTERVAL.total_seconds())})
    return decide(None, event, T0).state


def test_a_promise_kept_on_time_keeps_the_cadence():
    state = declared()
    due = state.promised_at
    kept = keep_promise(state, due, due - timedelta(seconds=3), timedelta(seconds=1), timedelta(seconds=1))
    assert kept.state.promised_at == due + INTERVAL and not kept.stretched


def test_a_promise_kept_late_promises_one_interval_after_the_late_round():
    state = declared()
    due = state.promised_at
    now = due + timedelta(seconds=19)   # 1 s before the next slot of the cadence
    kept = keep_promise(state, due, now, timedelta(seconds=2), timedelta(seconds=1))
    assert kept.round is not None and kept.round.keeps == due
    assert kept.state.promised_at == now + INTERVAL, "not the 1 s left of the cadence, nor the 3 s floor"
    assert not kept.stretched, "late is not stretched: the audience is reached well within the interval"


def test_a_promise_kept_late_still_leaves_time_to_reach_a_slow_audience():
    state = declared()
    due = state.promised_at
    now = due + timedelta(seconds=30)
    kept = keep_promise(state, due, now, timedelta(seconds=10), timedelta(seconds=25))
    assert kept.state.promised_at == now + timedelta(seconds=35) and kept.stretched
