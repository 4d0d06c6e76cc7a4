"""Which holding updates a pass releases (list in, jobs out; no broker): earliest deadline first
across every partition held here, a pass's budget included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from domain import ledger as L
from domain.ids import contact_key
from domain.incident import decide, keep_promise
from schemas import Customer, IncidentEvent
from streams import holding as H
from tests.inmemory import Clock, Table

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
INTERVAL = 60


def scheduled_round():
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": T0.isoformat(), "severity": "major",
        "title": "X", "components": ["api"], "update_interval_seconds": INTERVAL})
    state = decide(None, event, T0).state
    return keep_promise(state, state.promised_at, state.promised_at).round


def holding_updates(dues: dict[int, list[int]], now: datetime):
    """Partition -> the deadlines (s after ``now``) of its contacts, one contact per customer: the
    holding updates of a worker holding those partitions, its sender, its clock and what it submitted."""
    rnd, ledger, customers, submitted = scheduled_round(), Table(), {}, []
    for p, offsets in dues.items():
        for k in offsets:
            k, ago = k if isinstance(k, tuple) else (k, None)   # (due, its notice this long ago)
            cid, email = f"c-{p}-{k}", f"u{p}-{k}@example.com"
            customers[cid] = Customer.model_validate({"customer_id": cid, "name": "C", "contacts": [{"email": email}],
                                                      "services": [{"component": "api", "region": "r1"}]})
            entry = L.record_sent(None, incident_id="inc-1", recipient=contact_key(email), email=email,
                                  message_id=f"<ack-{cid}>", kind="acknowledged", seq=1,
                                  due=now.timestamp() + k, every=INTERVAL,
                                  sent=None if ago is None else now.timestamp() - ago)
            ledger.partition(p).set(cid, entry)

    async def submit(jobs, p):
        submitted.append((p, [j.customer_id for j in jobs]))

    sender = SimpleNamespace(depth=0, rate_cap=None, rate=SimpleNamespace(measured=True, value=1.0),
                             held=set, submit=submit)
    clock = Clock(now)
    holding = H.HoldingUpdates(
        ledger=ledger, views=SimpleNamespace(customer_lookup=lambda p: customers.get),
        latest=SimpleNamespace(round=lambda p, incident: rnd), sender=sender, promises=SimpleNamespace(factor=1.0),
        clock=clock, held=lambda: set(dues), recovered=lambda: True, lead_seconds=1.0, mail_domain="example.com")
    return holding, sender, clock, submitted


async def test_a_pass_releases_the_earliest_deadlines_of_all_partitions_first(monkeypatch):
    # the budget of a pass went to the first partition's contacts while the next one's were due
    # sooner (at 1 email a second everything due within a third of the interval must go now)
    monkeypatch.setattr(H, "RELEASE_PER_TICK", 3)
    holding, sender, clock, submitted = holding_updates({0: [10, 11, 12], 1: [2, 3, 4]}, T0 + timedelta(minutes=5))
    await holding.tick()
    assert submitted == [(1, ["c-1-2", "c-1-3", "c-1-4"])]


async def test_a_pass_interleaves_the_partitions_by_deadline(monkeypatch):
    monkeypatch.setattr(H, "RELEASE_PER_TICK", 4)
    holding, sender, clock, submitted = holding_updates({0: [2, 5, 9], 1: [3, 4, 8]}, T0 + timedelta(minutes=5))
    await holding.tick()
    assert submitted == [(0, ["c-0-2", "c-0-5"]), (1, ["c-1-3", "c-1-4"])]   # 2, 3, 4, 5: not 9 nor 8


async def test_nothing_is_released_before_its_time():
    # at 1,000 emails a second two contacts due in 50 s and more (over a third of the interval) wait
    holding, sender, clock, submitted = holding_updates({0: [50], 1: [55]}, T0 + timedelta(minutes=5))
    sender.rate.value = 1000.0
    await holding.tick()
    assert submitted == []


async def test_a_contact_whose_latest_notice_is_recent_waits_and_the_next_ones_go():
    # due in 15 s, but its acknowledgement (which stated less than an interval, an operator's time
    # say) went 36 s ago: not before 40 s after it; the contact due in 16 s, acknowledged 44 s
    # ago, goes (its order is kept)
    holding, sender, clock, submitted = holding_updates({0: [(15, 36), (16, 44)]}, T0 + timedelta(minutes=5))
    sender.rate.value = 0.1    # a slow relay: both are due to leave now
    await holding.tick()
    assert submitted == [(0, ["c-0-16"])]
    clock.at = T0 + timedelta(minutes=5, seconds=4)
    await holding.tick()
    assert submitted == [(0, ["c-0-16"]), (0, ["c-0-15"])]
