"""The domain rules as pure functions: who is affected, rounds and promises, who gets what."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from domain import ledger as L
from domain.affected import CustomerIndex, Scope, affected_services, is_affected
from domain.audience import RoundPlan, holding_job, plan_round
from domain.content import eta_state, notice_content
from domain.ids import contact_key, message_id
from domain.incident import current_round, decide, keep_promise, promise, schedule_due
from domain.schedule import round_lead
from schemas import Customer, IncidentEvent

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)


def ev(**kw) -> IncidentEvent:
    base = {"event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": T0.isoformat(),
            "severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"},
            "message": "We are investigating.", "components": ["api"], "regions": ["ap-northeast-1"]}
    if kw.get("type", "declared") != "declared":
        base = {"event_id": kw.pop("event_id"), "incident_id": "inc-7", "type": kw.pop("type"),
                "at": kw.pop("at", T0.isoformat())}
        if base["type"] == "updated" and not kw:   # an update changes something (else: "changes nothing")
            base["message"] = "Still investigating."
    base.update(kw)
    return IncidentEvent.model_validate(base)


def customer(cid: str, services, contacts=("ops@example.jp",), locale="ja", tz="Asia/Tokyo") -> Customer:
    return Customer.model_validate({
        "customer_id": cid, "name": f"Customer {cid}", "locale": locale, "timezone": tz,
        "contacts": [{"email": e, "name": None} for e in contacts],
        "services": [{"component": c, "region": r} for c, r in services]})


# -- who is affected ---------------------------------------------------------------------------
def test_affected_needs_component_and_listed_region():
    scope = Scope.of(["api"], ["ap-northeast-1"])
    assert is_affected([("api", "ap-northeast-1")], scope)
    assert not is_affected([("api", "eu-west-1")], scope)
    assert not is_affected([("dashboard", "ap-northeast-1")], scope)


def test_no_regions_means_every_region():
    assert is_affected([("api", "eu-west-1")], Scope.of(["api"], []))
    assert is_affected([("api", "eu-west-1")], Scope.of(["api"], None))


def test_affected_services_names_only_the_customers_own_affected_ones():
    services = [("api", "ap-northeast-1"), ("dashboard", "ap-northeast-1"), ("api", "us-east-1")]
    assert affected_services(services, Scope.of(["api"], ["ap-northeast-1"])) == (("api", "ap-northeast-1"),)


def test_index_agrees_with_the_rule_and_follows_changes():
    index = CustomerIndex()
    index.put("a", [("api", "ap-northeast-1")])
    index.put("b", [("api", "eu-west-1"), ("billing", "ap-northeast-1")])
    index.put("c", [("dashboard", "ap-northeast-1")])
    assert index.affected(Scope.of(["api"], ["ap-northeast-1"])) == {"a"}
    assert index.affected(Scope.of(["api"])) == {"a", "b"}
    assert index.affected(Scope.of(["api", "billing"], ["ap-northeast-1"])) == {"a", "b"}
    index.put("a", [("dashboard", "ap-northeast-1")], previous=[("api", "ap-northeast-1")])  # services replaced
    assert index.affected(Scope.of(["api"])) == {"b"}
    index.remove("b", [("api", "eu-west-1"), ("billing", "ap-northeast-1")])
    assert index.affected(Scope.of(["api"])) == set()
    assert len(index) == 2


# -- promises and rounds -------------------------------------------------------------------------
def test_promise_uses_next_update_at_then_interval_then_severity_cadence():
    d = decide(None, ev(next_update_at=(T0 + timedelta(minutes=10)).isoformat()), T0)
    assert d.state.promised_at == T0 + timedelta(minutes=10)
    d = decide(None, ev(update_interval_seconds=300), T0)
    assert d.state.promised_at == T0 + timedelta(seconds=300)
    for severity, minutes in (("critical", 30), ("major", 60), ("minor", 120)):
        d = decide(None, ev(severity=severity), T0)
        assert d.state.promised_at == T0 + timedelta(minutes=minutes)


def test_a_promise_is_never_in_the_past():
    late_now = T0 + timedelta(hours=3)  # the event arrives long after its own time
    d = decide(None, ev(), late_now)
    assert d.state.promised_at == late_now + timedelta(hours=1)
    assert promise(T0, timedelta(minutes=5), T0, explicit=T0 - timedelta(minutes=1)) == T0 + timedelta(minutes=5)


def test_promise_across_a_dst_change_is_an_exact_interval():
    sydney = ZoneInfo("Australia/Sydney")
    before = datetime(2026, 10, 4, 1, 30, tzinfo=sydney)  # clocks go forward at 02:00 local
    at = promise(before, timedelta(hours=1), before)
    assert at.timestamp() - before.timestamp() == 3600
    assert at.astimezone(sydney).hour == 3  # 01:30 AEST + 1h = 03:30 AEDT


def test_declared_update_resolved_rounds_and_seq():
    d1 = decide(None, ev(), T0)
    assert (d1.round.trigger, d1.round.seq) == ("declared", 1)
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", at=(T0 + timedelta(minutes=5)).isoformat(),
                             status="identified", eta=(T0 + timedelta(hours=2)).isoformat()), T0 + timedelta(minutes=5))
    assert (d2.round.trigger, d2.round.seq, d2.round.status) == ("updated", 2, "identified")
    assert d2.round.eta == T0 + timedelta(hours=2)
    assert d2.round.title == {"en": "API errors", "ja": "APIのエラー"}  # unchanged fields kept
    d3 = decide(d2.state, ev(type="resolved", event_id="e-3", at=(T0 + timedelta(hours=1)).isoformat(),
                             message="Fixed."), T0 + timedelta(hours=1))
    assert (d3.round.trigger, d3.round.seq, d3.round.next_update_at) == ("resolved", 3, None)
    assert d3.state.resolved_at == T0 + timedelta(hours=1)


def test_update_can_clear_the_eta_and_change_scope():
    d1 = decide(None, ev(eta=(T0 + timedelta(hours=1)).isoformat()), T0)
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", eta=None, components=["api", "billing"]), T0)
    assert d2.state.eta is None
    assert d2.round.components == ["api", "billing"]
    assert [s.components for s in d2.round.scopes] == [["api"], ["api", "billing"]]


def test_duplicates_unknown_and_resolved_incidents():
    d1 = decide(None, ev(), T0)
    again = decide(d1.state, ev(), T0)
    assert again.round is None and again.ignored and again.resend  # replay of the latest: re-send its round
    assert decide(None, ev(type="updated", event_id="e-2"), T0).error.startswith("unknown incident")
    other = decide(d1.state, ev(event_id="e-9"), T0)
    assert "already declared" in other.error
    done = decide(d1.state, ev(type="resolved", event_id="e-3"), T0).state
    late = decide(done, ev(type="updated", event_id="e-4"), T0)
    assert "resolved" in late.error


def test_out_of_order_update_never_moves_the_base_time_back():
    d1 = decide(None, ev(update_interval_seconds=600), T0)
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", at=(T0 + timedelta(minutes=8)).isoformat()),
                T0 + timedelta(minutes=8))
    older = decide(d2.state, ev(type="updated", event_id="e-3", at=(T0 + timedelta(minutes=2)).isoformat()),
                   T0 + timedelta(minutes=9))
    assert older.state.updated_at == T0 + timedelta(minutes=8)
    assert older.state.promised_at == T0 + timedelta(minutes=18)


def test_keep_promise_is_idempotent_per_slot():
    d1 = decide(None, ev(update_interval_seconds=600), T0)
    due = d1.state.promised_at
    k1 = keep_promise(d1.state, due, due - timedelta(seconds=5))
    assert (k1.round.trigger, k1.round.seq) == ("scheduled", 2)
    assert k1.state.promised_at == due + timedelta(seconds=600)
    k2 = keep_promise(k1.state, due, due)
    assert k2.round is None and k2.resend  # a second timer for the same slot: no new round
    superseded = keep_promise(k1.state, due - timedelta(seconds=1), due)
    assert superseded.round is None and not superseded.resend


def test_schedule_due_starts_early_by_the_round_lead():
    d1 = decide(None, ev(update_interval_seconds=600), T0)
    due = d1.state.promised_at
    base = timedelta(seconds=5)
    # a third of the interval, but at most a minute beyond the margin and the latency
    assert round_lead(timedelta(seconds=600), base=base) == timedelta(seconds=65)
    assert round_lead(timedelta(seconds=60), base=base) == timedelta(seconds=20)
    assert round_lead(timedelta(seconds=6), base=base, latency=0.5) == timedelta(seconds=6)   # never below the floor
    lead = round_lead(timedelta(seconds=600), base=base)
    assert schedule_due(d1.state, due - timedelta(seconds=66), lead) is None
    assert schedule_due(d1.state, due - timedelta(seconds=65), lead) == due


def test_current_round_rebuilds_the_latest():
    d1 = decide(None, ev(), T0)
    assert current_round(d1.state) == d1.round


# -- who gets which notice ---------------------------------------------------------------------------
class World:
    """One partition: customers, index and ledger, with sends recorded as the sender would."""

    def __init__(self, *customers: Customer):
        self.customers = {c.customer_id: c for c in customers}
        self.index = CustomerIndex()
        for c in customers:
            self.index.put(c.customer_id, [(s.component, s.region) for s in c.services])
        self.ledger: dict[str, dict] = {}

    def plan(self, rnd):
        notified = [cid for cid, e in self.ledger.items() if rnd.incident_id in L.incidents_in(e)]
        return plan_round(rnd, self.index, self.customers.get, self.ledger.get, notified, "example.com")

    def send(self, rnd):
        jobs = self.plan(rnd)
        for j in jobs:
            self.ledger[j.customer_id] = L.record_sent(self.ledger.get(j.customer_id), incident_id=j.incident_id,
                                                       recipient=j.recipient, email=j.email,
                                                       message_id=j.message_id, kind=j.kind, seq=j.seq)
        return sorted((j.customer_id, j.email, j.kind) for j in jobs)


def test_round_kinds_over_an_incident_life():
    a = customer("a", [("api", "ap-northeast-1")], contacts=("a1@example.jp", "a2@example.jp"))
    b = customer("b", [("billing", "ap-northeast-1")])
    c = customer("c", [("api", "eu-west-1")])
    w = World(a, b, c)
    d1 = decide(None, ev(), T0)
    assert w.send(d1.round) == [("a", "a1@example.jp", "acknowledged"), ("a", "a2@example.jp", "acknowledged")]
    assert w.send(d1.round) == []  # replayed round: nothing twice
    k = keep_promise(d1.state, d1.state.promised_at, d1.state.promised_at)
    assert [x[2] for x in w.send(k.round)] == ["scheduled", "scheduled"]
    grow = decide(k.state, ev(type="updated", event_id="e-2", components=["api", "billing"]), T0)
    assert w.send(grow.round) == [("a", "a1@example.jp", "progress"), ("a", "a2@example.jp", "progress"),
                                  ("b", "ops@example.jp", "acknowledged")]
    shrink = decide(grow.state, ev(type="updated", event_id="e-3", components=["billing"]), T0)
    assert w.send(shrink.round) == [("a", "a1@example.jp", "unaffected"), ("a", "a2@example.jp", "unaffected"),
                                    ("b", "ops@example.jp", "progress")]
    resolved = decide(shrink.state, ev(type="resolved", event_id="e-4"), T0)
    assert w.send(resolved.round) == [("b", "ops@example.jp", "resolved")]
    assert w.send(resolved.round) == []
    assert w.send(shrink.round) == []  # a stale round after resolution sends nothing


def test_new_customer_and_tombstone_take_effect_from_next_round():
    a = customer("a", [("api", "ap-northeast-1")])
    w = World(a)
    d1 = decide(None, ev(), T0)
    w.send(d1.round)
    late = customer("n", [("api", "ap-northeast-1")], contacts=("n@example.com",))
    w.customers["n"] = late
    w.index.put("n", [("api", "ap-northeast-1")])
    del w.customers["a"]
    w.index.remove("a", [("api", "ap-northeast-1")])
    k = keep_promise(d1.state, d1.state.promised_at, d1.state.promised_at)
    assert w.send(k.round) == [("n", "n@example.com", "acknowledged")]


def test_message_ids_are_deterministic_and_threaded():
    a = customer("a", [("api", "ap-northeast-1")])
    w = World(a)
    d1 = decide(None, ev(), T0)
    first = w.plan(d1.round)[0]
    assert first.message_id == f"<inc-7.1.acknowledged.a.{contact_key('ops@example.jp')}@example.com>"
    assert first.in_reply_to is None
    w.send(d1.round)
    d2 = decide(d1.state, ev(type="updated", event_id="e-2"), T0)
    nxt = w.plan(d2.round)[0]
    assert nxt.in_reply_to == first.message_id
    assert message_id("inc 7", 1, "progress", "c@1", "k", "x.org") == "<inc%207.1.progress.c%401.k@x.org>"


def test_content_never_shows_a_past_eta_as_future():
    a = customer("a", [("api", "ap-northeast-1")])
    w = World(a)
    d1 = decide(None, ev(eta=(T0 + timedelta(minutes=30)).isoformat()), T0)
    job = w.plan(d1.round)[0]
    before = notice_content(job, T0)
    assert (before.eta_state, before.eta) == ("future", T0 + timedelta(minutes=30))
    after = notice_content(job, T0 + timedelta(minutes=31))
    # gone by before this contact was told it: no estimate, never "longer than our earlier estimate"
    assert (after.eta_state, after.eta) == ("unknown", None)
    assert eta_state(None, T0) == "unknown"
    assert before.locale == "ja" and before.title == "APIのエラー"
    assert before.services == (("api", "ap-northeast-1"),)
    assert before.next_update_at == d1.state.promised_at


# -- the estimate: "taking longer than our earlier estimate" only when one was stated ------------
def test_eta_state_says_passed_only_for_an_estimate_stated_before_that_went_by():
    past, ahead = T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
    assert eta_state(ahead, T0) == "future"
    assert eta_state(ahead, T0, earlier=past) == "future"       # a new estimate ahead wins
    assert eta_state(past, T0) == "unknown"                      # never stated before: no estimate
    assert eta_state(None, T0) == "unknown"
    assert eta_state(None, T0, earlier=past) == "passed"         # stated, gone by, none newer
    assert eta_state(past, T0, earlier=past) == "passed"
    assert eta_state(None, T0, earlier=ahead) == "unknown"       # withdrawn before it went by
    assert eta_state(T0, T0, earlier=T0) == "passed"             # "by 10:00" at 10:00 has gone by


def test_each_round_remembers_the_estimate_an_earlier_round_stated():
    eta = T0 + timedelta(minutes=30)
    d1 = decide(None, ev(), T0)
    assert d1.round.earlier_eta is None
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", eta=eta.isoformat()), T0 + timedelta(minutes=5))
    assert (d2.round.eta, d2.round.earlier_eta) == (eta, None)   # stated by this round, not before
    d3 = keep_promise(d2.state, d2.state.promised_at, d2.state.promised_at)
    assert (d3.round.trigger, d3.round.eta, d3.round.earlier_eta) == ("scheduled", eta, eta)
    d4 = decide(d3.state, ev(type="updated", event_id="e-4", at=(T0 + timedelta(hours=2)).isoformat(), eta=None),
                T0 + timedelta(hours=2))
    assert (d4.round.eta, d4.round.earlier_eta) == (None, eta)   # cleared: what was stated is kept
    d5 = decide(d4.state, ev(type="updated", event_id="e-5", at=(T0 + timedelta(hours=3)).isoformat(),
                             status="monitoring"), T0 + timedelta(hours=3))
    assert d5.round.earlier_eta == eta                            # the latest one any earlier round had
    d6 = decide(d5.state, ev(type="resolved", event_id="e-6"), T0 + timedelta(hours=4))
    assert d6.round.earlier_eta == eta and d6.round.eta is None


def test_no_estimate_ever_given_is_never_called_an_earlier_estimate():
    a = customer("a", [("api", "ap-northeast-1")])
    w = World(a)
    d1 = decide(None, ev(), T0)
    w.send(d1.round)
    due = d1.state.promised_at
    held = keep_promise(d1.state, due, due).round
    job = holding_job(held, a, w.ledger["a"], contact_key("ops@example.jp"), "example.com")
    assert job.kind == "scheduled" and job.in_reply_to is not None
    assert notice_content(job, due + timedelta(hours=5)).eta_state == "unknown"
    # an estimate given by this very round (valid at its event's time) that has gone by when the
    # notice is composed was never stated to anyone: no estimate, not "longer than our estimate"
    at = due + timedelta(minutes=1)
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", at=at.isoformat(),
                             eta=(at + timedelta(minutes=1)).isoformat()), at)
    (progress,) = w.plan(d2.round)
    assert progress.kind == "progress" and progress.in_reply_to is not None
    content = notice_content(progress, at + timedelta(minutes=2))
    assert (content.eta_state, content.eta) == ("unknown", None)


def test_an_estimate_stated_in_an_earlier_round_that_went_by_is_being_revised():
    w = World(customer("a", [("api", "ap-northeast-1")]))
    eta = T0 + timedelta(minutes=30)
    d1 = decide(None, ev(eta=eta.isoformat()), T0)
    w.send(d1.round)
    after = eta + timedelta(minutes=1)
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", at=after.isoformat(), status="identified"), after)
    job = w.plan(d2.round)[0]
    assert job.kind == "progress" and job.in_reply_to is not None
    content = notice_content(job, after)
    assert (content.eta_state, content.eta) == ("passed", None)
    # a contact hearing of the incident for the first time was told no estimate: it has none
    newcomer = World(customer("b", [("api", "ap-northeast-1")]))
    first = newcomer.plan(d2.round)[0]
    assert first.kind == "acknowledged" and first.in_reply_to is None
    assert notice_content(first, after).eta_state == "unknown"
    # a new estimate ahead is shown as such
    later = eta + timedelta(hours=2)
    d3 = decide(d2.state, ev(type="updated", event_id="e-3", at=after.isoformat(), eta=later.isoformat()), after)
    w.send(d2.round)
    assert (notice_content(w.plan(d3.round)[0], after).eta_state) == "future"


def test_unsubscribed_recipients_get_nothing_more():
    from domain.links import unsubscribe_token, verify_unsubscribe

    a = customer("a", [("api", "ap-northeast-1")], contacts=("a1@example.jp", "a2@example.jp"))
    w = World(a)
    d1 = decide(None, ev(), T0)
    w.send(d1.round)
    token = unsubscribe_token(b"k", "a", contact_key("a1@example.jp"))
    assert verify_unsubscribe(b"k", token) == ("a", contact_key("a1@example.jp"))
    assert verify_unsubscribe(b"other-key", token) is None
    assert verify_unsubscribe(b"k", token[:-2] + "xx") is None
    w.ledger["a"] = L.record_unsubscribe(w.ledger["a"], contact_key("a1@example.jp"))
    d2 = decide(d1.state, ev(type="updated", event_id="e-2"), T0)
    assert w.send(d2.round) == [("a", "a2@example.jp", "progress")]


def test_a_kept_promise_leaves_time_to_send_the_next_round():
    """An audience that takes longer to reach than the interval: the next promise leaves room
    for this round and the next, instead of being due at once (a cascade of rounds)."""
    d1 = decide(None, ev(update_interval_seconds=60), T0)
    due = d1.state.promised_at
    send = timedelta(seconds=100)          # 100k contacts at 1,000/s
    lead = timedelta(seconds=155)          # margin + latency + the send time padded by half
    started = due - lead
    k = keep_promise(d1.state, due, started, lead, send)
    assert k.stretched
    assert k.state.promised_at == started + send + lead       # not due + 60 s
    assert schedule_due(k.state, started + timedelta(seconds=1), lead) is None
    assert schedule_due(k.state, started + send, lead) == k.state.promised_at


def test_a_kept_promise_keeps_the_operators_cadence():
    """The next promise is one interval after the one kept, however early the round started."""
    d1 = decide(None, ev(update_interval_seconds=3600), T0)
    due = d1.state.promised_at
    send, lead = timedelta(seconds=8), timedelta(seconds=20)     # 20,000 contacts, a steady rate
    k = keep_promise(d1.state, due, due - lead, lead, send)
    assert k.state.promised_at == due + timedelta(seconds=3600) and not k.stretched
    short = keep_promise(d1.state, due, due - timedelta(seconds=2), timedelta(seconds=1))
    assert short.state.promised_at == due + timedelta(seconds=3600)
    fast = decide(None, ev(update_interval_seconds=90), T0).state
    slow = keep_promise(fast, fast.promised_at, fast.promised_at - timedelta(seconds=70),
                        timedelta(seconds=70), timedelta(seconds=45))   # 8,000 contacts at ~180/s
    assert slow.state.promised_at == fast.promised_at + timedelta(seconds=90) and not slow.stretched


def test_a_round_plan_reads_the_ledger_when_drawn_not_when_made():
    a = customer("a", [("api", "ap-northeast-1")])
    b = customer("b", [("api", "ap-northeast-1")], contacts=("b1@example.jp", "b2@example.jp"))
    w = World(a, b)
    d1 = decide(None, ev(), T0)
    d2 = keep_promise(d1.state, d1.state.promised_at, d1.state.promised_at)
    plan = RoundPlan(d2.round, w.index, w.customers.get, w.ledger.get, [], "example.com")
    assert (plan.candidates, plan.size(), plan.done) == (2, 2, False)
    w.send(d1.round)                       # the first round goes out while the second waits
    jobs = list(plan)
    assert [(j.customer_id, j.kind) for j in jobs] == [("a", "scheduled"), ("b", "scheduled"), ("b", "scheduled")]
    assert (plan.size(), plan.done) == (3, True)


def test_a_customer_whose_notices_cannot_be_worked_out_is_reported_and_the_others_still_planned():
    a = customer("a", [("api", "ap-northeast-1")])
    b = customer("b", [("api", "ap-northeast-1")])
    w = World(a, b)
    d1 = decide(None, ev(), T0)

    def lookup(cid):
        if cid == "a":
            raise KeyError("stored record damaged")
        return w.customers.get(cid)

    errors = []
    plan = RoundPlan(d1.round, w.index, lookup, w.ledger.get, [], "example.com",
                     on_error=lambda cid, exc: errors.append((cid, type(exc).__name__)))
    assert [j.customer_id for j in plan] == ["b"]
    assert errors == [("a", "KeyError")]
    with pytest.raises(KeyError):   # without a handler the error is the caller's
        list(RoundPlan(d1.round, w.index, lookup, w.ledger.get, [], "example.com"))


def test_the_promise_book_states_each_recipients_own_next_deadline():
    from dataclasses import dataclass

    from domain.promises import PromiseBook

    d1 = decide(None, ev(update_interval_seconds=600), T0)
    first = d1.round
    second = keep_promise(d1.state, first.next_update_at, first.next_update_at - timedelta(seconds=30)).round

    @dataclass(frozen=True)
    class Job:
        round: object
        message_id: str
        kind: str
        due: float | None = None

    book = PromiseBook(margin=timedelta(seconds=5))
    late_ack = Job(first, "<a>", "acknowledged")     # news: one interval after it is sent
    at = T0 + timedelta(seconds=250)
    assert book.as_composed(late_ack, at).round.next_update_at == at + timedelta(seconds=600)
    assert book.stated(late_ack) == at + timedelta(seconds=600)
    assert book.stated(late_ack) == first.next_update_at           # remembered once
    # a holding update: one interval after the deadline it keeps, however early it left
    keeps = T0 + timedelta(seconds=850)
    hold = Job(second, "<b>", "scheduled", keeps.timestamp())
    assert book.as_composed(hold, keeps - timedelta(seconds=30)).round.next_update_at == keeps + timedelta(seconds=600)
    book.factor = 2.0                                             # the relay carries half of what is needed
    assert book.as_composed(hold, keeps).round.next_update_at == keeps + timedelta(seconds=1200)
    resolved = Job(first.model_copy(update={"next_update_at": None}), "<c>", "resolved")
    assert book.as_composed(resolved, at) is resolved

def test_a_linked_tickets_lifecycle():
    from domain import tickets as TK

    d1 = decide(None, ev(update_interval_seconds=600), T0)
    declared = d1.round
    d2 = decide(d1.state, ev(type="updated", event_id="e-2", message="Found it."), T0)
    update = d2.round
    resolved = decide(d2.state, ev(type="resolved", event_id="e-3"), T0).round
    requester = {"email": "dev@example.jp", "name": "Suzuki"}

    entry, new = TK.on_opened(None, customer_id="c-1", rnd=declared, subject="503s", requester=requester)
    assert new and entry["state"] == TK.OPEN and entry["ack_owed"] == requester and entry["seq"] == 1
    acked = TK.on_acked(entry)
    assert acked["ack_owed"] is None and TK.on_acked(acked) is None            # nothing more owed
    again, new = TK.on_opened(acked, customer_id="c-1", rnd=declared, subject="503s", requester=requester)
    assert not new and again["ack_owed"] == requester                          # opened again: answered again
    assert TK.on_round(acked, declared) is None                             # nothing newer
    changed, action, kind = TK.on_round(acked, update)
    assert (action, kind, changed["seq"], changed["state"]) == (TK.INCIDENT_UPDATED, "progress", 2, TK.OPEN)
    closed, action, kind = TK.on_round(changed, resolved)
    assert (action, kind, closed["state"]) == (TK.INCIDENT_RESOLVED, "resolved", TK.CLOSED)
    assert TK.on_round(closed, resolved) is None                            # closed: nothing more
    assert TK.on_closed(entry)["state"] == TK.CLOSED and TK.on_closed(closed) is None


def test_a_ticket_requester_who_is_not_a_contact_can_unsubscribe_from_ticket_acknowledgements():
    """The link in a ticket-ack to a requester outside the customer's contacts verifies (its
    recipient is ``ticket:<key>``), and once used no further ticket-ack is owed to that address."""
    from domain.links import unsubscribe_token, verify_unsubscribe
    from domain.tickets import requester_key, ticket_ack_job

    a = customer("a", [("api", "ap-northeast-1")], contacts=("ops@example.jp",))
    d1 = decide(None, ev(), T0)
    kwargs = dict(ticket_id="T-1", subject="503s", requester_email="dev@example.jp", requester_name=None,
                  customer=a, rnd=d1.round, domain="example.jp")
    job = ticket_ack_job(entry=None, **kwargs)
    assert job is not None and job.recipient == requester_key(a, "dev@example.jp") != contact_key("dev@example.jp")
    token = unsubscribe_token(b"k", "a", job.recipient)
    assert verify_unsubscribe(b"k", token) == ("a", job.recipient)
    entry = L.record_unsubscribe(None, job.recipient)
    assert ticket_ack_job(entry=entry, **{**kwargs, "ticket_id": "T-2"}) is None


def test_the_ledger_keeps_when_each_contact_latest_notice_was_accepted():
    entry = L.record_sent(None, incident_id="i", recipient="r", email="a@example.com", message_id="<1>",
                          kind="acknowledged", seq=1, due=160.0, every=60.0, sent=100.0)
    assert list(L.deadlines(entry)) == [("i", "r", 160.0, 60.0, 100.0)]
    # a retry recorded with an older acceptance time does not move it back
    entry = L.record_sent(entry, incident_id="i", recipient="r", email="a@example.com", message_id="<1>",
                          kind="acknowledged", seq=1, due=160.0, every=60.0, sent=90.0)
    assert list(L.deadlines(entry))[0][4] == 100.0
    entry = L.record_sent(entry, incident_id="i", recipient="r", email="a@example.com", message_id="<2>",
                          kind="resolved", seq=2, sent=150.0)
    assert list(L.deadlines(entry)) == [] and "sent_at" not in L.recipients(entry, "i")["r"]
