"""Issue 16's scenarios on the in-memory test broker (tests/inmemory/broker.py): two workers built
as the faust worker builds them, a clock the test moves.

- a contact who unsubscribed and one who chose ``none`` get nothing more while the customer's other
  contacts get every notice; an ops undo (a ``receive: all`` request) brings them back;
- a ``start-and-end`` contact gets the acknowledgement and the resolution only: no progress, no
  holding update, and its notices promise no next update (no ``X-Outage-Next-Update``) and say the
  next email comes with the resolution; it counts as no late promise;
- an address refused with 550 is tried once, suppressed (on ``outage.suppressions``, on every
  worker), not tried again by later rounds while the customer's other contact is; once ops lift
  it, the next round reaches it;
- planned maintenance notices go to start-and-end contacts, and to none who chose none or unsubscribed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.ids import contact_key
from streams import metrics as M
from tests.factories import customer, declared, maintenance, resolved, updated
from tests.inmemory.broker import Broker

INTERVAL = 60
API = ("api", "ap-northeast-1")


@pytest.fixture
async def broker():
    async with Broker() as b:
        yield b


async def start(broker: Broker, customers: list[dict]):
    for c in customers:
        broker.produce("customers", c["customer_id"], c)
    workers = [broker.worker("w0"), broker.worker("w1")]
    await broker.rebalance()
    await broker.pump()
    return workers


def declare(broker: Broker, incident_id: str = "inc-1") -> None:
    broker.produce("incident-events", incident_id,
                   declared(incident_id, at=broker.at(), update_interval_seconds=INTERVAL))


def update(broker: Broker, n: int, incident_id: str = "inc-1") -> None:
    broker.produce("incident-events", incident_id, updated(incident_id, f"{incident_id}-u{n}", at=broker.at(),
                                                           status="identified", message=f"news {n}"))


def resolve(broker: Broker, incident_id: str = "inc-1") -> None:
    broker.produce("incident-events", incident_id, resolved(incident_id, f"{incident_id}-r", at=broker.at()))


def kinds(broker: Broker, email: str) -> list[str]:
    return [m.kind for m in sorted(broker.relay.to(email), key=lambda m: m.at)]


def emails(record: dict) -> list[str]:
    return [c["email"] for c in record["contacts"]]


async def test_unsubscribed_and_none_contacts_get_nothing_more_while_the_others_do_until_ops_undo_it(broker):
    c0, c1 = customer("c-0", contacts=2, services=[API]), customer("c-1", locale="ja", contacts=2, services=[API])
    w0, w1 = await start(broker, [c0, c1])
    (a, b), (c, d) = emails(c0), emails(c1)
    declare(broker)
    await broker.pump()
    assert sorted(broker.relay.recipients(kind="acknowledged")) == sorted([a, b, c, d])

    # a clicks the one-click link (handled by w1, whatever partition c-0 is on); c chooses none
    await w1.parts.preferences.request_unsubscribe("c-0", contact_key(a))
    await w0.parts.preferences.request("c-1", contact_key(c), "none")
    await broker.pump()
    update(broker, 1)
    await broker.pump()
    await broker.advance(2 * INTERVAL)            # holding updates come due meanwhile
    assert kinds(broker, a) == kinds(broker, c) == ["acknowledged"]
    for other in (b, d):
        ks = kinds(broker, other)
        assert ks[:2] == ["acknowledged", "progress"] and "scheduled" in ks, ks

    # ops undo (PUT /api/customers/{id}/preferences sends this request): both are back
    await w0.parts.preferences.request("c-0", contact_key(a), "all")
    await w1.parts.preferences.request("c-1", contact_key(c), "all")
    await broker.pump()
    update(broker, 2)
    await broker.pump()
    assert kinds(broker, a) == kinds(broker, c) == ["acknowledged", "progress"]
    await broker.advance(INTERVAL)                # and their promises are kept again
    assert kinds(broker, a)[-1] == "scheduled" and kinds(broker, c)[-1] == "scheduled"
    resolve(broker)
    await broker.pump()
    assert all(kinds(broker, e)[-1] == "resolved" for e in (a, b, c, d))
    assert broker.read("dead-letters") == []


async def test_a_start_and_end_contact_gets_the_acknowledgement_and_the_resolution_only(broker):
    en, ja = customer("c-en", contacts=2, services=[API]), customer("c-ja", locale="ja", contacts=1, services=[API])
    w0, w1 = await start(broker, [en, ja])
    quiet, loud = emails(en)
    (quiet_ja,) = emails(ja)
    await w0.parts.preferences.request("c-en", contact_key(quiet), "start-and-end")
    await w1.parts.preferences.request("c-ja", contact_key(quiet_ja), "start-and-end")
    await broker.pump()
    late_before = M.NOTICES_LATE._value.get()
    declare(broker)
    await broker.pump()
    update(broker, 1)
    await broker.pump()
    await broker.advance(3 * INTERVAL)
    resolve(broker)
    await broker.pump()

    assert kinds(broker, quiet) == kinds(broker, quiet_ja) == ["acknowledged", "resolved"]
    ks = kinds(broker, loud)
    assert ks[:2] == ["acknowledged", "progress"] and ks.count("scheduled") >= 2 and ks[-1] == "resolved", ks
    ack_en = broker.relay.to(quiet)[0]
    ack_ja = broker.relay.to(quiet_ja)[0]
    for ack in (ack_en, ack_ja):
        assert ack.header("X-Outage-Next-Update") is None and ack.header("X-Outage-ETA") == "unknown"
    text_en = ack_en.message.get_body(("plain",)).get_content()
    text_ja = ack_ja.message.get_body(("plain",)).get_content()
    assert "we will email you next when it is resolved" in text_en and "each update" not in text_en
    assert "次回は復旧時にご連絡いたします" in text_ja
    assert broker.relay.to(loud)[0].header("X-Outage-Next-Update") is not None
    assert M.NOTICES_LATE._value.get() == late_before      # no promise of theirs was counted as missed
    notice = next(n for n in broker.read("notices") if n["email"] == quiet and n["kind"] == "acknowledged")
    assert notice["next_update_at"] is None


async def test_a_contact_who_switches_to_start_and_end_mid_incident_gets_no_more_holding_updates(broker):
    c0 = customer("c-0", contacts=2, services=[API])
    w0, w1 = await start(broker, [c0])
    switch, stay = emails(c0)
    declare(broker)
    await broker.pump()
    await w1.parts.preferences.request("c-0", contact_key(switch), "start-and-end")
    await broker.pump()
    await broker.advance(3 * INTERVAL)
    update(broker, 1)
    await broker.pump()
    resolve(broker)
    await broker.pump()
    assert kinds(broker, switch) == ["acknowledged", "resolved"]
    assert kinds(broker, stay).count("scheduled") >= 2


async def test_an_address_refused_with_550_is_tried_once_and_not_again_until_ops_lift_it(broker):
    c0 = customer("c-0", contacts=2, services=[API])
    w0, w1 = await start(broker, [c0])
    bad, good = emails(c0)
    broker.relay.refuse(bad)
    suppressed_before = M.ADDRESSES_SUPPRESSED._value.get()
    declare(broker)
    await broker.pump()
    assert broker.relay.tried.count(bad) == 1
    assert M.ADDRESSES_SUPPRESSED._value.get() == suppressed_before + 1
    (record,) = broker.read("suppressions")
    assert record["email"] == bad and record["code"] == 550 and record["reason"].startswith("550 ")
    assert bad not in record["reason"]
    for w in (w0, w1):   # every worker's view has it
        assert w.parts.suppressions.suppressed(bad) and not w.parts.suppressions.suppressed(good)
        assert [s["email"] for s in w.parts.suppressions.listed()] == [bad]

    update(broker, 1)
    await broker.pump()
    await broker.advance(2 * INTERVAL)
    assert broker.relay.tried.count(bad) == 1      # later rounds did not try it
    assert kinds(broker, good)[:2] == ["acknowledged", "progress"]

    broker.relay.refused.clear()                   # the mailbox exists again; ops lift it on either worker
    assert await w1.parts.suppressions.lift(bad) is True
    assert await w1.parts.suppressions.lift(bad) is False   # not suppressed any more: the API's 404
    await broker.pump()
    assert not w0.parts.suppressions.suppressed(bad)
    update(broker, 2)
    await broker.pump()
    assert kinds(broker, bad) == ["acknowledged"]  # reached by the next round (its first notice)
    letters = [letter for letter in broker.read("dead-letters") if letter["topic"] == "t.notices"]
    assert len(letters) == 1 and "550" in letters[0]["error"]


async def test_maintenance_notices_go_to_start_and_end_contacts_and_not_to_none_or_unsubscribed_ones(broker):
    c0, c1 = customer("c-0", contacts=2, services=[API]), customer("c-1", locale="ja", contacts=2, services=[API])
    w0, w1 = await start(broker, [c0, c1])
    (quiet, nothing), (gone, everything) = emails(c0), emails(c1)
    await w0.parts.preferences.request("c-0", contact_key(quiet), "start-and-end")
    await w1.parts.preferences.request("c-0", contact_key(nothing), "none")
    await w0.parts.preferences.request_unsubscribe("c-1", contact_key(gone))
    await broker.pump()
    starts = broker.clock() + timedelta(seconds=30)
    broker.produce("maintenance-events", "mnt-1", maintenance(
        "mnt-1", at=broker.at(), starts_at=starts.isoformat(), ends_at=(starts + timedelta(seconds=30)).isoformat(),
        reminder_seconds=3600, regions=["ap-northeast-1"]))
    await broker.pump()
    await broker.advance(90)
    full = ["maintenance-scheduled", "maintenance-started", "maintenance-completed"]
    assert kinds(broker, quiet) == kinds(broker, everything) == full   # maintenance-* is start-and-end's
    assert kinds(broker, nothing) == kinds(broker, gone) == []
    text = broker.relay.to(quiet)[0].message.get_body(("plain",)).get_content()
    assert "http://status.example.com/preferences/" in text    # every notice links the preferences page
