"""Planned maintenance on the in-memory test broker (tests/inmemory/broker.py): two workers built as
the faust worker builds them, their timers run by a clock the test moves.

- scheduled at once to exactly the affected contacts; the reminder ``reminder_seconds`` before the
  start and the start by ``starts_at``, each no earlier than the audience needs; completed at
  ``ends_at``, not before; one thread per contact;
- a moved window: changed at once, nothing at the old times, the timed notices at the new ones;
- cancelled: cancelled to those told, never started; a completed one early: completed at once;
- a worker killed before the start: the other sends the start on time, nothing twice;
- a refused event is dead-lettered with its reason.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.factories import customer, maintenance
from tests.inmemory.broker import Broker
from tests.unit.test_contract_scenarios import API_TOKYO, contacts, start

OSAKA = ("api", "ap-northeast-3")


@pytest.fixture
async def broker():
    async with Broker() as b:
        yield b


def schedule(broker: Broker, mid: str = "mnt-1", start_in: float = 300, length: float = 120, reminder: int = 120,
             **fields) -> tuple[datetime, datetime]:
    starts, ends = broker.clock() + timedelta(seconds=start_in), broker.clock() + timedelta(seconds=start_in + length)
    fields.setdefault("regions", ["ap-northeast-1"])
    broker.produce("maintenance-events", mid, maintenance(mid, at=broker.at(), starts_at=starts.isoformat(),
                                                          ends_at=ends.isoformat(), reminder_seconds=reminder,
                                                          **fields))
    return starts, ends


def change(broker: Broker, mid: str, type_: str, n: int = 1, **fields) -> None:
    fields = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}
    broker.produce("maintenance-events", mid, maintenance(mid, type_, event_id=f"{mid}-{type_}-{n}", at=broker.at(),
                                                          **fields))


def kinds(broker: Broker, email: str) -> list[str]:
    return [m.kind for m in sorted(broker.relay.to(email), key=lambda m: m.at)]


def people(n: int = 4, tag: str = "c", services=(API_TOKYO,)) -> list[dict]:
    return [customer(f"{tag}-{i}", locale=("ja", "en")[i % 2], timezone=("Asia/Tokyo", "UTC")[i % 2], contacts=2,
                     services=list(services)) for i in range(n)]


async def test_scheduled_reminder_started_completed_each_on_time_and_threaded(broker):
    tokyo, osaka = people(4), people(2, "o", (OSAKA,))
    await start(broker, tokyo + osaka)
    t0 = broker.clock()
    starts, ends = schedule(broker)
    await broker.pump()
    everyone = contacts(*tokyo)
    assert sorted(broker.relay.recipients(kind="maintenance-scheduled")) == everyone   # Osaka is not affected
    assert all(m.at == t0 for m in broker.relay.mails)
    await broker.advance(600)
    for email in everyone:
        mails = sorted(broker.relay.to(email), key=lambda m: m.at)
        assert [m.kind for m in mails] == ["maintenance-scheduled", "maintenance-reminder", "maintenance-started",
                                           "maintenance-completed"]
        _, reminder, started, completed = mails
        reminder_at = starts - timedelta(seconds=120)
        # by its time, and no earlier than the audience needs (a few seconds for 8 contacts)
        assert reminder_at - timedelta(seconds=10) <= reminder.at <= reminder_at
        assert starts - timedelta(seconds=10) <= started.at <= starts
        assert ends <= completed.at <= ends + timedelta(seconds=1)
        root = mails[0].message_id
        assert all(m.header("In-Reply-To") == root for m in mails[1:])
        assert all(m.header("X-Outage-Maintenance") == "mnt-1" and m.incident is None for m in mails)
        assert started.header("X-Outage-Starts-At") == starts.strftime("%Y-%m-%dT%H:%M:%S") + (
            f".{starts.microsecond:06d}Z" if starts.microsecond else "Z")
    assert {m.worker for m in broker.relay.mails} == {"w0", "w1"}
    assert len({m.message_id for m in broker.relay.mails}) == len(broker.relay.mails)
    notices = [n for n in broker.read("notices") if n.get("maintenance_id") == "mnt-1"]
    assert len(notices) == len(broker.relay.mails) and all(n["incident_id"] is None for n in notices)
    assert broker.read("dead-letters") == []


async def test_no_reminder_when_scheduled_less_than_that_before_the_start(broker):
    customers = people(2)
    await start(broker, customers)
    schedule(broker, start_in=60, length=30, reminder=3600)
    await broker.pump()
    await broker.advance(120)
    for email in contacts(*customers):
        assert kinds(broker, email) == ["maintenance-scheduled", "maintenance-started", "maintenance-completed"]


async def test_a_moved_window_is_announced_and_nothing_goes_at_the_old_times(broker):
    customers = people(2)
    await start(broker, customers)
    starts, _ = schedule(broker, start_in=300, length=60, reminder=120)
    await broker.pump()
    await broker.advance(100)
    new_start = starts + timedelta(seconds=600)
    change(broker, "mnt-1", "updated", starts_at=new_start, ends_at=new_start + timedelta(seconds=60))
    await broker.pump()
    for email in contacts(*customers):
        assert kinds(broker, email) == ["maintenance-scheduled", "maintenance-changed"]
    await broker.advance(400)                        # past the old window
    for email in contacts(*customers):
        assert kinds(broker, email) == ["maintenance-scheduled", "maintenance-changed"]
    await broker.advance(500)                        # past the new one
    for email in contacts(*customers):
        mails = sorted(broker.relay.to(email), key=lambda m: m.at)
        assert [m.kind for m in mails] == ["maintenance-scheduled", "maintenance-changed", "maintenance-reminder",
                                           "maintenance-started", "maintenance-completed"]
        assert new_start - timedelta(seconds=10) <= mails[3].at <= new_start
        assert mails[1].seq == 2 and ("Maintenance changed" in mails[1].subject or "日時変更" in mails[1].subject)


async def test_a_cancelled_maintenance_is_cancelled_to_those_told_and_never_starts(broker):
    customers = people(2)
    await start(broker, customers)
    schedule(broker, start_in=200, length=60)
    await broker.pump()
    await broker.advance(50)
    change(broker, "mnt-1", "cancelled")
    await broker.pump()
    await broker.advance(400)
    for email in contacts(*customers):
        assert kinds(broker, email) == ["maintenance-scheduled", "maintenance-cancelled"]


async def test_the_scope_shrinking_cancels_for_those_no_longer_concerned_and_growing_announces(broker):
    tokyo, osaka = people(2), people(2, "o", (OSAKA,))
    await start(broker, tokyo + osaka)
    schedule(broker, start_in=300, length=60)
    await broker.pump()
    change(broker, "mnt-1", "updated", 1, regions=["ap-northeast-3"])
    await broker.pump()
    for email in contacts(*tokyo):
        assert kinds(broker, email) == ["maintenance-scheduled", "maintenance-cancelled"]
    for email in contacts(*osaka):
        assert kinds(broker, email) == ["maintenance-scheduled"]


async def test_completed_early_is_said_at_once_and_not_again_at_the_end(broker):
    customers = people(2)
    await start(broker, customers)
    schedule(broker, start_in=30, length=300, reminder=3600)
    await broker.pump()
    await broker.advance(60)
    change(broker, "mnt-1", "completed")
    await broker.pump()
    done_at = broker.clock()
    await broker.advance(400)
    for email in contacts(*customers):
        mails = sorted(broker.relay.to(email), key=lambda m: m.at)
        assert [m.kind for m in mails] == ["maintenance-scheduled", "maintenance-started", "maintenance-completed"]
        assert mails[-1].at == done_at


async def test_a_worker_killed_before_the_start_the_other_sends_it_on_time_and_nothing_twice(broker):
    customers = people(6)
    w0, w1 = await start(broker, customers)
    starts, ends = schedule(broker, start_in=120, length=60, reminder=3600)
    await broker.pump()
    await broker.advance(60)
    await broker.kill(w1)
    await broker.rebalance()
    await broker.pump()
    await broker.advance(200)
    for email in contacts(*customers):
        mails = sorted(broker.relay.to(email), key=lambda m: m.at)
        assert [m.kind for m in mails] == ["maintenance-scheduled", "maintenance-started", "maintenance-completed"]
        assert mails[1].at <= starts and mails[1].worker == "w0"
    assert len({m.message_id for m in broker.relay.mails}) == len(broker.relay.mails)


async def test_a_refused_maintenance_event_is_dead_lettered_with_its_reason(broker):
    await start(broker, people(1))
    change(broker, "mnt-x", "updated", message="never scheduled")
    broker.produce("maintenance-events", "mnt-y", maintenance("mnt-z", at=broker.at(),
                                                              starts_at=broker.at(60), ends_at=broker.at(120)))
    broker.produce("maintenance-events", "mnt-w", maintenance("mnt-w", at=broker.at(),
                                                              starts_at=broker.at(60), ends_at=broker.at(30)))
    await broker.pump()
    errors = sorted(d["error"] for d in broker.read("dead-letters"))
    assert len(errors) == 3
    assert any("never scheduled" in e for e in errors) and any("differs from maintenance_id" in e for e in errors)
    assert any("ends_at" in e for e in errors)
    assert broker.relay.mails == []


async def test_an_incident_on_a_scope_under_maintenance_says_so_to_the_customers_it_covers(broker):
    from tests.factories import declared

    tokyo, osaka = people(2), people(2, "o", (OSAKA,))
    await start(broker, tokyo + osaka)
    schedule(broker, start_in=10, length=600)
    await broker.pump()
    await broker.advance(20)                          # under way
    broker.produce("incident-events", "inc-1", declared("inc-1", at=broker.at(), regions=None,
                                                        update_interval_seconds=600))
    await broker.pump()
    acks = [m for m in broker.relay.mails if m.kind == "acknowledged"]
    assert sorted(m.rcpt for m in acks) == contacts(*tokyo, *osaka)
    for m in acks:
        text = m.message.get_body(("plain",)).get_content()
        said = "Planned maintenance is under way" in text or "計画メンテナンス" in text
        assert said == (m.rcpt in contacts(*tokyo)), (m.rcpt, text)


async def test_a_refused_address_is_dead_lettered_once_and_not_tried_again(broker):
    customers = people(3)
    await start(broker, customers)
    refused = contacts(customers[0])[0]
    broker.relay.refuse(refused)
    schedule(broker, start_in=30, length=30, reminder=3600)
    await broker.pump()
    await broker.advance(90)
    assert kinds(broker, refused) == []
    for email in set(contacts(*customers)) - {refused}:
        assert kinds(broker, email) == ["maintenance-scheduled", "maintenance-started", "maintenance-completed"]
    letters = [d for d in broker.read("dead-letters") if d["topic"].endswith("notices")]
    # the 550 to RCPT suppressed the address (streams/suppressions.py): tried once, for the first
    # notice it was owed, and by no later one (started, completed)
    assert [json.loads(d["value"])["kind"] for d in letters] == ["maintenance-scheduled"]
    assert broker.relay.tried.count(refused) == 1


def test_the_lead_plans_with_the_prior_until_the_rate_is_measured_and_never_passes_the_reminder():
    """One email in a busy window left open by an idle spell once read as 0.1/s: every start left at
    once (measured on Tansu). The lead plans with the prior until the rate is measured, and is never
    more than half the reminder's distance from the start."""
    from types import SimpleNamespace

    from domain.deadlines import QUEUE_HEADROOM
    from domain.schedule import SendRate
    from streams.maintenance import PRIOR_RATE, MaintenanceDesk
    from tests.unit.test_maintenance_rules import fold, scheduled

    rate = SendRate()
    rate.value, rate.measured = 0.1, False          # a first window only
    sender = SimpleNamespace(rate=rate, rate_cap=None, depth=0)
    desk = MaintenanceDesk(maintenance=None, plans=None, rounds_topic=None, partitions=1, ledger=None, views=None,
                           sender=sender, dlq=None, clock=None, held=lambda: {0}, recovered=lambda: True,
                           assignment=lambda: None, lead_seconds=1.0, mail_domain="x", produce=None,
                           names=SimpleNamespace(name=lambda base: base), undeliverable=None)
    desk.contacts = lambda p, m: 40
    m = fold(scheduled(reminder=60))
    assert desk.lead(m) == pytest.approx(1 + QUEUE_HEADROOM * 40 / PRIOR_RATE)
    rate.measured = True                             # measured that slow: still no more than half the reminder
    assert desk.lead(m) == 30
