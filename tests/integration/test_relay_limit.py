"""The promise at the relay's limit (issue 14): a deadline per contact, sent earliest first.

A worker capped at ``OUTAGE_SMTP_RATE`` messages a second (the pacer is the relay's limit here,
so the test does not depend on this machine's speed) and an audience that the rate carries a
known number of times per interval:
- 1.3 times: every promise kept over three intervals with one pass of the audience per interval,
  and no holding update less than two thirds of an interval after the contact's previous notice;
- twice (400 contacts, a 20 s interval, 40/s): the same, and no second over 40 at the server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.integration.faults_kit import (  # noqa: F401 - faulty is a fixture
    busiest_second, declare_event, emails_of, faulty, load_customers, make_customers, parse_time,
    promises_kept, reached, ready, smtp_env, spans, until, utc_now,
)

pytestmark = pytest.mark.integration

RATE = 40          # messages a second the worker may hand over
INTERVAL = 20      # s
INTERVALS = 3      # watched


@pytest.mark.timeout(240)
@pytest.mark.parametrize("capacity", [2.0, 1.3])
async def test_one_pass_per_interval_keeps_every_promise_at_the_relays_limit(capacity, workers, faulty, broker,
                                                                              prefix):
    contacts = int(RATE * INTERVAL / capacity)    # 400 at twice, 615 at 1.3 times per interval
    customers = make_customers(contacts, tag=f"r{int(capacity * 10)}")
    expected = emails_of(customers)
    load_customers(broker.bootstrap, prefix, customers)
    server = faulty()
    worker = workers({**smtp_env(server.serve()), "OUTAGE_SMTP_RATE": str(RATE)}, ready=False)
    await ready(worker)
    event = declare_event(worker, update_interval_seconds=INTERVAL)
    incident, declared = event["incident_id"], parse_time(event["at"])
    assert await until(lambda: reached(server, incident) >= contacts, INTERVAL * 2, poll=0.25), \
        f"only {reached(server, incident)} of {contacts} acknowledged"
    watch_until = declared + timedelta(seconds=INTERVAL * INTERVALS + 5)
    await asyncio.sleep(max(0.0, (watch_until - utc_now()).total_seconds()))
    judged = promises_kept(server, incident, INTERVAL, until_=watch_until - timedelta(seconds=2))
    mails = server.received(incident)
    holding = sum(1 for m in mails if m.kind == "scheduled")
    print(f"\n[{incident}] {contacts} contacts at {RATE}/s, {INTERVAL}s interval ({capacity}x): {judged.summary()}; "
          f"{holding} holding updates; busiest second {busiest_second(server, incident)}; "
          f"{spans(server, incident, declared)}")

    assert set(server.by_recipient(incident)) == expected
    assert judged.repeats == 0, f"{judged.repeats} emails repeated"
    assert not judged.missed, f"{len(judged.missed)} promises missed: {judged.summary()}"
    assert not judged.close, f"{len(judged.close)} holding updates came too soon: {judged.summary()}"
    # one pass of the audience per interval: at most one holding update per contact per interval watched
    assert holding <= contacts * INTERVALS, f"{holding} holding updates: more than one pass per interval"
    assert busiest_second(server, incident) <= RATE, "more messages in one second than OUTAGE_SMTP_RATE"
