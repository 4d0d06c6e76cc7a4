"""The sender's runtime contract, with the in-memory mailer (the real SMTP path is covered by
the integration tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import datetime, timedelta, timezone

import pytest

from domain import ledger as L
from domain.audience import plan_round, refresh
from domain.affected import CustomerIndex
from domain.incident import decide, keep_promise
from core.vocabulary import SCHEDULED
from notifiers.smtp import MemoryMailer, SendResult
from schemas import Customer, IncidentEvent
from streams.sender import Sender

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)


def customers(emails: list[str]) -> list[Customer]:
    return [Customer.model_validate({"customer_id": f"c-{i}", "name": f"C{i}", "contacts": [{"email": e}],
                                     "services": [{"component": "api", "region": "r1"}]})
            for i, e in enumerate(emails)]


def jobs_for(cs: list[Customer], incident: str = "inc-1", scheduled: bool = False, interval: int = 600):
    index = CustomerIndex()
    for c in cs:
        index.put(c.customer_id, [("api", "r1")])
    event = IncidentEvent.model_validate({
        "event_id": f"e-{incident}", "incident_id": incident, "type": "declared", "at": T0.isoformat(),
        "severity": "major", "title": "X", "components": ["api"], "update_interval_seconds": interval})
    state = decide(None, event, T0).state
    rnd = decide(None, event, T0).round
    if scheduled:
        rnd = keep_promise(state, state.promised_at, state.promised_at).round
    lookup = {c.customer_id: c for c in cs}.get
    return plan_round(rnd, index, lookup, lambda cid: None, [], "example.com")


def lazy_plan(jobs, drawn: list):
    """What a RoundPlan offers the sender: ``jobs`` one at a time, each noted in ``drawn`` as it
    is drawn."""

    class Plan:
        round = jobs[0].round

        def __iter__(self):
            for job in jobs:
                drawn.append(job)
                yield job

    return Plan()


class Harness:
    def __init__(self, mailer=None, **kw):
        self.mailer = mailer or MemoryMailer()
        self.ledger: dict[str, dict] = {}
        self.dead: list[tuple[str, str]] = []
        self.sender = Sender(mailer=self.mailer, mail_from="s@example.com", compose=lambda job, now: job.message_id.encode(),
                             record=self.record, refresh=self.refresh, dead_letter=self.dead_letter,
                             clock=lambda: T0, rng=random.Random(1), **kw)

    async def record(self, job, p, at):
        self.ledger[job.customer_id] = L.record_sent(self.ledger.get(job.customer_id), incident_id=job.incident_id,
                                                     recipient=job.recipient, email=job.email,
                                                     message_id=job.message_id, kind=job.kind, seq=job.seq)

    def refresh(self, job, p=0):
        return refresh(job, self.ledger.get(job.customer_id), "example.com")

    async def dead_letter(self, job, reason):
        self.dead.append((job.email, reason))


def gated_harness(concurrency: int, **kw) -> tuple[Harness, asyncio.Event]:
    """A harness whose every send waits until the returned event is set (``kw``: the sender's)."""
    gate = asyncio.Event()

    async def send(mail_from, rcpt, data):
        await gate.wait()
        return SendResult("accepted", 250, "OK")

    mailer = MemoryMailer()
    mailer.send = send
    return Harness(mailer, concurrency=concurrency, **kw), gate


def first_send_held_harness() -> tuple[Harness, list[str], asyncio.Event]:
    """One connection; the first send waits for the returned event; ``order`` lists recipients
    in the order their sends began."""
    order: list[str] = []
    release = asyncio.Event()

    async def send(mail_from, rcpt, data):
        order.append(rcpt)
        if len(order) == 1:
            await release.wait()
        return SendResult("accepted", 250, "OK")

    mailer = MemoryMailer()
    mailer.send = send
    return Harness(mailer, concurrency=1), order, release


async def wait_for(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_every_job_sent_once_and_batch_done_once():
    h = Harness(concurrency=4)
    done = []
    jobs = jobs_for(customers([f"u{i}@a{i % 3}.example.com" for i in range(30)]))
    await h.sender.submit(jobs, 0, on_done=lambda: done.append(1))
    await h.sender.submit(jobs, 0, on_done=lambda: done.append(2))  # the same round again
    await wait_for(lambda: len(done) == 2)
    await h.sender.stop()
    assert sorted(m.rcpt for m in h.mailer.sent) == sorted(j.email for j in jobs)


async def test_a_replayed_plan_is_finished_only_when_the_jobs_it_found_queued_are():
    # a round replayed while its notices are still under way (a redelivered incident event
    # sends its round again) must not count as finished before they are: it was marked done,
    # a rebalance dropped the queued notices, and the partition's next owner sent none of them
    h, gate = gated_harness(concurrency=3)
    first, replay = [], []
    jobs = jobs_for(customers(["a@d1.example.com", "b@d2.example.com"]))
    await h.sender.submit(jobs, 0, on_done=lambda: first.append(True))
    await wait_for(lambda: h.sender.pending_in([0]) == 2)
    await h.sender.submit(list(jobs), 0, on_done=lambda: replay.append(True))
    await asyncio.sleep(0.05)            # the third connection has drawn the replay whole
    assert not replay and not first
    gate.set()
    await wait_for(lambda: first and replay)
    await h.sender.stop()
    assert sorted(h.ledger) == sorted(j.customer_id for j in jobs)   # each sent (and recorded) once


async def test_a_replayed_plan_whose_queued_jobs_are_dropped_is_not_finished():
    h, gate = gated_harness(concurrency=3, domain_concurrency=1)   # one in flight, two parked
    replay = []
    jobs = jobs_for(customers([f"u{i}@one.example.com" for i in range(3)]))
    await h.sender.submit(jobs, 0)
    await wait_for(lambda: h.sender.pending_in([0]) == 3)
    await h.sender.submit(list(jobs), 0, on_done=lambda: replay.append(True))
    await asyncio.sleep(0.05)            # drawn whole: every job of it queued already
    holding = asyncio.create_task(h.sender.hold([0], timeout=5))
    await asyncio.sleep(0.05)
    gate.set()
    assert await holding
    h.sender.drop([0])                   # the partition went elsewhere: two of its notices unsent
    await asyncio.sleep(0.05)
    assert len(h.ledger) == 1 and not replay   # so the replayed round is not finished here
    await h.sender.stop()


async def test_earliest_deadline_first():
    h, order, release = first_send_held_harness()
    blocker = jobs_for(customers(["first@x.example.com"]), incident="inc-0")
    late = jobs_for(customers(["ack@x.example.com"]), incident="inc-a")                      # due: as soon as possible
    due = jobs_for(customers(["promise@x.example.com"]), incident="inc-b", scheduled=True, interval=60)
    await h.sender.submit(blocker, 0)
    await wait_for(lambda: order)
    await h.sender.submit(late, 0)
    await h.sender.submit(due, 0)
    release.set()
    await wait_for(lambda: len(order) == 3)
    await h.sender.stop()
    # the declared round (decided at T0) is due before the kept promise (T0 + 60 s)
    assert order == ["first@x.example.com", "ack@x.example.com", "promise@x.example.com"]


async def test_holding_updates_leave_earliest_deadline_first_across_the_lists_they_came_in():
    # a list's place among the queued sources is its next job's deadline, not its first one's:
    # a pass releasing holding updates on two partitions had one list drawn whole before the
    # other, whose contacts were due earlier
    h, order, release = first_send_held_harness()
    await h.sender.submit(jobs_for(customers(["first@x.example.com"]), incident="inc-0"), 0)
    await wait_for(lambda: order)
    base = T0.timestamp() + 600

    def holding(partition: int, dues: list[int]):
        cs = [Customer.model_validate({"customer_id": f"p{partition}-{d}", "name": "C",
                                       "contacts": [{"email": f"p{partition}-{d}@x.example.com"}],
                                       "services": [{"component": "api", "region": "r1"}]}) for d in dues]
        jobs = jobs_for(cs, incident=f"inc-{partition}", scheduled=True)
        return sorted((dataclasses.replace(j, kind=SCHEDULED, due=base + int(j.customer_id.split("-")[1]))
                       for j in jobs), key=lambda j: -j.due)   # not in order: the sender sorts a list

    await h.sender.submit(holding(1, [1, 3, 5, 7]), 1)
    await h.sender.submit(holding(2, [2, 4, 6, 8]), 2)
    release.set()
    await wait_for(lambda: len(order) == 9)
    await h.sender.stop()
    assert order[1:] == [f"p{1 + (d + 1) % 2}-{d}@x.example.com" for d in range(1, 9)], order


async def test_a_slow_domain_does_not_take_every_connection():
    gate = asyncio.Event()
    sent = []

    async def send(mail_from, rcpt, data):
        if rcpt.endswith("@slow.example.com"):
            await gate.wait()
        sent.append(rcpt)
        return SendResult("accepted", 250, "OK")

    mailer = MemoryMailer()
    mailer.send = send
    h = Harness(mailer, concurrency=4)
    await h.sender.submit(jobs_for(customers([f"s{i}@slow.example.com" for i in range(20)])), 0)
    await h.sender.submit(jobs_for(customers(["fast@other.example.com"]), incident="inc-2"), 1)
    await wait_for(lambda: "fast@other.example.com" in sent)   # while the slow domain is stuck
    gate.set()
    await wait_for(lambda: len(sent) == 21)
    await h.sender.stop()


async def test_temporary_failures_stay_owed_and_permanent_ones_are_dead_lettered():
    h = Harness(concurrency=2, retry_max_delay=0.05)
    h.mailer.fail_next("flaky@example.com", times=3)
    h.mailer.refuse("gone@example.com")
    done = []
    jobs = jobs_for(customers(["flaky@example.com", "gone@example.com", "ok@example.com"]))
    await h.sender.submit(jobs, 0, on_done=lambda: done.append(True))
    await wait_for(lambda: done, timeout=10)
    await h.sender.stop()
    assert sorted(m.rcpt for m in h.mailer.sent) == ["flaky@example.com", "ok@example.com"]
    assert [c.rcpt for c in h.mailer.calls].count("flaky@example.com") == 4
    assert [e for e, _ in h.dead] == ["gone@example.com"] and "550" in h.dead[0][1]


async def test_give_up_after_the_age_limit():
    h = Harness(concurrency=1, retry_max_delay=0.01, give_up_seconds=0.05)
    h.mailer.fail_next("down@example.com", times=1000)
    done = []
    await h.sender.submit(jobs_for(customers(["down@example.com"])), 0, on_done=lambda: done.append(True))
    await wait_for(lambda: done, timeout=10)
    await h.sender.stop()
    assert h.dead and "temporary" in h.dead[0][1]


async def test_hold_waits_for_sends_under_way_and_drop_gives_up_the_rest_unfinished():
    h, gate = gated_harness(concurrency=2)
    done = []
    await h.sender.submit(jobs_for(customers([f"u{i}@d{i}.example.com" for i in range(10)])), 3,
                          on_done=lambda: done.append(True))
    await wait_for(lambda: h.sender.pending_in([3]) == 10)
    holding = asyncio.create_task(h.sender.hold([3], timeout=5))
    await asyncio.sleep(0.05)
    assert not holding.done()                    # it waits for the two in flight ...
    gate.set()
    assert await holding
    await asyncio.sleep(0.05)
    assert len(h.ledger) == 2                    # ... and nothing more is sent while held
    h.sender.drop([3])
    assert h.sender.pending_in([3]) == 0 and not done   # the rest is left to the partition's next owner
    assert len(h.ledger) == 2 and h.sender.held() == set()
    await h.sender.stop()


async def test_held_jobs_resume_where_they_stopped():
    h, gate = gated_harness(concurrency=2)
    done = []
    jobs = jobs_for(customers([f"u{i}@d{i}.example.com" for i in range(10)]))
    await h.sender.submit(jobs, 3, on_done=lambda: done.append(True))
    holding = asyncio.create_task(h.sender.hold([3], timeout=5))
    await asyncio.sleep(0.05)
    gate.set()
    await holding
    await asyncio.sleep(0.05)
    assert len(h.ledger) == 2
    await h.sender.resume([3])
    await wait_for(lambda: done)
    await h.sender.stop()
    assert sorted(h.ledger) == sorted(j.customer_id for j in jobs)


async def test_a_plan_submitted_while_its_partition_is_held_waits_for_resume():
    h = Harness(concurrency=2)
    await h.sender.hold([1])
    done = []
    await h.sender.submit(jobs_for(customers(["a@x.example.com"])), 1, on_done=lambda: done.append(1))
    await asyncio.sleep(0.05)
    assert not h.ledger
    await h.sender.resume([1])
    await wait_for(lambda: done)
    await h.sender.stop()


async def test_a_lazy_plan_is_drawn_from_only_as_connections_free_up():
    h, gate = gated_harness(concurrency=2)
    jobs = jobs_for(customers([f"u{i}@d{i}.example.com" for i in range(1000)]))
    drawn = []
    done = []
    await h.sender.submit(lazy_plan(jobs, drawn), 0, on_done=lambda: done.append(True), size=lambda: len(jobs) - len(drawn))
    await wait_for(lambda: len(drawn) == 2)
    await asyncio.sleep(0.05)
    assert len(drawn) == 2, "the sender drew more jobs than it had connections for"
    assert h.sender.depth == 1000
    gate.set()
    await wait_for(lambda: done)
    await h.sender.stop()
    assert len(h.ledger) == 1000 and len(done) == 1


async def test_a_round_due_earlier_overtakes_the_rest_of_a_big_one():
    h, order, release = first_send_held_harness()
    big = jobs_for(customers([f"u{i}@x.example.com" for i in range(50)]), incident="inc-big", scheduled=True)
    await h.sender.submit(big, 0)
    await wait_for(lambda: order)
    urgent = jobs_for(customers(["urgent@y.example.com"]), incident="inc-new")   # declared: due at once
    await h.sender.submit(urgent, 1)
    release.set()
    await wait_for(lambda: len(order) == 51)
    await h.sender.stop()
    assert order[1] == "urgent@y.example.com"


def test_the_send_rate_counts_busy_time_only():
    from domain.schedule import SendRate

    now = [0.0]
    rate = SendRate(prior=50.0, clock=lambda: now[0])
    assert (rate.value, rate.measured) == (50.0, False)
    rate.busy()
    for i in range(900):                 # 200 emails/s while there is work
        now[0] += 0.005
        rate.tick()
        if i == 700:
            assert not rate.measured     # the warm-up window alone does not make it measured (3.5 s so far)
    assert rate.measured and rate.value == pytest.approx(200.0, rel=0.05)
    rate.idle()
    now[0] += 3600                       # an idle hour ...
    rate.busy()
    for _ in range(900):
        now[0] += 0.005
        rate.tick()
    assert rate.value == pytest.approx(200.0, rel=0.05)   # ... is not a slow hour


def test_a_slow_start_does_not_count_once_the_rate_is_steady():
    from domain.schedule import SendRate

    now = [0.0]
    rate = SendRate(prior=50.0, clock=lambda: now[0])
    rate.busy()
    for _ in range(40):                  # ramping up: 20 emails/s for 2 s
        now[0] += 0.05
        rate.tick()
    assert not rate.measured
    for _ in range(2000):                # then 500 emails/s
        now[0] += 0.002
        rate.tick()
    assert rate.measured and rate.value == pytest.approx(500.0, rel=0.05)


def test_a_short_burst_is_measured_whole_and_a_single_email_is_not():
    from domain.schedule import SendRate

    now = [0.0]
    rate = SendRate(prior=50.0, clock=lambda: now[0])
    rate.busy()
    now[0] += 1.5
    rate.tick()                          # one slow email: says nothing of the rate
    rate.idle()
    assert not rate.measured and rate.value == 50.0
    rate.busy()
    for _ in range(300):                 # 300 emails in 1.5 s, then nothing more to send
        now[0] += 0.005
        rate.tick()
    rate.idle()
    assert rate.measured and rate.value == pytest.approx(200.0, rel=0.05)


async def test_a_plan_that_breaks_does_not_stop_the_sender():
    h = Harness(concurrency=1)
    jobs = jobs_for(customers(["a@x.example.com", "b@x.example.com"]))

    class Broken:
        round = jobs[0].round

        def __iter__(self):
            yield jobs[0]
            raise RuntimeError("bug")

    done = []
    await h.sender.submit(Broken(), 0, on_done=lambda: done.append("broken"))
    await h.sender.submit(jobs_for(customers(["c@y.example.com"]), incident="inc-2"), 1,
                          on_done=lambda: done.append("next"))
    await wait_for(lambda: len(done) == 2)
    await h.sender.stop()
    assert sorted(m.rcpt for m in h.mailer.sent) == ["a@x.example.com", "c@y.example.com"]


async def test_the_queue_gauge_reads_zero_once_a_plan_that_estimated_more_is_exhausted():
    """``outage_send_queue_depth`` counts a lazy plan's estimate of what is left; a candidate may
    yield nothing (a customer deleted since its last notice): once the plan is found exhausted the
    gauge reads 0, not the estimate left over (the integration tests wait for it to read 0)."""
    from streams import metrics as M

    h = Harness(concurrency=1)
    jobs = jobs_for(customers(["a@x.example.com"]))
    drawn = []                                     # two candidates (the size below), one notice
    done = []
    await h.sender.submit(lazy_plan(jobs, drawn), 0, on_done=lambda: done.append(True), size=lambda: 2 - len(drawn))
    await wait_for(lambda: done)
    gauge = M.REGISTRY.get_sample_value("outage_send_queue_depth")
    await h.sender.stop()
    assert [m.rcpt for m in h.mailer.sent] == ["a@x.example.com"]
    assert h.sender.depth == 0 and gauge == 0


def recording(h: Harness) -> list[tuple[str, str, int]]:
    """(email, kind, seq) of every notice ``h``'s sender records, in order."""
    sent: list[tuple[str, str, int]] = []
    record = h.record

    async def recorded(job, p, at):
        sent.append((job.email, job.kind, job.seq))
        await record(job, p, at)

    h.sender._record = recorded
    return sent


async def test_a_newer_round_replaces_the_queued_one_and_each_contact_is_acknowledged_once():
    h, gate = gated_harness(concurrency=2)
    sent = recording(h)
    cs = customers([f"u{i}@d{i}.example.com" for i in range(10)])
    first = jobs_for(cs)
    second = jobs_for(cs, scheduled=True)             # the holding update, decided before the first is out
    old_done = []
    assert await h.sender.submit(first, 0, key=("inc-1", 1), on_done=lambda: old_done.append(1))
    await wait_for(lambda: sum(h.sender._in_flight.values()) == 2)   # two sends of the first round under way
    assert await h.sender.submit(second, 0, key=("inc-1", 2))
    assert not await h.sender.submit(second, 0, key=("inc-1", 2))   # queued once
    gate.set()
    await wait_for(lambda: len(sent) == 12)
    await asyncio.sleep(0.05)
    await h.sender.stop()
    acks = [e for e, kind, _ in sent if kind == "acknowledged"]
    assert sorted(acks) == sorted(c.contacts[0].email for c in cs)    # one acknowledgement each
    acknowledged_first = sorted(e for e, kind, seq in sent if kind == "acknowledged" and seq == 1)
    assert len(acknowledged_first) == 2                 # the two in flight when the newer round came ...
    assert sorted(e for e, kind, _ in sent if kind == "scheduled") == acknowledged_first  # ... get its own kind
    assert not old_done                                 # the replaced round never counts as finished


async def test_refresh_drops_a_job_a_newer_round_has_reached():
    h = Harness(concurrency=1)
    cs = customers(["a@x.example.com"])
    newer = jobs_for(cs, scheduled=True)[0]
    await h.record(newer, 0, T0)
    older = jobs_for(cs)[0]
    assert refresh(older, h.ledger[cs[0].customer_id], "example.com") is None


async def test_a_job_for_a_recipient_whose_send_is_under_way_waits_for_its_outcome():
    h, gate = gated_harness(concurrency=4)
    sent = recording(h)
    cs = customers(["a@x.example.com"])
    await h.sender.submit(jobs_for(cs), 0, key=("inc-1", 1))
    await wait_for(lambda: sum(h.sender._in_flight.values()) == 1)
    await h.sender.submit(jobs_for(cs, scheduled=True), 0, key=("inc-1", 2))   # free connections left
    await asyncio.sleep(0.05)
    assert sum(h.sender._in_flight.values()) == 1       # the second waits for the first's outcome
    gate.set()
    await wait_for(lambda: len(sent) == 2)
    await h.sender.stop()
    assert sent == [("a@x.example.com", "acknowledged", 1), ("a@x.example.com", "scheduled", 2)]


async def test_an_unreachable_server_pauses_every_send_instead_of_trying_each_queued_job():
    down = [True]

    def responder(mail_from, rcpt, data):
        return SendResult("temporary", None, "connection refused") if down[0] else None

    h = Harness(MemoryMailer(responder=responder), concurrency=4)
    done = []
    jobs = jobs_for(customers([f"u{i}@d{i % 7}.example.com" for i in range(200)]))
    await h.sender.submit(jobs, 0, on_done=lambda: done.append(1))
    await asyncio.sleep(1.0)
    tries = len(h.mailer.calls)
    assert 0 < tries <= 3 * 4, f"{tries} tries of 200 queued jobs in a second while the server is down"
    down[0] = False
    await wait_for(lambda: done, timeout=15)
    await h.sender.stop()
    assert sorted(m.rcpt for m in h.mailer.sent) == sorted(j.email for j in jobs)


async def test_one_domain_at_its_cap_is_not_drawn_whole_into_memory_and_its_notices_count_as_owed():
    from streams.sender import PARK_LIMIT

    h, gate = gated_harness(concurrency=4)
    n = PARK_LIMIT + 500
    jobs = jobs_for(customers([f"u{i}@one.example.com" for i in range(n)]))
    drawn = []
    await h.sender.submit(lazy_plan(jobs, drawn), 0, size=lambda: n - len(drawn))
    await asyncio.sleep(0.1)
    assert len(drawn) <= PARK_LIMIT + 4          # the in-flight sends and the parked ones, not all
    assert h.sender.drawn_for("inc-1") == len(drawn) and h.sender.depth == n
    gate.set()
    await wait_for(lambda: len(h.ledger) == n, timeout=20)
    await h.sender.stop()
    assert h.sender.drawn_for("inc-1") == 0


async def test_the_pause_grows_by_one_step_per_pause_not_per_send_that_failed_with_it():
    down = [True]

    def responder(mail_from, rcpt, data):
        return SendResult("temporary", None, "connection refused") if down[0] else None

    h = Harness(MemoryMailer(responder=responder), concurrency=8)
    done = []
    await h.sender.submit(jobs_for(customers([f"u{i}@d{i}.example.com" for i in range(40)])), 0,
                          on_done=lambda: done.append(1))
    await asyncio.sleep(2.5)                  # 8 sends fail at once, then a pause or two
    assert h.sender._unreachable <= 3, "eight sends failing together counted as eight steps"
    down[0] = False
    await wait_for(lambda: done, timeout=10)  # back within a few seconds, not a minute
    await h.sender.stop()


async def test_the_senders_lines_name_the_incident_and_round_of_the_notice():
    """In the JSON log format, a line the sender writes about a notice (here: not delivered yet,
    retrying) carries that notice's incident and round (core/logs.py, set around each send)."""
    import io
    import json
    import logging

    from core.logs import JsonFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("streams.sender")
    logger.addHandler(handler)
    try:
        h = Harness(concurrency=1, retry_max_delay=0.01)
        h.mailer.fail_next("flaky@example.com", times=1)
        done = []
        await h.sender.submit(jobs_for(customers(["flaky@example.com"]), incident="inc-logs"), 0,
                              on_done=lambda: done.append(True))
        await wait_for(lambda: done, timeout=10)
        await h.sender.stop()
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    retried = [line for line in lines if "not delivered yet" in line["message"]]
    assert retried and all(line.get("incident") == "inc-logs" and line.get("round") == 1 for line in retried)


async def test_nothing_is_sent_before_the_gate_opens():
    """``gate`` (the suppressed addresses read first, streams/assembly.py) is awaited before each send."""
    opened = asyncio.Event()
    h = Harness(concurrency=2, gate=opened.wait)
    done = []
    await h.sender.submit(jobs_for(customers(["a@example.com", "b@example.com"])), 0, on_done=lambda: done.append(True))
    await asyncio.sleep(0.2)
    assert h.mailer.sent == [] and not done
    opened.set()
    await wait_for(lambda: done, timeout=5)
    await h.sender.stop()
    assert sorted(m.rcpt for m in h.mailer.sent) == ["a@example.com", "b@example.com"]
