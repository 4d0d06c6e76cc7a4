"""Per-contact deadlines (domain/deadlines.py): the rules, the index, and the policy run list-in,
list-out against a relay that carries a set number of emails a second."""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta, timezone

import pytest

from domain.deadlines import (EARLIEST_SHARE, MAX_STRETCH, QUEUE_HEADROOM, LAST_SHARE, DeadlineIndex,
                              capacity_ratio, earliest_release, latest_start, look_ahead, release_at, stated_promise,
                              SHORT_TARGET, stretch)

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def test_a_news_notice_promises_one_interval_after_it_is_sent():
    at = T0 + timedelta(seconds=42)
    assert stated_promise("acknowledged", now=at, interval=MIN, keeps=None) == at + MIN
    assert stated_promise("progress", now=at, interval=MIN, keeps=T0) == at + MIN
    explicit = T0 + timedelta(minutes=30)
    assert stated_promise("progress", now=at, interval=MIN, keeps=None, explicit=explicit) == explicit
    # an explicit time already gone (or about to go) is not stated
    assert stated_promise("progress", now=at, interval=MIN, keeps=None, explicit=at + timedelta(seconds=2),
                          margin=timedelta(seconds=5)) == at + MIN


def test_a_notice_reaching_a_contact_just_after_its_round_promises_its_own_interval():
    # not the round's own promise (the round's time plus one interval), a few seconds sooner
    at = T0 + timedelta(seconds=3)
    five = timedelta(seconds=5)
    assert stated_promise("acknowledged", now=at, interval=MIN, keeps=None, margin=five) == at + MIN
    assert stated_promise("acknowledged", now=at, interval=MIN, keeps=None, margin=five,
                          factor=1.5) == at + MIN * 1.5       # stretched


def test_acknowledgements_sent_together_have_deadlines_no_denser_than_they_were_sent():
    # a scheduled round acknowledges contacts new to the incident before the promise it keeps: each
    # promises one interval after it is sent, so their deadlines are as far apart as their sends
    # (a third of an interval more put them on top of the next deadlines: 53 missed at 1.3 times)
    at = T0 + timedelta(seconds=41)
    later = at + timedelta(seconds=2)
    assert stated_promise("acknowledged", now=at, interval=MIN, keeps=None) == at + MIN
    assert stated_promise("acknowledged", now=later, interval=MIN, keeps=None) - (at + MIN) == later - at


def test_a_holding_update_never_leaves_sooner_than_two_thirds_of_an_interval_after_the_latest_notice():
    # due a third of an interval early at 80 for a deadline at 100 ...
    assert earliest_release(100.0, 60.0, None) == pytest.approx(80.0)
    assert earliest_release(100.0, 60.0, 40.0) == pytest.approx(80.0)     # ... its notice one interval before
    # a promise stated 56 s ahead (a late notice, or one that stated a round's shared time): not before 44 + 40
    assert earliest_release(100.0, 60.0, 44.0) == pytest.approx(84.0)
    # an operator's explicit time 20 s after the notice: in the last sixth of an interval before it
    assert earliest_release(100.0, 60.0, 80.0) == pytest.approx(100.0 - 60.0 * LAST_SHARE)


def test_a_holding_update_promises_one_interval_after_the_deadline_it_keeps():
    keeps = T0 + MIN
    early = keeps - timedelta(seconds=12)
    assert stated_promise("scheduled", now=early, interval=MIN, keeps=keeps) == keeps + MIN
    # late (it should not happen): one interval after it is sent, so the next one, even sent a
    # third of an interval early, comes two thirds of an interval after it
    late = keeps + timedelta(seconds=50)
    assert stated_promise("scheduled", now=late, interval=MIN, keeps=keeps) == late + MIN
    assert stated_promise("scheduled", now=early, interval=MIN, keeps=keeps, factor=1.5) == keeps + MIN * 1.5


def test_release_leaves_room_for_the_queue_but_never_sooner_than_a_third_of_an_interval():
    # the queue ahead and itself at the send rate, with QUEUE_HEADROOM, plus the base margin
    assert release_at(100.0, 60.0, ahead=0, send_rate=10.0, base=1.0) == pytest.approx(100.0 - 1.0 - 0.1 * QUEUE_HEADROOM)
    assert release_at(100.0, 60.0, ahead=49, send_rate=10.0, base=1.0) == pytest.approx(100.0 - 1.0 - 5.0 * QUEUE_HEADROOM)
    assert release_at(100.0, 60.0, ahead=10_000, send_rate=10.0, base=1.0) == pytest.approx(80.0)


def test_stretch_only_when_the_rate_cannot_carry_the_audience_once_per_interval():
    assert stretch(None, 10.0) == 1.0 and capacity_ratio(None, 10.0) is None
    assert stretch(100.0, 50.0) == 1.0 and capacity_ratio(100.0, 50.0) == 2.0
    assert stretch(70.0, 100.0) == pytest.approx(SHORT_TARGET / 0.7)     # a relay already short: more margin
    assert stretch(115.0, 100.0) == 1.0 and stretch(114.0, 100.0) < 1.03   # rising smoothly from 1
    factors = [stretch(r, 100.0) for r in range(120, 60, -1)]
    assert factors == sorted(factors)
    assert stretch(1.0, 1000.0) == MAX_STRETCH           # never a day away for an hourly cadence


def test_the_index_keeps_one_deadline_per_contact_and_finds_the_earliest():
    idx = DeadlineIndex()
    idx.set("c1", "inc", "a", 50.0, 60.0)
    idx.set("c2", "inc", "b", 40.0, 60.0)
    idx.set("c1", "inc", "a", 30.0, 60.0)      # replaces its earlier deadline
    assert len(idx) == 2 and idx.load == pytest.approx(2 / 60)
    top, interval = idx.peek()
    assert (top.customer_id, top.at, interval) == ("c1", 30.0, 60.0)
    assert idx.within(0.0, 45.0) == 2 and idx.within(0.0, 35.0) == 1
    idx.clear("c1", "inc", "a")
    assert idx.peek()[0].customer_id == "c2" and len(idx) == 1
    item = idx.pop()
    assert idx.peek() is None
    idx.restore(item)
    assert idx.peek()[0] == item
    for i in range(5000):                     # stale entries are compacted away
        idx.set("c3", "inc", "x", float(i), 60.0)
    assert len(idx._heap) < 2 * len(idx) + 1100


def simulate(contacts: int, interval: float, rate: float, intervals: int = 5, base: float = 1.0,
             tick: float = 0.25, rate_at=None, plan_at=None, spacing: bool = True):
    """Run the policy against a relay that hands over ``rate`` emails a second (``rate_at(t)``
    when given: the rate at each time, the planning rate staying ``rate``, or ``plan_at(t)`` when
    given: the rate the worker has measured by then): one news round to
    everyone at 0, then holding updates by deadline, for ``intervals`` intervals; ``spacing``:
    each holding update waits for ``earliest_release`` (as streams/holding.py does).
    Returns per contact the list of (sent_at, kind, stated, kept_deadline)."""
    idx = DeadlineIndex()
    queue: list[tuple[float, int, str, str]] = []         # (deadline, order, contact, kind): earliest first
    for c in range(contacts):
        heapq.heappush(queue, (0.0, c, f"c{c}", "acknowledged"))
    sent: dict[str, list] = {f"c{c}": [] for c in range(contacts)}
    deadline: dict[str, float] = {}
    now, credit, order = 0.0, 0.0, contacts
    while now < intervals * interval:
        load = idx.load + sum(kind != "scheduled" for *_, kind in queue) / interval   # the index counts the rest
        planned = plan_at(now) if plan_at else rate
        factor = stretch(planned, load)
        # as streams/holding.py does: the latest start of all that comes due within the look-ahead, then each contact no sooner than a third of an interval before its deadline
        start = latest_start(idx.seconds(now + look_ahead(interval, factor)), ahead=len(queue),
                             send_rate=planned, base=base)
        early = []
        while (top := idx.peek()) is not None:
            item, every = top
            if now < max(item.at - every * factor * EARLIEST_SHARE,
                         min(start, release_at(item.at, every, ahead=len(queue), send_rate=planned, base=base,
                                               factor=factor))):
                break
            idx.pop()
            if spacing and now < idx.earliest(item):
                early.append(item)
                continue
            heapq.heappush(queue, (item.at, order, item.customer_id, "scheduled"))
            order += 1
        for item in early:
            idx.restore(item)
        credit += (rate_at(now) if rate_at else rate) * tick
        while credit >= 1 and queue:
            credit -= 1
            due, _, contact, kind = heapq.heappop(queue)
            at = T0 + timedelta(seconds=now)
            keeps = deadline.get(contact)
            stated = stated_promise(kind, now=at, interval=timedelta(seconds=interval),
                                    keeps=T0 + timedelta(seconds=keeps) if keeps is not None else None,
                                    factor=factor)
            sent[contact].append((now, kind, (stated - T0).total_seconds(), keeps))
            deadline[contact] = (stated - T0).total_seconds()
            idx.set(contact, "inc", "r", deadline[contact], interval, now)
        credit = min(credit, 1.0) if not queue else credit
        now += tick
    return sent


def judge(sent: dict[str, list], interval: float):
    missed = [(c, s, k) for c, notices in sent.items() for s, _, _, k in notices if k is not None and s > k + 0.26]
    close = [(c, b[0] - a[0]) for c, notices in sent.items() for a, b in zip(notices, notices[1:])
             if b[1] == "scheduled" and b[0] - a[0] < interval * 2 / 3 - 0.26]
    return missed, close


def test_a_relay_that_carries_the_audience_1_3_times_per_interval_keeps_every_promise_with_one_pass():
    interval, rate = 60.0, 50.0
    contacts = int(rate * interval / 1.3)
    sent = simulate(contacts, interval, rate)
    missed, close = judge(sent, interval)
    assert not missed and not close
    holding = [n for notices in sent.values() for n in notices if n[1] == "scheduled"]
    # one pass of the audience per interval: each promise kept by one holding update (sent up to a
    # third of an interval early, so a fifth one may fall within the five intervals watched)
    kept = [(c, n[3]) for c, notices in sent.items() for n in notices if n[1] == "scheduled"]
    assert len(kept) == len(set(kept)) and len(holding) <= 5 * contacts
    assert all(n[2] == pytest.approx(n[3] + interval) for n in holding)    # the cadence, not drifting


def test_a_relay_at_0_7_of_what_the_audience_needs_misses_no_stated_promise():
    interval, rate = 60.0, 50.0
    contacts = int(rate * interval / 0.7)
    sent = simulate(contacts, interval, rate, intervals=8)
    missed, close = judge(sent, interval)
    assert not missed and not close
    stated = [n[2] - n[0] for notices in sent.values() for n in notices]
    assert max(stated) <= MAX_STRETCH * interval        # honest, and never absurdly far
    assert min(stated) > interval                       # every promise is stretched, none one interval only


def test_a_short_relay_that_slows_by_a_quarter_after_the_promises_were_stated_misses_none():
    """At 0.7 times, the rate falls from 40 to 29/s a minute in (two cores shared: measured in a
    fault run, where 62 of 1,359 promises stated from the rate before were late by about a second);
    the rate the worker plans with follows 16 s later (its eight two-second windows)."""
    interval, rate = 20.0, 40.0
    contacts = int(rate * interval / 0.7)
    slow = lambda t: rate if t < 60 else rate * 0.71
    sent = simulate(contacts, interval, rate, intervals=8, rate_at=slow, plan_at=lambda t: slow(t - 16))
    missed, close = judge(sent, interval)
    assert not missed and not close
    stated = [n[2] - n[0] for notices in sent.values() for n in notices]
    assert max(stated) <= MAX_STRETCH * interval


def test_contacts_reached_faster_than_they_can_be_kept_start_their_holding_updates_early_enough():
    """A first round sent at twice the rate that must keep it (two workers, then one after a
    kill -9): the holding updates start when the whole cluster of deadlines needs them to, not at
    the first contact's own time (that left the last of them 20 s late in the failover test)."""
    interval, rate = 90.0, 50.0
    contacts = int(rate * interval / 1.3)
    sent = simulate(contacts, interval, rate, intervals=2, rate_at=lambda t: 2 * rate if t < 10 else rate)
    missed, close = judge(sent, interval)
    assert not missed and not close
    assert all(any(kind == "scheduled" for _, kind, _, _ in notices) for notices in sent.values())


def test_at_1_15_times_through_a_kill_each_contact_keeps_its_own_cadence():
    """The bench at 1.15 times, two workers then one after a kill -9 (the relay twice as fast for
    the first 16 s): every promise kept, and no holding update sooner than two thirds of an
    interval after the notice before it."""
    interval, rate = 60.0, 50.0
    contacts = int(rate * interval / 1.15)
    sent = simulate(contacts, interval, rate, intervals=3, rate_at=lambda t: 2 * rate if t < 16 else rate)
    missed, close = judge(sent, interval)
    assert not missed and not close
    gaps = [b[0] - a[0] for notices in sent.values() for a, b in zip(notices, notices[1:])]
    assert min(gaps) >= interval * (1 - EARLIEST_SHARE) - 0.26


def test_latest_start_is_set_by_the_densest_run_of_deadlines():
    # 10 due at 100, 100 due at 110, at 10/s with a 1 s margin: the 110 ones need 11 s after the first 10
    assert latest_start([(100.0, 10), (110.0, 100)], ahead=0, send_rate=10.0, base=1.0) == pytest.approx(
        110.0 - 1.0 - QUEUE_HEADROOM * 110 / 10)
    # sparse ones: the first one's own time
    assert latest_start([(100.0, 1), (200.0, 1)], ahead=0, send_rate=10.0, base=1.0) == pytest.approx(
        100.0 - 1.0 - QUEUE_HEADROOM * 0.1)
    assert latest_start([], ahead=5, send_rate=10.0, base=1.0) == float("inf")


def test_the_index_counts_each_second_without_the_contacts_handed_on():
    idx = DeadlineIndex()
    idx.set("c1", "inc", "a", 100.2, 60.0)
    idx.set("c2", "inc", "a", 100.7, 60.0)
    idx.set("c3", "inc", "a", 105.0, 60.0)
    assert list(idx.seconds(200)) == [(100.0, 2), (105.0, 1)]
    item, _ = idx.peek()
    idx.pop()
    assert list(idx.seconds(200)) == [(100.0, 1), (105.0, 1)]      # handed on: in the queue ahead
    idx.restore(item)
    assert list(idx.seconds(104)) == [(100.0, 2)]
    idx.pop()
    idx.set("c1", "inc", "a", 160.2, 60.0)                          # sent: its next deadline
    idx.clear("c3", "inc", "a")
    assert list(idx.seconds(200)) == [(100.0, 1), (160.0, 1)]
