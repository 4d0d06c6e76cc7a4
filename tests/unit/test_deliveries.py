"""What the sender calls around each notice (streams/deliveries.py), in process: a notice accepted
by the SMTP server is recorded in the ledger with the deadline it stated and when it was accepted,
then produced to the notices topic on the customer's partition; a notice sent meanwhile is no
longer owed; one that cannot be delivered is dead-lettered with its ids."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

from domain import ledger as L
from domain.audience import holding_job, refresh
from domain.promises import PromiseBook
from streams import topics as T
from streams.deadletter import DeadLetters
from streams.deliveries import Deliveries
from tests.inmemory import Clock, Table, Topic
from tests.unit.test_sender import T0, customers, jobs_for


def wired():
    ledger, produced, noted, marked = Table(), [], [], []
    dead = Topic("t.dead-letters", partitions=1)

    async def produce(*record):
        produced.append(record)

    views = SimpleNamespace(mark_notified=lambda p, incident, cid: marked.append((p, incident, cid)))
    deliveries = Deliveries(ledger=ledger, promises=PromiseBook(margin=timedelta(seconds=5)), views=views,
                            dlq=DeadLetters(dead, Clock()), names=T.TopicNames("t."), mail_domain="example.com",
                            compose=lambda job, now: b"bytes", produce=produce,
                            noted=lambda *notice: noted.append(notice))
    return deliveries, ledger, produced, noted, dead


async def test_an_accepted_notice_is_recorded_then_produced_on_the_customers_partition():
    deliveries, ledger, produced, noted, _ = wired()
    (job,) = jobs_for(customers(["a@example.com"]), interval=600)
    sent_at = T0 + timedelta(seconds=3)
    deliveries.compose(job, sent_at)                     # states one interval after it is sent
    assert deliveries.refresh(job, 2) is not None
    await deliveries.record_sent(job, 2, sent_at)
    ((incident, recipient, due, every, sent),) = L.deadlines(ledger.partition(2).get(job.customer_id))
    assert (due, every, sent) == ((sent_at + timedelta(seconds=600)).timestamp(), 600.0, sent_at.timestamp())
    assert noted == [(2, job, due, every, sent)]
    assert [p for p, part in ledger.parts.items() if job.customer_id in part] == [2]   # the customer's partition
    assert ledger.recovered(2).get(job.customer_id) == ledger.partition(2).get(job.customer_id)   # changelogged
    ((topic, key, value, p, _, _),) = produced
    record = json.loads(value)
    assert (topic, key, p) == ("t.notices", job.customer_id.encode(), 2)
    assert record["notice_id"] == job.message_id and record["next_update_at"].startswith("2026")
    assert deliveries.refresh(job, 2) is None            # sent: no longer owed


async def test_an_undeliverable_notice_is_dead_lettered_with_its_ids():
    deliveries, ledger, produced, _, dead = wired()
    (job,) = jobs_for(customers(["b@example.com"]))
    await deliveries.undeliverable(job, "550 no such user")
    ((_, value, _),) = dead.sent
    letter = json.loads(value)
    assert letter["error"] == "550 no such user" and letter["topic"] == "t.notices"
    assert json.loads(letter["value"])["notice_id"] == job.message_id
    assert all(len(part) == 0 for part in ledger.parts.values()) and produced == []


def test_a_scheduled_round_acknowledging_a_contact_states_one_interval_after_the_acknowledgement():
    book = PromiseBook(margin=timedelta(seconds=5))
    (job,) = jobs_for(customers(["c@example.com"]), scheduled=True, interval=60)
    assert job.kind == "acknowledged" and job.round.trigger == "scheduled"
    for at in (job.round.keeps - timedelta(seconds=15), job.round.keeps + timedelta(seconds=1)):
        assert book.as_composed(job, at).round.next_update_at == at + timedelta(seconds=60)


def test_a_contact_acknowledged_by_a_scheduled_round_gets_that_rounds_holding_update_then_waits():
    # its deadline may come before the next round is decided: its holding update is this round's
    (ack,) = jobs_for(customers(["c@example.com"]), scheduled=True, interval=60)
    rnd, customer = ack.round, ack.customer
    entry = L.record_sent(None, incident_id=ack.incident_id, recipient=ack.recipient, email=ack.email,
                          message_id=ack.message_id, kind=ack.kind, seq=ack.seq, due=1e9, every=60.0)
    holding = holding_job(rnd, customer, entry, ack.recipient, "example.com")
    assert holding is not None and (holding.kind, holding.seq) == ("scheduled", rnd.seq)
    assert holding.message_id != ack.message_id and holding.in_reply_to == ack.message_id
    assert refresh(holding, entry, "example.com") is not None           # still owed when it is sent
    assert refresh(ack, entry, "example.com") is None                   # the acknowledgement is not
    entry = L.record_sent(entry, incident_id=ack.incident_id, recipient=ack.recipient, email=ack.email,
                          message_id=holding.message_id, kind=holding.kind, seq=holding.seq, due=2e9, every=60.0)
    assert holding_job(rnd, customer, entry, ack.recipient, "example.com") is None   # sent: the next round's turn
    assert refresh(holding, entry, "example.com") is None
