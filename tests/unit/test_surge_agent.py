"""The surge agent (``streams/surge.py``) over in-memory parts: mentions in, signals out, bad input
to the dead letters, the view of every incident judged again before a signal goes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from domain.incident import IncidentState
from domain.surge import Mention, SurgeRule
from streams.deadletter import DeadLetters
from streams.surge import Surges
from tests.inmemory import Clock, Table, Topic

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)


def incident(resolved: bool = False) -> IncidentState:
    return IncidentState(incident_id="inc-1", severity="major", status="investigating", title="API errors",
                         components=["api"], started_at=T0, updated_at=T0,
                         resolved_at=T0 if resolved else None)


class View:
    """The view of every incident: ``later`` shows once ``sync`` was awaited."""

    def __init__(self, now: list[IncidentState], later: list[IncidentState] | None = None) -> None:
        self.now, self.later, self.synced = now, later, 0

    def states(self):
        return list(self.now)

    async def sync(self, timeout: float = 1.0) -> bool:
        self.synced += 1
        if self.later is not None:
            self.now = self.later
        return True


def surges(view: View | None = None):
    clock = Clock(T0)
    mentions, signals, dead = Topic("t.component-mentions"), Topic("t.signals"), Topic("t.dead-letters", 1)
    desk = Surges(table=Table("surges"), mentions_topic=mentions, signals_topic=signals,
                  dlq=DeadLetters(dead, clock), clock=clock, rule=SurgeRule(tickets=5, window_seconds=600),
                  incidents=view.states if view else tuple, sync=view.sync if view else None)
    return desk, clock, mentions, signals, dead


def send(topic: Topic, *mentions: Mention, origin=None) -> None:
    for m in mentions:
        topic.sent.append((m.component.encode(), json.dumps({"mention": m.as_dict(), "origin": origin}).encode(),
                           None))


def five(component: str = "api") -> list[Mention]:
    return [Mention(component=component, ticket_id=f"T-{i}", customer_id=f"c-{i}", at=T0 - timedelta(seconds=i),
                    regions=("eu-west-1",)) for i in range(5)]


async def test_five_mentions_make_one_signal_keyed_by_the_component():
    desk, clock, mentions, signals, dead = surges()
    send(mentions, *five())
    await desk.agent(mentions.stream())
    ((key, value, _),) = signals.sent
    record = json.loads(value)
    assert key == b"api" and record["type"] == "possible-incident" and record["region"] == "eu-west-1"
    assert (record["tickets"], record["customers"], record["window_seconds"]) == (5, 5, 600)
    assert record["first_at"] == "2026-12-04T08:59:56Z" and record["at"] == "2026-12-04T09:00:00Z"
    assert dead.sent == []
    assert len(desk.table.partition(0).get("api")["mentions"]) == 5


async def test_an_incident_the_view_shows_after_a_sync_stops_the_signal():
    view = View(now=[], later=[incident()])
    desk, clock, mentions, signals, dead = surges(view)
    send(mentions, *five())
    await desk.agent(mentions.stream())
    assert signals.sent == [] and view.synced == 1


async def test_a_resolved_incident_covers_nothing():
    desk, clock, mentions, signals, dead = surges(View(now=[incident(resolved=True)]))
    send(mentions, *five())
    await desk.agent(mentions.stream())
    assert len(signals.sent) == 1


async def test_a_record_that_is_no_mention_is_dead_lettered_with_the_ticket_it_came_from():
    desk, clock, mentions, signals, dead = surges()
    origin = {"topic": "t.ticket-events", "partition": 2, "offset": 7, "key": "T-9", "value": "{}"}
    mentions.sent.append((b"api", json.dumps({"mention": {"component": "api"}, "origin": origin}).encode(), None))
    mentions.sent.append((b"api", b"{not json", None))
    send(mentions, *five())
    await desk.agent(mentions.stream())
    letters = [json.loads(v) for _, v, _ in dead.sent]
    assert [(d["topic"], d["offset"]) for d in letters] == [("t.ticket-events", 7), ("t.component-mentions", 1)]
    assert all("not a component mention" in d["error"] for d in letters)
    assert len(signals.sent) == 1     # the stream went on


async def test_a_ticket_mentions_each_component_it_names_keyed_by_the_component():
    from schemas import Customer, TicketEvent

    desk, clock, mentions, signals, dead = surges()
    customer = Customer.model_validate({"customer_id": "c-1", "name": "C", "contacts": [],
                                        "services": [{"component": "api", "region": "eu-west-1"}]})
    ticket = TicketEvent.model_validate({"event_id": "e-1", "ticket_id": "T-1", "customer_id": "c-1",
                                         "type": "opened", "at": "2026-12-04T09:00:00Z", "subject": "down",
                                         "requester": {"email": "a@example.com"}, "components": ["api", "db"]})
    await desk.mention(ticket, customer, origin={"topic": "t.ticket-events"})
    assert [k for k, _, _ in mentions.sent] == [b"api", b"db"]
    first = json.loads(mentions.sent[0][1])
    assert first["mention"]["regions"] == ["eu-west-1"] and first["origin"] == {"topic": "t.ticket-events"}
    await desk.mention(ticket.model_copy(update={"components": None}), customer)
    assert len(mentions.sent) == 2
