"""Ticket surges (``domain/surge.py``): which mentions of a component make a possible incident,
list in, list out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain.affected import Scope
from domain.surge import MAX_KEPT, Mention, SurgeRule, mentions_of, observe, signals

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
RULE = SurgeRule(tickets=5, window_seconds=600)


def mention(i: int, customer: str | None = None, *, component: str = "api", seconds: float | None = None,
            regions: tuple[str, ...] = ("ap-northeast-1",), ticket: str | None = None) -> Mention:
    return Mention(component=component, ticket_id=ticket or f"T-{i}", customer_id=customer or f"c-{i}",
                   at=T0 + timedelta(seconds=i * 10 if seconds is None else seconds), regions=regions,
                   event_id=f"e-{ticket or i}")


def burst(n: int, *, start: int = 0, customers: int | None = None, **kwargs) -> list[Mention]:
    """``n`` tickets ten seconds apart, from ``customers`` customers in turn (default: each its own)."""
    return [mention(i, f"c-{i % customers}" if customers else None, **kwargs) for i in range(start, start + n)]


def test_five_tickets_from_five_customers_make_one_signal():
    (signal,) = signals(burst(5), RULE)
    assert (signal.type, signal.component, signal.region) == ("possible-incident", "api", "ap-northeast-1")
    assert (signal.tickets, signal.customers, signal.window_seconds) == (5, 5, 600)
    assert signal.first_at == T0 and signal.at == T0 + timedelta(seconds=40)


def test_two_tickets_make_none():
    assert signals(burst(2), RULE) == []


def test_five_tickets_from_two_customers_make_none_and_a_third_customer_makes_one():
    assert signals(burst(5, customers=2), RULE) == []
    (signal,) = signals(burst(5, customers=2) + [mention(5, "c-other")], RULE)
    assert (signal.tickets, signal.customers) == (6, 3)


def test_a_second_burst_in_the_same_window_makes_no_second_signal():
    first = burst(5)
    second = burst(5, start=10)          # 100 s to 140 s: within the window of the first signal (at 40 s)
    assert len(signals(first + second, RULE)) == 1


def test_a_new_window_makes_a_new_signal_of_the_tickets_since_the_first():
    later = [mention(i, seconds=700 + i) for i in range(10, 15)]
    found = signals(burst(5) + later, RULE)
    assert [(s.tickets, s.first_at) for s in found] == [(5, T0), (5, T0 + timedelta(seconds=710))]
    assert found[1].at == T0 + timedelta(seconds=714)


def test_tickets_spread_wider_than_the_window_make_none():
    spread = [mention(i, seconds=i * 200) for i in range(5)]     # any 600 s hold four at most
    assert signals(spread, RULE) == []


def test_an_active_incident_covering_the_component_makes_none():
    assert signals(burst(5), RULE, active=[Scope.of(["api"])]) == []
    assert signals(burst(5), RULE, active=[Scope.of(["api"], ["ap-northeast-1"])]) == []


def test_an_incident_on_another_component_or_region_does_not_cover():
    assert len(signals(burst(5), RULE, active=[Scope.of(["db"])])) == 1
    assert len(signals(burst(5), RULE, active=[Scope.of(["api"], ["eu-west-1"])])) == 1
    # a customer with no service of the component: any incident on the component covers its ticket
    assert signals(burst(5, regions=()), RULE, active=[Scope.of(["api"], ["eu-west-1"])]) == []


def test_tickets_counted_before_an_incident_covered_them_are_dropped():
    state = None
    for m in burst(4):
        state, signal = observe(state, m, rule=RULE, now=m.at)
        assert signal is None
    # the incident is declared; a ticket it covers counts nothing and the earlier ones leave
    m = mention(4)
    state, signal = observe(state, m, rule=RULE, now=m.at, active=[Scope.of(["api"])])
    assert signal is None and state["mentions"] == []
    # resolved: one more ticket does not make a signal of the explained ones
    m = mention(5)
    state, signal = observe(state, m, rule=RULE, now=m.at)
    assert signal is None and len(state["mentions"]) == 1


def test_duplicates_of_one_ticket_event_count_once():
    twice = [m for m in burst(4) for _ in range(2)]
    assert signals(twice, RULE) == []
    reopened = burst(4) + [mention(9, "c-0", ticket="T-0")]    # the same ticket again, another event
    assert signals(reopened, RULE) == []


def test_a_ticket_with_no_components_mentions_nothing():
    assert mentions_of(ticket_id="T-1", customer_id="c-1", at=T0, components=None, services=[("api", "x")]) == []
    assert mentions_of(ticket_id="T-1", customer_id="c-1", at=T0, components=[], services=[("api", "x")]) == []


def test_a_ticket_mentions_each_component_it_names_with_its_customers_regions():
    found = mentions_of(ticket_id="T-1", customer_id="c-1", at=T0, components=["db", "api", "api"],
                        services=[("api", "eu-west-1"), ("api", "ap-northeast-1"), ("dashboard", "eu-west-1")],
                        event_id="e-1")
    assert [(m.component, m.regions) for m in found] == [("api", ("ap-northeast-1", "eu-west-1")), ("db", ())]
    assert Mention.from_dict(found[0].as_dict()) == found[0]


def test_the_region_is_null_unless_every_ticket_names_the_same_one():
    mixed = burst(4) + [mention(4, regions=("eu-west-1",))]
    assert [s.region for s in signals(mixed, RULE)] == [None]
    unknown = burst(4) + [mention(4, regions=())]
    assert [s.region for s in signals(unknown, RULE)] == [None]


def test_a_ticket_older_than_the_window_counts_nothing_and_one_dated_ahead_counts_as_now():
    state = None
    now = T0 + timedelta(hours=1)
    state, _ = observe(state, mention(0), rule=RULE, now=now)        # an hour old
    assert state["mentions"] == []
    ahead = mention(0, seconds=7200)
    state, _ = observe(state, ahead, rule=RULE, now=now)
    assert state["mentions"][0][2] == now.isoformat()


def test_the_settings_threshold_and_window_are_the_rules():
    rule = SurgeRule(tickets=3, window_seconds=60)
    assert len(signals(burst(3), rule)) == 1
    assert signals([mention(i, seconds=i * 40) for i in range(3)], rule) == []   # 80 s apart end to end


def test_the_state_keeps_at_most_the_newest_mentions():
    state = None
    for i in range(MAX_KEPT + 20):
        m = mention(i, seconds=i * 0.5)
        state, _ = observe(state, m, rule=RULE, now=m.at)
    assert len(state["mentions"]) == MAX_KEPT and state["mentions"][-1][0] == f"T-{MAX_KEPT + 19}"
