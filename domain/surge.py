"""Ticket surges: many customers writing in about one component that no incident covers, a
possible incident nobody has declared yet (``outage.signals``). The rules, as pure functions with
the clock passed in.

- A *mention* is an opened ticket naming a component (one per component it names, its
  ``components``; a ticket naming none mentions nothing), with the ticket's time, its customer,
  and the regions where that customer has a service of that component (none: it has no such
  service, or the customer's inventory does not say).
- Per component, the mentions of the last ``window_seconds`` count: a mention's time is the
  ticket's ``at``, or now when that is later (a clock ahead); a ticket older than the window when
  it is counted counts nothing. A ticket counts once: a duplicate of its event, or the ticket
  opened again, is the same ticket.
- A mention that an active incident *covers* is explained by it and counts nothing, and a
  mention counted earlier that an active incident covers now is dropped (it was an early sign of
  that incident; its resolution does not bring it back). An incident covers a mention when it
  lists the component and (lists no regions, or the mention names no region, or one of the
  mention's regions is listed).
- A signal when, with a mention, at least ``tickets`` tickets from at least ``customers`` (3)
  customers count, unless a signal for the component went out less than ``window_seconds``
  before: once per window. The next signal counts only tickets after the previous one (the earlier
  ones have left the window by then).
- The signal's ``region``: the one region every counted ticket's customer has the component in,
  when there is exactly one; otherwise null (several regions, or a customer with no such service).

The state kept per component (on the mentions' partition, ``streams/surge.py``) is a JSON
object: ``{"mentions": [[ticket_id, customer_id, at, [regions]], ...], "signalled_at": at or null}``,
at most ``MAX_KEPT`` mentions (the newest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from domain.affected import Scope

POSSIBLE_INCIDENT = "possible-incident"
MIN_CUSTOMERS = 3     # the contract: "from at least 3 customers"
MAX_KEPT = 500        # mentions kept per component (OUTAGE_SURGE_TICKETS is at most this)


@dataclass(frozen=True, slots=True)
class SurgeRule:
    """``tickets`` (``OUTAGE_SURGE_TICKETS``) from ``customers`` customers within ``window_seconds``
    (``OUTAGE_SURGE_WINDOW_SECONDS``)."""

    tickets: int = 5
    window_seconds: int = 600
    customers: int = MIN_CUSTOMERS

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


@dataclass(frozen=True, slots=True)
class Mention:
    """One opened ticket naming ``component``; ``regions``: where its customer has that component."""

    component: str
    ticket_id: str
    customer_id: str
    at: datetime
    regions: tuple[str, ...] = ()
    event_id: str = ""

    def as_dict(self) -> dict:
        return {"component": self.component, "ticket_id": self.ticket_id, "customer_id": self.customer_id,
                "event_id": self.event_id, "at": self.at.isoformat(), "regions": list(self.regions)}

    @classmethod
    def from_dict(cls, data: dict) -> "Mention":
        """A mention as ``as_dict`` wrote it; ``ValueError`` (or ``KeyError``, ``TypeError``) when it is not one."""
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError("a mention's time has no offset")
        return cls(component=str(data["component"]), ticket_id=str(data["ticket_id"]),
                   customer_id=str(data["customer_id"]), at=at, regions=tuple(str(r) for r in data["regions"]),
                   event_id=str(data.get("event_id", "")))


@dataclass(frozen=True, slots=True)
class Signal:
    """A possible incident: what goes on ``outage.signals`` (keyed by ``component``)."""

    component: str
    region: str | None
    tickets: int
    customers: int
    window_seconds: int
    first_at: datetime
    at: datetime
    type: str = field(default=POSSIBLE_INCIDENT)


def mentions_of(*, ticket_id: str, customer_id: str, at: datetime, components: Iterable[str] | None,
                services: Iterable[tuple[str, str]], event_id: str = "") -> list[Mention]:
    """The mentions an opened ticket makes: one per component it names (none when it names none),
    each with the regions where the customer (``services``: its (component, region) pairs) has it."""
    services = tuple(services)
    return [Mention(component=c, ticket_id=ticket_id, customer_id=customer_id, at=at, event_id=event_id,
                    regions=tuple(sorted({r for sc, r in services if sc == c})))
            for c in sorted(set(components or ()))]


def covers(scope: Scope, component: str, regions: Iterable[str]) -> bool:
    """Whether an active incident of ``scope`` explains a ticket about ``component`` from a
    customer that has it in ``regions`` (none: no region known)."""
    if component not in scope.components:
        return False
    regions = tuple(regions)
    return not scope.regions or not regions or any(r in scope.regions for r in regions)


def _covered(active: Iterable[Scope], component: str, regions: Iterable[str]) -> bool:
    regions = tuple(regions)
    return any(covers(scope, component, regions) for scope in active)


def observe(state: dict | None, mention: Mention, *, rule: SurgeRule, now: datetime,
            active: Iterable[Scope] = ()) -> tuple[dict, Signal | None]:
    """Count ``mention`` in its component's ``state``, with the scopes of the incidents ``active``
    now: (the new state, the signal it makes or None)."""
    active = tuple(active)
    state = state or {}
    kept = [m for m in state.get("mentions", ())]
    signalled_at = _time(state.get("signalled_at"))
    horizon = now - rule.window
    at = min(mention.at, now)
    kept = [m for m in kept if _time(m[2]) > horizon and not _covered(active, mention.component, m[3])]
    if at > horizon and not _covered(active, mention.component, mention.regions) \
            and all(m[0] != mention.ticket_id for m in kept):
        kept.append([mention.ticket_id, mention.customer_id, at.isoformat(), list(mention.regions)])
        kept = kept[-MAX_KEPT:]
    new_state = {"mentions": kept, "signalled_at": state.get("signalled_at")}
    customers = {m[1] for m in kept}
    if len(kept) < rule.tickets or len(customers) < rule.customers:
        return new_state, None
    if signalled_at is not None and now < signalled_at + rule.window:
        return new_state, None   # once per window
    regions = {r for m in kept for r in m[3]}
    one_region = len(regions) == 1 and all(m[3] for m in kept)
    signal = Signal(component=mention.component, region=next(iter(regions)) if one_region else None,
                    tickets=len(kept), customers=len(customers), window_seconds=rule.window_seconds,
                    first_at=min(_time(m[2]) for m in kept), at=now)
    new_state["signalled_at"] = now.isoformat()
    return new_state, signal


def signals(mentions: Iterable[Mention], rule: SurgeRule, active: Iterable[Scope] = ()) -> list[Signal]:
    """The signals a sequence of mentions makes, each counted at its own time (list in, list out)."""
    active = tuple(active)
    states: dict[str, dict] = {}
    found = []
    now = None
    for mention in mentions:
        now = mention.at if now is None else max(now, mention.at)
        states[mention.component], signal = observe(states.get(mention.component), mention, rule=rule,
                                                    now=now, active=active)
        if signal is not None:
            found.append(signal)
    return found


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
