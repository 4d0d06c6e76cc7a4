"""The contract's scenarios on the in-memory test broker (tests/inmemory/broker.py): two workers
built as the faust worker builds them (streams/assembly.py), over in-memory topics and tables,
their timers run by a clock the test moves. Each scenario runs in well under a second.

- a declared incident's first notice reaches exactly the affected contacts (a component and a
  region of one of the customer's own services), once each, in the customer's language;
- the schedule: without news, each contact's holding update comes no later than the time its
  previous notice promised, and no two notices without news less than two thirds of an interval
  apart; news goes at once;
- a ticket about a known incident is acknowledged at once (a ticket-ack to the requester, a
  ``linked`` ticket update) and closed out when the incident is resolved;
- a worker killed mid round: the other takes its partitions over and sends exactly what is owed
  (every affected contact reached, repeated only the sends under way at the kill); a worker
  joining mid round (a clean rebalance) repeats nothing;
- a duplicate incident event changes nothing;
- a bad record goes to the dead-letter topic with its reason, and the stream goes on; so does an
  event whose estimate or next update is not after its own time;
- "taking longer than our earlier estimate" only after an estimate was given and went by; with
  none ever given, the notices say there is none yet;
- ticket surges: five tickets from five customers about one component, handled on both workers,
  make one possible-incident signal on ``outage.signals`` (and one more ticket in the window none);
  two make none; with an active incident on the component, none;
- with ``OUTAGE_REPLY_TO`` every notice has that ``Reply-To`` and invites a reply; without it,
  neither;
- feedback: every resolved notice carries five signed links naming its contact; an answer given
  on one worker is recorded once per contact (a later one replaces it), and another worker's view
  of ``outage.feedback`` counts it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta

import pytest

from tests.factories import customer, declared, resolved, ticket, updated
from tests.inmemory.broker import Broker, WorkerTopics

INTERVAL = 60
API_TOKYO = ("api", "ap-northeast-1")


@pytest.fixture
async def broker():
    async with Broker() as b:
        yield b


async def start(broker: Broker, customers: list[dict], workers: int = 2):
    for c in customers:
        broker.produce("customers", c["customer_id"], c)
    started = [broker.worker(f"w{i}") for i in range(workers)]
    await broker.rebalance()
    await broker.pump()
    for w in started:
        assert w.parts.rebalance.readiness() == (True, "ok")
    return started


def declare(broker: Broker, incident_id: str, **fields) -> None:
    fields.setdefault("update_interval_seconds", INTERVAL)
    broker.produce("incident-events", incident_id, declared(incident_id, at=broker.at(), **fields))


def contacts(*records: dict) -> list[str]:
    return sorted(c["email"] for r in records for c in r["contacts"])


def audience(n: int, tag: str = "c") -> list[dict]:
    """``n`` customers of API in Tokyo, Japanese and English in turn, two contacts each."""
    return [customer(f"{tag}-{i:03d}", locale=("ja", "en")[i % 2], contacts=2, services=[API_TOKYO])
            for i in range(n)]


async def test_a_first_notice_reaches_exactly_the_affected_contacts_once_in_their_language(broker):
    ja = [customer(f"ja-{i}", locale="ja", timezone="Asia/Tokyo", contacts=2, services=[API_TOKYO])
          for i in range(4)]
    en = [customer(f"en-{i}", locale="en", contacts=1, services=[("db", "eu-west-1"), API_TOKYO])
          for i in range(4)]
    unaffected = [
        customer("other-region", services=[("api", "eu-west-1")]),
        customer("other-component", services=[("db", "ap-northeast-1")]),
        # the incident's component in one service and its region in another: not affected
        customer("crossed", services=[("api", "eu-west-1"), ("db", "ap-northeast-1")]),
    ]
    await start(broker, ja + en + unaffected)
    declare(broker, "inc-1", components=("api",), regions=("ap-northeast-1",))
    await broker.pump()

    mails = broker.relay.mails
    assert sorted(m.rcpt for m in mails) == contacts(*ja, *en)          # exactly those, once each
    assert {m.kind for m in mails} == {"acknowledged"}
    by_rcpt = {m.rcpt: m for m in mails}
    for c in ja:
        for email in contacts(c):
            assert "障害 inc-1" in by_rcpt[email].subject, by_rcpt[email].subject
    for c in en:
        for email in contacts(c):
            assert "Trouble inc-1" in by_rcpt[email].subject, by_rcpt[email].subject
    assert {m.worker for m in mails} == {"w0", "w1"}    # each worker notified the customers it holds
    notices = broker.read("notices")
    assert sorted(n["email"] for n in notices) == contacts(*ja, *en)
    assert broker.read("dead-letters") == []


async def test_the_schedule_keeps_each_promise_and_spaces_the_notices_without_news(broker):
    customers = audience(6)
    await start(broker, customers)
    declared_at = broker.clock()
    declare(broker, "inc-1")
    await broker.pump()
    await broker.advance(150)                      # no news: holding updates only
    news_at = broker.clock()
    broker.produce("incident-events", "inc-1", updated("inc-1", "inc-1-u1", at=broker.at(), status="identified",
                                                       message={"en": "Found it.", "ja": "原因を特定しました。"}))
    await broker.pump()
    await broker.advance(130)

    end = broker.clock()
    for email in contacts(*customers):
        mails = sorted(broker.relay.to(email), key=lambda m: m.at)
        kinds = [m.kind for m in mails]
        assert kinds[0] == "acknowledged" and mails[0].at == declared_at
        assert kinds.count("scheduled") >= 3 and kinds.count("progress") == 1, kinds
        news = mails[kinds.index("progress")]
        assert news.at == news_at                  # news goes at once
        for before, after in zip(mails, mails[1:]):
            assert after.at <= before.next_update, (email, kinds)   # the promise kept
            if after.kind == "scheduled":          # no news: two thirds of an interval at least
                assert after.at - before.at >= timedelta(seconds=INTERVAL * 2 / 3), (email, kinds)
        assert mails[-1].next_update >= end         # nothing promised is overdue
    assert len({m.message_id for m in broker.relay.mails}) == len(broker.relay.mails)


async def test_after_news_stating_a_sooner_time_the_holding_update_still_waits_two_thirds_of_an_interval(broker):
    # an operator's next update 27 s after the news, on a 30 s interval, for one worker's 200
    # contacts: the queue (at the sender's prior rate) would start their holding updates 18 s after
    # it; they wait for 20 s (two thirds of the interval) and still keep the promise
    interval = 30
    customers = audience(100)
    await start(broker, customers, workers=1)
    declare(broker, "inc-1", update_interval_seconds=interval)
    await broker.pump()
    await broker.advance(2)
    news_at = broker.clock()
    promised = news_at + timedelta(seconds=27)
    broker.produce("incident-events", "inc-1", updated("inc-1", "inc-1-u1", at=broker.at(), status="identified",
                                                       next_update_at=promised.isoformat()))
    await broker.pump()
    await broker.advance(28)

    for email in contacts(*customers):
        kinds = [(m.kind, m.at) for m in sorted(broker.relay.to(email), key=lambda m: m.at)]
        assert [k for k, _ in kinds] == ["acknowledged", "progress", "scheduled"], (email, kinds)
        (_, news), (_, holding) = kinds[1:]
        assert news == news_at and news + timedelta(seconds=interval * 2 / 3) <= holding <= promised, (email, kinds)


async def test_a_ticket_is_acknowledged_at_once_and_closed_out_when_the_incident_is_resolved(broker):
    customers = audience(4)
    await start(broker, customers)
    declare(broker, "inc-1")
    await broker.pump()
    owner = customers[1]["customer_id"]
    asked_at = broker.clock()
    broker.produce("ticket-events", "T-1", ticket("T-1", owner, "help@client.example", at=broker.at(),
                                                  components=["api"]))
    await broker.pump()

    (ack,) = broker.relay.to("help@client.example")
    assert ack.kind == "ticket-ack" and ack.incident == "inc-1" and ack.at == asked_at
    (linked,) = broker.read("ticket-updates")
    assert (linked["ticket_id"], linked["incident_id"], linked["action"]) == ("T-1", "inc-1", "linked")

    await broker.advance(30)
    broker.produce("incident-events", "inc-1", resolved("inc-1", "inc-1-r", at=broker.at()))
    await broker.pump()
    updates = broker.read("ticket-updates")
    assert [(u["ticket_id"], u["action"]) for u in updates] == [("T-1", "linked"), ("T-1", "incident-resolved")]
    assert [m.kind for m in broker.relay.to("help@client.example")] == ["ticket-ack", "resolved"]
    assert Counter(broker.relay.recipients(kind="resolved")) == Counter(contacts(*customers) + ["help@client.example"])
    assert broker.read("dead-letters") == []


async def test_a_worker_killed_mid_round_leaves_exactly_the_owed_notices_to_the_other(broker):
    customers = audience(40)
    victim, survivor = await start(broker, customers)
    victim.mailer.stall(after=5)   # five notices go, then the replies stop: sends under way
    declare(broker, "inc-1")
    await broker.pump()
    in_flight = [m.rcpt for m in victim.mailer.in_flight]
    assert 0 < len(in_flight) <= broker.settings.smtp_concurrency
    reached_before = Counter(broker.relay.recipients())
    assert len(reached_before) < len(contacts(*customers))    # mid round

    await broker.kill(victim)
    await broker.rebalance()
    assert survivor.held == set(range(broker.partitions))
    await broker.pump()

    reached = Counter(broker.relay.recipients(incident="inc-1"))
    assert sorted(reached) == contacts(*customers)            # every affected contact
    repeated = sorted(email for email, n in reached.items() if n > 1)
    assert repeated == sorted(in_flight) and max(reached.values()) == 2   # only the sends under way
    # the ledger says each contact was reached once: the next round repeats nothing
    await broker.advance(INTERVAL + 5)
    assert Counter(broker.relay.recipients(kind="scheduled")) == Counter(contacts(*customers))


async def test_a_worker_joining_mid_round_repeats_nothing(broker):
    customers = audience(40)
    first, second = await start(broker, customers)
    first.mailer.stall(after=5)
    declare(broker, "inc-1")
    await broker.pump()
    assert first.mailer.in_flight
    third = broker.worker("w2")
    rebalancing = asyncio.create_task(broker.rebalance())   # the revocation waits for the sends under way
    await broker.pump()
    assert not rebalancing.done()
    first.mailer.release()
    await rebalancing
    assert {p for w in (first, second, third) for p in w.held} == set(range(broker.partitions)) and third.held
    await broker.pump()
    assert sorted(broker.relay.recipients(incident="inc-1")) == contacts(*customers)   # each exactly once


async def test_a_duplicate_incident_event_changes_nothing(broker):
    customers = audience(6)
    await start(broker, customers)
    event = declared("inc-1", at=broker.at(), update_interval_seconds=INTERVAL)
    broker.produce("incident-events", "inc-1", event)
    broker.produce("incident-events", "inc-1", event)          # delivered twice at once
    await broker.pump()
    broker.produce("incident-events", "inc-1", event)          # and again later
    await broker.pump()
    update = updated("inc-1", "inc-1-u1", at=broker.at(), message={"en": "Still on it."})
    broker.produce("incident-events", "inc-1", update)
    broker.produce("incident-events", "inc-1", update)
    await broker.pump()

    # no new round: a replay may send the current round again (in case a crash cut it short), the
    # audience agents and the ledger make that safe
    assert {(r["trigger"], r["seq"]) for r in broker.read("rounds")} == {("declared", 1), ("updated", 2)}
    for kind in ("acknowledged", "progress"):
        assert sorted(broker.relay.recipients(kind=kind)) == contacts(*customers)
    assert len(broker.relay.mails) == 2 * len(contacts(*customers))
    assert broker.read("dead-letters") == []


async def test_a_bad_record_is_dead_lettered_with_its_reason_and_the_stream_goes_on(broker):
    customers = audience(4)
    bad_customer = customer("c-bad", services=[API_TOKYO])
    broker.produce("customers", "c-someone-else", bad_customer)   # its key is not its id
    await start(broker, customers)
    broker.relay.refuse(contacts(customers[0])[0])
    broker.produce("incident-events", "inc-bad", b"{not json")
    declare(broker, "inc-1")
    await broker.pump()

    letters = {letter["topic"]: letter for letter in broker.read("dead-letters")}
    assert set(letters) == {"t.customers", "t.incident-events", "t.notices"}
    customers_letter = letters["t.customers"]
    assert customers_letter["key"] == "c-someone-else" and "differs from customer_id" in customers_letter["error"]
    bad = letters["t.incident-events"]
    assert (bad["key"], bad["value"], bad["offset"]) == ("inc-bad", "{not json", 0) and "JSON" in bad["error"]
    assert "550" in letters["t.notices"]["error"]
    # the stream went on: every other affected contact got the first notice
    assert sorted(broker.relay.recipients()) == contacts(*customers)[1:]


async def test_an_answer_to_the_resolved_notice_is_recorded_once_per_contact_and_counted_on_every_worker(broker):
    import re
    from datetime import timezone

    from domain.links import verify_feedback
    from streams import topics as T
    from streams.feedback import FeedbackDesk
    from streams.feedback_view import FeedbackView

    customers = audience(3)
    w0, _ = await start(broker, customers)
    declare(broker, "inc-1", severity="critical")
    await broker.pump()
    await broker.advance(30)
    broker.produce("incident-events", "inc-1", resolved("inc-1", "inc-1-r", at=broker.at()))
    await broker.pump()
    notices = [m for m in broker.relay.mails if m.kind == "resolved"]
    assert sorted(m.rcpt for m in notices) == contacts(*customers)
    links = {}
    for mail in notices:
        text = mail.message.get_body(("plain",)).get_content()
        found = re.findall(r"http://status\.example\.com/feedback/(\S+)\?score=(\d)", text)
        assert [score for _, score in found] == ["1", "2", "3", "4", "5"] and len({t for t, _ in found}) == 1
        link = verify_feedback(broker.settings.signing_key(), found[0][0])
        assert (link.incident_id, link.severity) == ("inc-1", "critical")
        links[mail.rcpt] = found[0][0]
    assert len(set(links.values())) == len(notices)   # one link per contact

    # answered on w0's pages (what streams/web.py routes there), read on w1
    desk = FeedbackDesk(keys=broker.settings.verification_keys(), topic=WorkerTopics(w0, broker.names).feedback,
                        title=lambda incident_id, locale: "", reachable=lambda: True,
                        clock=lambda: broker.clock().astimezone(timezone.utc))
    first, second = sorted(links)[:2]
    for rcpt, score in ((first, b"1"), (second, b"4"), (first, b"5")):   # the first contact changes its mind
        page = await desk.record(links[rcpt], b"score=" + score)
        assert page.status == 200
    assert (await desk.record(links[first][:-2] + "AA", b"score=1")).status == 403
    await broker.pump()
    records = broker.read(T.FEEDBACK)
    assert len(records) == 3 and len({r["feedback_id"] for r in records}) == 2
    view = FeedbackView(bootstrap_servers=["127.0.0.1:9"], topic=broker.names.name(T.FEEDBACK),
                        partitions=broker.partitions)   # as the other worker follows the topic
    view.apply(record for part in broker.log(broker.names.name(T.FEEDBACK)) for record in part)
    assert view.summary("inc-1").as_dict() == {"answers": 2, "mean": 4.5}
    assert broker.read("dead-letters") == []


async def test_an_estimate_or_next_update_already_past_is_dead_lettered_and_the_stream_goes_on(broker):
    customers = audience(2)
    await start(broker, customers)
    declare(broker, "inc-1")
    await broker.pump()
    await broker.advance(5)
    broker.produce("incident-events", "inc-1", updated("inc-1", "u-eta", at=broker.at(), status="identified",
                                                       eta=broker.at(-60)))
    broker.produce("incident-events", "inc-1", updated("inc-1", "u-next", at=broker.at(), status="identified",
                                                       next_update_at=broker.at()))
    eta = broker.clock() + timedelta(hours=2)
    broker.produce("incident-events", "inc-1", updated("inc-1", "u-ok", at=broker.at(), status="identified",
                                                       eta=eta.isoformat()))
    await broker.pump()

    letters = broker.read("dead-letters")
    assert [(d["topic"], d["key"]) for d in letters] == [("t.incident-events", "inc-1")] * 2
    assert [d["error"].split(":")[0] for d in letters] == ["eta", "next_update_at"]
    assert all("must be later than the event's time" in d["error"] for d in letters)
    assert [json.loads(d["value"])["event_id"] for d in letters] == ["u-eta", "u-next"]
    # the stream went on: the valid update is round 2 for every contact, with its estimate
    progress = [m for m in broker.relay.mails if m.kind == "progress"]
    assert sorted(m.rcpt for m in progress) == contacts(*customers)
    assert {(m.seq, m.header("X-Outage-ETA")) for m in progress} == {(2, eta.strftime("%Y-%m-%dT%H:%M:%SZ"))}


def parts(mail) -> tuple[str, str]:
    """The text and the HTML part of ``mail``."""
    text = mail.message.get_body(("plain",)).get_content()
    html = mail.message.get_body(("html",)).get_content()
    return text, html


async def test_taking_longer_than_our_estimate_only_after_one_was_given_and_went_by(broker):
    given = [customer("c-ja", locale="ja", contacts=1, services=[("api", "ap-northeast-1")]),
             customer("c-en", locale="en", contacts=1, services=[("api", "ap-northeast-1")])]
    never = [customer("n-ja", locale="ja", contacts=1, services=[("db", "eu-west-1")]),
             customer("n-en", locale="en", contacts=1, services=[("db", "eu-west-1")])]
    await start(broker, given + never)
    declare(broker, "inc-eta", components=("api",), eta=broker.at(30))
    declare(broker, "inc-none", components=("db",))
    await broker.pump()
    await broker.advance(INTERVAL + 5)              # past the estimate: holding updates, no news

    longer = {"en": "Recovery is taking longer than our earlier estimate",
              "ja": "前回お知らせした見込みより時間を要しております"}
    none_yet = {"en": "We don't have a recovery estimate yet",
                "ja": "復旧の見込み時刻は、現時点では未定です。"}
    for record, incident, says, never_says in [(c, "inc-eta", longer, none_yet) for c in given] + \
                                             [(c, "inc-none", none_yet, longer) for c in never]:
        locale = record["locale"]
        (first, *later) = sorted(broker.relay.to(record["contacts"][0]["email"], incident=incident),
                                 key=lambda m: m.at)
        assert first.kind == "acknowledged" and later and {m.kind for m in later} == {"scheduled"}
        for mail in later:
            for part in parts(mail):
                assert says[locale] in part and never_says[locale] not in part, (record["customer_id"], part)
            assert mail.header("X-Outage-ETA") == "unknown"


@pytest.mark.parametrize("reply_to", [None, "Support <support@example.com>"])
async def test_reply_to_is_on_every_notice_and_invites_a_reply_only_when_set(reply_to):
    async with Broker(reply_to=reply_to) as broker:
        customers = [customer("c-ja", locale="ja", contacts=1, services=[API_TOKYO]),
                     customer("c-en", locale="en", contacts=1, services=[API_TOKYO])]
        await start(broker, customers)
        declare(broker, "inc-1")
        await broker.pump()
        broker.produce("incident-events", "inc-1", updated("inc-1", "inc-1-u1", at=broker.at(), status="identified"))
        await broker.pump()
        broker.produce("incident-events", "inc-1", resolved("inc-1", "inc-1-r", at=broker.at(), message="Fixed."))
        await broker.pump()

        mails = broker.relay.mails
        assert Counter(m.kind for m in mails) == {"acknowledged": 2, "progress": 2, "resolved": 2}
        for mail in mails:
            assert mail.header("Reply-To") == reply_to
            for part in parts(mail):
                invites = "reach our support team" in part or "サポート担当者に届" in part
                assert invites == (reply_to is not None), (mail.kind, part)
                assert ("reply to this email" in part.lower() or "ご返信ください" in part) == (reply_to is not None)


async def open_tickets(broker: Broker, customers: list[dict], component: str = "api", tag: str = "T") -> None:
    for i, c in enumerate(customers):
        broker.produce("ticket-events", f"{tag}-{i}", ticket(f"{tag}-{i}", c["customer_id"], f"dev{i}@client.example",
                                                             at=broker.at(), components=[component]))
        await broker.advance(5)


async def test_five_tickets_from_five_customers_about_one_component_make_one_signal_two_make_none(broker):
    from streams import metrics as M
    from streams import topics as T

    customers = audience(8)
    w0, w1 = await start(broker, customers)
    before = M.POSSIBLE_INCIDENTS._value.get()
    first_at = broker.clock()
    await open_tickets(broker, customers[:5])
    await open_tickets(broker, customers[5:6], tag="U")       # a sixth ticket in the same window
    await open_tickets(broker, customers[:2], component="db")  # two about another component
    # the tickets went through both workers, their mentions to the one holding the component
    requests = broker.log(broker.names.name(T.TICKET_REQUESTS))
    assert sum(1 for p in w0.held for _ in requests[p]) and sum(1 for p in w1.held for _ in requests[p])

    (signal,) = broker.read(T.SIGNALS)
    assert {k: signal[k] for k in ("type", "component", "region", "tickets", "customers", "window_seconds")} == {
        "type": "possible-incident", "component": "api", "region": "ap-northeast-1", "tickets": 5, "customers": 5,
        "window_seconds": 600}
    assert signal["first_at"] == first_at.isoformat().replace("+00:00", "Z")
    keys = [k for part in broker.log(broker.names.name(T.SIGNALS)) for k, _ in part]
    assert keys == [b"api"]
    assert M.POSSIBLE_INCIDENTS._value.get() - before == 1
    assert broker.read("dead-letters") == [] and broker.relay.mails == []   # no incident: nobody is emailed


async def test_tickets_about_a_component_an_active_incident_covers_make_no_signal(broker):
    from streams import topics as T

    customers = audience(6)
    await start(broker, customers)
    declare(broker, "inc-1", components=("api",), regions=("ap-northeast-1",))
    await broker.pump()
    await open_tickets(broker, customers)
    assert broker.read(T.SIGNALS) == []
    assert len(broker.relay.recipients(kind="ticket-ack")) == 6      # each was answered as the incident's
    # resolved: tickets after it are a new surge (the ones it explained do not count)
    broker.produce("incident-events", "inc-1", resolved("inc-1", "inc-1-r", at=broker.at()))
    await broker.pump()
    await open_tickets(broker, customers[:4], tag="V")
    assert broker.read(T.SIGNALS) == []
    await open_tickets(broker, customers[4:5], tag="W")
    (signal,) = broker.read(T.SIGNALS)
    assert (signal["tickets"], signal["customers"]) == (5, 5)
