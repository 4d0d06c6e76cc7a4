"""An incident's life: its state, and the *round* of notices each event or kept promise starts.

The incident agent is the single writer of this state; everything here is pure (the clock is
passed in as ``now``). Rules, each in one place:

- ``decide(state, event, now)``: apply a declared/updated/resolved event -> new state + round.
- ``promise(...)``: when the next update is promised.
- ``keep_promise(state, due, now)``: the promised time came with no update -> a scheduled round.
- ``schedule_due(state, now, lead)``: whether that scheduled round must start now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, Field

from domain.affected import Scope
from core.vocabulary import DECLARED, INVESTIGATING, RESOLVED, SEVERITY_CADENCE_SECONDS, UPDATED, Trigger

Text = str | dict[str, str]

MAX_REMEMBERED_EVENT_IDS = 500
MAX_HISTORY = 200


class ScopeRecord(BaseModel):
    components: list[str]
    regions: list[str] = []

    def scope(self) -> Scope:
        return Scope.of(self.components, self.regions)


class IncidentFacts(BaseModel):
    """What is known of an incident: shared by its state and by every round it starts."""

    incident_id: str
    severity: str
    status: str
    title: Text
    message: Text = ""
    components: list[str]
    regions: list[str] = []
    eta: datetime | None = None
    # the latest estimate in force at an earlier round than the current one: what customers may
    # already have been told; None when no earlier round had one ("taking longer than our earlier
    # estimate" is said only when this has passed, see domain/content.py)
    earlier_eta: datetime | None = None
    started_at: datetime
    resolved_at: datetime | None = None
    scopes: list[ScopeRecord] = []            # every scope the incident has had, oldest first

    def scope(self) -> Scope:
        return Scope.of(self.components, self.regions)


class IncidentState(IncidentFacts):
    update_interval_seconds: int | None = None
    updated_at: datetime                      # time of the latest applied event
    seq: int = 0                              # rounds decided so far
    promised_at: datetime | None = None       # the incident's next promised update (the cadence; each
                                              # contact's own deadline is its last notice's, never earlier)
    promise_explicit: bool = False            # promised_at is the operator's next_update_at, stated as is
    event_ids: list[str] = []                 # recently processed event ids (duplicates ignored)
    history: list[dict] = []
    last_trigger: Trigger = "declared"        # what started the latest round ...
    last_trigger_key: str = ""                # ... the event id, or "tick:<due>" for a kept promise
    last_round_at: datetime | None = None
    kept_promise: datetime | None = None      # what the latest round had to arrive by

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None

    def interval(self) -> timedelta:
        seconds = self.update_interval_seconds or SEVERITY_CADENCE_SECONDS.get(self.severity, 3600)
        return timedelta(seconds=seconds)


class Round(IncidentFacts):
    """One round of notices: what every affected contact is told, decided once."""

    seq: int
    trigger: Trigger
    at: datetime                              # when the round was decided
    next_update_at: datetime | None = None    # None on resolved
    keeps: datetime | None = None             # the promise this round must arrive by (the previous round's)
    interval_seconds: float | None = None     # the incident's update interval (each notice promises one after it)
    explicit: bool = False                    # next_update_at is the operator's: every notice states it
    # planned maintenance under way on the incident's scope when the round was decided (its notices
    # say so to the customers whose affected services it covers): maintenance_id, title, ends_at,
    # components, regions (``domain.maintenance.under_way``)
    maintenance: list[dict] = []


class Tick(BaseModel):
    """Internal command: the promised time ``due`` of ``incident_id`` is near."""

    incident_id: str
    due: datetime
    lead_seconds: float = 0.0   # how early the round started before ``due`` (margin, latency, send time)
    send_seconds: float = 0.0   # how long the round's audience takes at the measured send rate
    event_id: str = Field(default="")


@dataclass(frozen=True)
class Decision:
    state: IncidentState | None
    round: Round | None = None
    ignored: str | None = None   # why nothing happened (not an error: duplicate, stale tick)
    error: str | None = None     # why the event is invalid here (goes to the dead-letter topic)
    resend: bool = False         # a replay of the latest trigger: re-send its round (it may have been cut)
    stretched: bool = False      # the next promise is later than one interval: the audience needs longer


def promise(base: datetime, interval: timedelta, now: datetime, explicit: datetime | None = None) -> datetime:
    """The next promised update time.

    ``explicit`` (the event's ``next_update_at``) wins, otherwise ``base + interval``. A promise
    is never in the past: if it would be (a late event, a stale ``next_update_at``), it counts
    from ``now`` instead.
    """
    # arithmetic in UTC: within one IANA zone, Python adds wall-clock time (wrong across DST)
    base, now = base.astimezone(timezone.utc), now.astimezone(timezone.utc)
    candidate = explicit.astimezone(timezone.utc) if explicit is not None else base + interval
    if candidate <= now:
        candidate = now + interval
    return candidate


def _next_round(state: IncidentState) -> None:
    """A new round starts: the estimate in force until now is one an earlier round stated."""
    state.seq += 1
    if state.eta is not None:
        state.earlier_eta = state.eta


def _remember(state: IncidentState, event_id: str, entry: dict) -> None:
    state.event_ids = (state.event_ids + [event_id])[-MAX_REMEMBERED_EVENT_IDS:]
    state.history = (state.history + [entry])[-MAX_HISTORY:]


def _round(state: IncidentState, trigger: Trigger, now: datetime, key: str, keeps: datetime | None) -> Round:
    state.last_trigger, state.last_trigger_key, state.last_round_at = trigger, key, now
    state.kept_promise = keeps
    return current_round(state)


def current_round(state: IncidentState) -> Round:
    """The latest round, rebuilt from the state (to re-send one a crash may have cut short)."""
    facts = {name: getattr(state, name) for name in IncidentFacts.model_fields}
    return Round.model_validate({
        **facts, "seq": state.seq, "trigger": state.last_trigger, "at": state.last_round_at or state.updated_at,
        "next_update_at": state.promised_at, "keeps": state.kept_promise,
        "interval_seconds": state.interval().total_seconds(), "explicit": state.promise_explicit,
    })


def _add_scope(state: IncidentState) -> None:
    current = ScopeRecord(components=sorted(set(state.components)), regions=sorted(set(state.regions)))
    if not state.scopes or state.scopes[-1] != current:
        state.scopes = state.scopes + [current]


def decide(state: IncidentState | None, event, now: datetime) -> Decision:
    """Apply an incident event (a ``schemas.IncidentEvent``) and decide its round."""
    if state is not None and event.event_id in state.event_ids:
        return Decision(state, ignored=f"duplicate event_id {event.event_id!r}",
                        resend=event.event_id == state.last_trigger_key)
    if event.type == DECLARED:
        if state is not None:
            return Decision(state, error=f"incident {event.incident_id!r} was already declared")
        return _declare(event, now)
    if state is None:
        return Decision(None, error=f"unknown incident {event.incident_id!r}: it was never declared")
    if state.resolved:
        return Decision(state, error=f"incident {event.incident_id!r} is already resolved")
    if event.type == UPDATED:
        return _update(state.model_copy(deep=True), event, now)
    if event.type == RESOLVED:
        return _resolve(state.model_copy(deep=True), event, now)
    return Decision(state, error=f"unknown event type {event.type!r}")


def _declare(event, now: datetime) -> Decision:
    state = IncidentState(
        incident_id=event.incident_id, severity=event.severity, status=event.status or INVESTIGATING,
        title=event.title, message=event.message or "", components=list(event.components),
        regions=list(event.regions or []), eta=event.eta,
        update_interval_seconds=event.update_interval_seconds,
        started_at=event.at, updated_at=event.at, seq=1,
    )
    state.promised_at = promise(event.at, state.interval(), now, event.next_update_at)
    state.promise_explicit = state.promised_at == event.next_update_at
    _add_scope(state)
    _remember(state, event.event_id, {"event_id": event.event_id, "type": DECLARED, "at": event.at.isoformat(),
                                      "status": state.status, "seq": 1})
    return Decision(state, _round(state, "declared", now, event.event_id, None))


_UPDATABLE = ("severity", "status", "title", "message", "components", "regions", "eta",
              "update_interval_seconds")


def _update(state: IncidentState, event, now: datetime) -> Decision:
    keeps = state.promised_at
    _next_round(state)
    changes = event.changes()
    for name in _UPDATABLE:
        if name in changes:
            value = changes[name]
            if name == "regions" and value is None:
                value = []
            if name in ("severity", "status", "title", "components") and value is None:
                continue  # required fields cannot be cleared
            setattr(state, name, value)
    base = max(event.at, state.updated_at)
    state.updated_at = base
    state.promised_at = promise(base, state.interval(), now, changes.get("next_update_at"))
    state.promise_explicit = state.promised_at == changes.get("next_update_at")
    _add_scope(state)
    _remember(state, event.event_id, {"event_id": event.event_id, "type": UPDATED, "at": event.at.isoformat(),
                                      "status": state.status, "seq": state.seq})
    return Decision(state, _round(state, "updated", now, event.event_id, keeps))


def _resolve(state: IncidentState, event, now: datetime) -> Decision:
    keeps = state.promised_at
    _next_round(state)
    changes = event.changes()
    if changes.get("message") is not None:
        state.message = changes["message"]
    if changes.get("title") is not None:
        state.title = changes["title"]
    state.status = "resolved"
    state.resolved_at = max(event.at, state.started_at)
    state.updated_at = max(event.at, state.updated_at)
    state.eta = None
    state.promised_at = None
    state.promise_explicit = False
    _remember(state, event.event_id, {"event_id": event.event_id, "type": RESOLVED, "at": event.at.isoformat(),
                                      "status": "resolved", "seq": state.seq})
    return Decision(state, _round(state, "resolved", now, event.event_id, keeps))


def schedule_due(state: IncidentState, now: datetime, lead: timedelta) -> datetime | None:
    """The promised time whose scheduled round must start now, if any.

    A round starts ``lead`` before the promised time, so that the last contact still hears
    from us by then; ``lead`` grows with the audience and shrinks with the send rate (see
    ``domain.schedule.lead_time``).
    """
    if state.resolved or state.promised_at is None:
        return None
    return state.promised_at if now >= state.promised_at - lead else None


def keep_promise(state: IncidentState | None, due: datetime, now: datetime,
                 lead: timedelta = timedelta(0), send: timedelta = timedelta(0)) -> Decision:
    """The promised time ``due`` is here and ops has posted nothing: a scheduled round.

    Idempotent per time slot: a tick for a promise already kept (or superseded by an update)
    is ignored, so two timers firing during a rebalance start one round, not two.

    The next promise is one interval after the one this round keeps (``due + interval``), the
    operator's cadence; a round decided after ``due`` (the brokers or the workers were down when
    it fell due) promises one interval after ``now`` instead, not the rest of an interval that
    has mostly gone by (measured: a round kept 19 s late after a broker outage promised the next
    update 9 s later). Only when that cannot be kept is it later, and then honestly so: this
    round takes ``send`` to reach everyone from ``now``, and the next must start ``lead`` before
    its promise, so no promise before ``now + send + lead`` can be kept for everyone
    (``stretched``; without that floor an audience slower to reach than the interval made every
    promise due at once, and rounds cascaded: measured, 19 in 3 minutes).
    """
    due = due.astimezone(timezone.utc)
    if state is None:
        return Decision(None, ignored="tick for an unknown incident")
    if state.resolved:
        return Decision(state, ignored="incident resolved")
    if state.last_trigger_key == f"tick:{due.isoformat()}":
        return Decision(state, ignored="promise already kept", resend=True)
    if state.promised_at is None or state.promised_at != due:
        return Decision(state, ignored="promise superseded by a later update")
    state = state.model_copy(deep=True)
    _next_round(state)
    cadence = promise(max(due, now.astimezone(timezone.utc)), state.interval(), now)
    floor = now.astimezone(timezone.utc) + send + lead
    state.promised_at = max(cadence, floor)
    state.promise_explicit = False
    state.history = (state.history + [{"event_id": None, "type": "scheduled", "at": now.isoformat(),
                                       "status": state.status, "seq": state.seq}])[-MAX_HISTORY:]
    return Decision(state, _round(state, "scheduled", now, f"tick:{due.isoformat()}", due),
                    stretched=floor > cadence)
