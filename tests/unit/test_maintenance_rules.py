"""Planned maintenance, the pure rules (domain/maintenance.py) and its records (schemas/maintenance.py):
list in, list out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from core.vocabulary import M_CANCELLED, M_CHANGED, M_COMPLETED, M_REMINDER, M_SCHEDULED, M_STARTED
from devtools import records
from domain import maintenance as MR
from domain.audience import NoticeJob
from domain.deadlines import QUEUE_HEADROOM
from domain.ids import contact_key
from schemas import Customer, RecordError, parse_record
from schemas.maintenance import MaintenanceEvent, MaintenanceSchedule, MaintenanceUpdateBody

T0 = datetime(2026, 12, 5, 0, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def event(type_: str, minutes: float = 0, mid: str = "mnt-1", event_id: str | None = None, **fields):
    data = {"event_id": event_id or f"{type_}-{minutes}-{len(fields)}", "maintenance_id": mid, "type": type_,
            "at": at(minutes).isoformat(), **{k: v.isoformat() if isinstance(v, datetime) else v
                                               for k, v in fields.items()}}
    return MaintenanceEvent.model_validate(data)


def scheduled(minutes: float = 0, start: float = 120, end: float = 180, reminder: int = 3600, **fields):
    return event("scheduled", minutes, title={"en": "Database upgrade", "ja": "データベースの更新"},
                 components=["api"], regions=["tokyo"], starts_at=at(start), ends_at=at(end),
                 reminder_seconds=reminder, **fields)


def fold(*events) -> MR.MaintenanceState:
    state = None
    for ev in events:
        d = MR.decide(state, ev)
        assert d.error is None, d.error
        state = d.state
    return state


def customer(customer_id: str, services: list[tuple[str, str]], emails: list[str | tuple[str, str]],
             name: str = "Example", **fields) -> Customer:
    """A customer (``devtools/records.py``'s record, as ``schemas.Customer``): its services
    (component, region) and its contacts (an address, or an address and a name)."""
    contacts = [e if isinstance(e, str) else {"email": e[0], "name": e[1]} for e in emails]
    return Customer.model_validate(records.customer(customer_id, name=name, contacts=contacts, services=services,
                                                    **fields))


TOKYO = customer("c-1", [("api", "tokyo")], ["ops@one.example"])
OSAKA = customer("c-2", [("api", "osaka")], ["ops@two.example"])


class Ledger:
    """A ledger of entries, recording what the sender would (domain.maintenance.record_sent)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def send(self, jobs, when: datetime) -> list[tuple[str, str]]:
        out = []
        for job in jobs:
            r = job.round
            self.entries[job.customer_id] = MR.record_sent(
                self.entries.get(job.customer_id), maintenance_id=r.maintenance_id, recipient=job.recipient,
                email=job.email, message_id=job.message_id, kind=job.kind, content_round=r.content_round,
                starts_at=r.starts_at, sent=when.timestamp())
            out.append((job.customer_id, job.kind))
        return out


def owed(m, customers, ledger: Ledger, minutes: float, lead: float = 0.0):
    return MR.plan(m, [c.customer_id for c in customers], {c.customer_id: c for c in customers}.get,
                   ledger.entries.get, lambda entry: frozenset((entry or {}).get("unsubscribed", ())), at(minutes),
                   lead, "example.com", NoticeJob)


def run(m, customers, ledger: Ledger, minutes: float, lead: float = 0.0):
    return ledger.send(owed(m, customers, ledger, minutes, lead), at(minutes))


# -- records ---------------------------------------------------------------------------------------

def test_a_scheduled_event_needs_its_window_and_defaults_the_reminder():
    ev = event("scheduled", 0, title="x", components=["api"], starts_at=at(10), ends_at=at(20))
    assert ev.reminder_seconds == 3600
    assert "reminder_seconds" in ev.model_dump(mode="json")
    with pytest.raises(RecordError, match="starts_at"):
        parse_record(MaintenanceEvent, b'{"event_id":"e","maintenance_id":"m","type":"scheduled",'
                                       b'"at":"2026-12-05T00:00:00+00:00","title":"x","components":["api"],'
                                       b'"ends_at":"2026-12-05T02:00:00+00:00"}')


@pytest.mark.parametrize("fields, field", [
    ({"starts_at": "2026-12-05T02:00:00", "ends_at": "2026-12-05T03:00:00+00:00"}, "starts_at"),   # naive
    ({"starts_at": "2026-12-05T02:00:00+00:00", "ends_at": "2026-12-05T02:00:00+00:00"}, "ends_at"),
    ({"starts_at": "2026-12-04T02:00:00+00:00", "ends_at": "2026-12-04T03:00:00+00:00"}, "ends_at"),  # past
    ({"starts_at": "2026-12-05T02:00:00+00:00", "ends_at": "2026-12-05T03:00:00+00:00", "components": []},
     "components"),
    ({"starts_at": "2026-12-05T02:00:00+00:00", "ends_at": "2026-12-05T03:00:00+00:00", "reminder_seconds": 0},
     "reminder_seconds"),
])
def test_a_bad_window_is_refused_at_the_door_naming_the_field(fields, field):
    body = {"title": "x", "components": ["api"], "at": "2026-12-05T00:00:00+00:00", **fields}
    with pytest.raises(ValidationError) as err:
        MaintenanceSchedule.model_validate(body)
    assert field in {str(e["loc"][0]) for e in err.value.errors()}


def test_an_update_body_keeps_absent_versus_null():
    body = MaintenanceUpdateBody.model_validate({"regions": None, "message": "new text"})
    ev = body.to_event(maintenance_id="m", event_id="e", at=T0)
    assert ev.model_dump(mode="json") == {"event_id": "e", "maintenance_id": "m", "type": "updated",
                                          "at": "2026-12-05T00:00:00Z", "message": "new text", "regions": None}
    with pytest.raises(ValidationError):
        MaintenanceUpdateBody.model_validate({"starts_at": None})


# -- the state ------------------------------------------------------------------------------------

def test_changes_to_a_cancelled_or_completed_or_over_maintenance_are_refused():
    m = fold(scheduled(), event("cancelled", 5))
    assert "cancelled" in MR.decide(m, event("updated", 6, message="x")).error
    m = fold(scheduled(), event("completed", 130))
    assert "completed" in MR.decide(m, event("cancelled", 131)).error
    assert "over" in MR.decide(fold(scheduled()), event("updated", 181, message="x")).error
    assert "not started" in MR.decide(fold(scheduled()), event("completed", 60)).error
    d = MR.decide(None, event("updated", 1, message="x"))
    assert d.unknown and d.error


def test_rounds_count_changes_and_the_content_round_only_window_or_text():
    m = fold(scheduled(), event("updated", 1, regions=None))
    assert (m.round, m.content_round) == (2, 1)
    m = fold(scheduled(), event("updated", 1, starts_at=at(100)))
    assert (m.round, m.content_round, m.window_set_at, m.previous_starts_at) == (2, 2, at(1), at(120))
    d = MR.decide(m, event("updated", 2, starts_at=at(100)))
    assert not d.changed and d.state.round == 2
    assert MR.decide(m, event("updated", 2, starts_at=at(200))).error   # after ends_at


# -- who is owed what, by when --------------------------------------------------------------------

def test_scheduled_at_once_then_reminder_started_and_completed_each_at_its_time():
    m, ledger, both = fold(scheduled()), Ledger(), [TOKYO, OSAKA]
    assert run(m, both, ledger, 0) == [("c-1", M_SCHEDULED)]     # Osaka is not affected
    assert run(m, both, ledger, 1) == []
    assert run(m, both, ledger, 59.9) == []                        # the reminder is due at 60
    assert run(m, both, ledger, 59.9, lead=10) == [("c-1", M_REMINDER)]
    assert run(m, both, ledger, 100) == []
    assert run(m, both, ledger, 119.5, lead=60) == [("c-1", M_STARTED)]   # by starts_at, lead before
    assert run(m, both, ledger, 179.9, lead=60) == []              # completed is not said before the end
    assert run(m, both, ledger, 180) == [("c-1", M_COMPLETED)]
    assert run(m, both, ledger, 200) == []


def test_due_times_are_the_times_stated():
    m, ledger = fold(scheduled()), Ledger()
    run(m, [TOKYO], ledger, 0)
    (job,) = owed(m, [TOKYO], ledger, 59.5, lead=60)
    key = contact_key("ops@one.example")
    assert job.round.keeps == at(60) and job.message_id == f"<mnt-1.1.maintenance-reminder.c-1.{key}@example.com>"


def test_no_reminder_when_scheduled_less_than_that_before_its_start():
    m, ledger = fold(scheduled(0, start=30, end=60, reminder=3600)), Ledger()
    assert run(m, [TOKYO], ledger, 0) == [("c-1", M_SCHEDULED)]
    assert [run(m, [TOKYO], ledger, t) for t in (1, 10, 29)] == [[], [], []]
    assert run(m, [TOKYO], ledger, 30) == [("c-1", M_STARTED)]


def test_a_customer_told_after_the_reminder_time_gets_no_reminder():
    m = fold(scheduled())                      # reminder at 60
    ledger = Ledger()
    assert run(m, [TOKYO], ledger, 70) == [("c-1", M_SCHEDULED)]
    assert run(m, [TOKYO], ledger, 71) == []


def test_a_moved_window_is_changed_and_the_old_timed_notices_never_go():
    m1, ledger = fold(scheduled()), Ledger()
    run(m1, [TOKYO], ledger, 0)
    planned = owed(m1, [TOKYO], ledger, 119.9, lead=60)          # the old start, queued ...
    assert [j.kind for j in planned] == [M_STARTED]
    m2 = fold(scheduled(), event("updated", 100, starts_at=at(300), ends_at=at(360)))
    assert not MR.still_owed(planned[0], m2, ledger.entries.get("c-1"), frozenset(), at(120))   # ... never sent
    assert run(m2, [TOKYO], ledger, 120) == [("c-1", M_CHANGED)]
    assert run(m2, [TOKYO], ledger, 121, lead=60) == []           # no start at the old time
    assert run(m2, [TOKYO], ledger, 230, lead=10) == []           # moved at 100: reminder at 240 applies
    assert run(m2, [TOKYO], ledger, 239.9, lead=10) == [("c-1", M_REMINDER)]
    assert run(m2, [TOKYO], ledger, 300) == [("c-1", M_STARTED)]


def test_a_text_change_is_changed_and_a_scope_change_alone_says_nothing_to_those_still_affected():
    m, ledger = fold(scheduled()), Ledger()
    run(m, [TOKYO], ledger, 0)
    m_scope = fold(scheduled(), event("updated", 5, regions=None))
    assert run(m_scope, [TOKYO, OSAKA], ledger, 5) == [("c-2", M_SCHEDULED)]   # grew to Osaka
    m_text = fold(scheduled(), event("updated", 5, regions=None), event("updated", 6, message="Reads too"))
    assert sorted(run(m_text, [TOKYO, OSAKA], ledger, 6)) == [("c-1", M_CHANGED), ("c-2", M_CHANGED)]


def test_cancelled_tells_those_told_and_nothing_ever_starts():
    m, ledger = fold(scheduled()), Ledger()
    run(m, [TOKYO, OSAKA], ledger, 0)
    m = fold(scheduled(), event("cancelled", 30))
    assert run(m, [TOKYO, OSAKA], ledger, 30) == [("c-1", M_CANCELLED)]
    assert [run(m, [TOKYO, OSAKA], ledger, t, lead=60) for t in (60, 120, 180, 200)] == [[], [], [], []]


def test_a_shrunk_scope_cancels_for_those_no_longer_concerned():
    m, ledger = fold(scheduled(), event("updated", 1, regions=None)), Ledger()
    assert sorted(run(m, [TOKYO, OSAKA], ledger, 1)) == [("c-1", M_SCHEDULED), ("c-2", M_SCHEDULED)]
    m = fold(scheduled(), event("updated", 1, regions=None), event("updated", 2, regions=["osaka"]))
    assert run(m, [TOKYO, OSAKA], ledger, 2) == [("c-1", M_CANCELLED)]
    assert run(m, [TOKYO, OSAKA], ledger, 120) == [("c-2", M_STARTED)]


def test_completed_early_is_said_at_once_and_only_once():
    m, ledger = fold(scheduled()), Ledger()
    run(m, [TOKYO], ledger, 0)
    run(m, [TOKYO], ledger, 120)
    m = fold(scheduled(), event("completed", 150))
    assert run(m, [TOKYO], ledger, 150) == [("c-1", M_COMPLETED)]
    assert run(m, [TOKYO], ledger, 181) == []


def test_a_customer_first_affected_while_it_runs_hears_that_it_started():
    m = fold(scheduled())
    assert run(m, [TOKYO], Ledger(), 130) == [("c-1", M_STARTED)]
    assert run(m, [TOKYO], Ledger(), 190) == []


def test_an_unsubscribed_contact_gets_nothing_and_a_sent_one_is_not_planned_twice():
    m, ledger = fold(scheduled()), Ledger()
    ledger.entries["c-1"] = {"unsubscribed": [contact_key("ops@one.example")]}
    assert run(m, [TOKYO], ledger, 0) == []
    ledger = Ledger()
    (job,) = owed(m, [TOKYO], ledger, 0)
    ledger.send([job], at(0))
    assert not MR.still_owed(job, m, ledger.entries["c-1"], frozenset(), at(0))


def test_the_lead_grows_with_the_audience_and_shrinks_with_the_rate():
    # planned as a holding update's deadline is: the queue ahead and the audience at half the rate
    assert MR.lead_seconds(100, ahead=0, send_rate=50, base=1) == pytest.approx(1 + QUEUE_HEADROOM * 2)
    assert MR.lead_seconds(100, ahead=100, send_rate=100, base=1) == pytest.approx(1 + QUEUE_HEADROOM * 2)
    assert MR.lead_seconds(0, ahead=0, send_rate=None, base=1) == pytest.approx(1.0)
    assert MR.lead_seconds(400, ahead=0, send_rate=50, base=1) > MR.lead_seconds(100, ahead=0, send_rate=50, base=1)
    assert MR.checkpoints(fold(scheduled()), 30) == [at(59.5), at(119.5), at(180)]
