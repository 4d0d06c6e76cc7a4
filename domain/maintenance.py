"""Planned maintenance: its state folded from events, and which notice each contact is owed, by when.

Pure (the time is passed in as ``now``); the maintenance agent (``streams/maintenance.py``) is the
single writer of a maintenance's state and its partition plans apply ``owed_to`` to the contacts
they hold. The rules, each in one place:

- ``decide(state, event)``: apply a scheduled/updated/cancelled/completed event -> new state (a new
  *round*) or the reason it is refused. A change to a cancelled or completed maintenance, or to one
  whose window is over, is refused; so is completing one that has not started (cancel it instead).
- ``owed_to(state, affected, known, now, lead)``: the one notice a contact is owed now (at most
  one: the next is worked out once that one is recorded), with the time it is due by:

  * ``maintenance-scheduled``: a contact of an affected customer not told of it yet (it was
    scheduled, or its scope grew to the customer), at once; when it is already starting (within
    ``lead`` of its start) or under way, ``maintenance-started`` is that contact's first notice;
  * ``maintenance-changed``: a contact told of an earlier window or text, at once;
  * ``maintenance-reminder``: ``reminder_seconds`` before the start, released ``lead`` seconds
    before that (the time the audience needs at the send rate). None when the window was set less
    than ``reminder_seconds`` before its start, when the contact was told of it after that time,
    or when the start itself is due;
  * ``maintenance-started``: due by ``starts_at``, released ``lead`` before it, never earlier;
  * ``maintenance-completed``: at ``ends_at`` (not before: it is not true before), or at once on
    a ``completed`` event;
  * ``maintenance-cancelled``: to a contact told of it, when it is cancelled or when its customer
    is no longer affected (scope shrank, services changed) before it is over.

  A contact who unsubscribed or chose ``none`` gets nothing (the caller passes ``domain.preferences.opted_out``).
- Message-IDs: ``<maintenance.round.kind.customer.contact@domain>``; announcements (scheduled,
  changed, cancelled) carry the maintenance's round, the timed notices (reminder, started,
  completed) the round of its window and text (``content_round``), so a change of scope alone
  does not make a new id for a notice that says the same.
- The maintenance's part of a customer's ledger entry (``entry["maintenance"][id]``): per contact
  the thread root (``first``), the content round it was told (``told``, ``told_at``), what each
  timed notice referred to (``said``), and its state (``active`` or ``cancelled``); and the
  Message-IDs sent. The incidents' part of the entry is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator

from pydantic import BaseModel

from core.vocabulary import M_CANCELLED, M_CHANGED, M_COMPLETED, M_REMINDER, M_SCHEDULED, M_STARTED
from domain.affected import Scope
from domain.deadlines import latest_start
from domain.ids import maintenance_message_id
from domain.ledger import record_in

Text = str | dict[str, str]

SCHEDULED, CANCELLED, COMPLETED = "scheduled", "cancelled", "completed"   # a maintenance's status
ACTIVE = "active"   # a contact in the conversation
MAX_REMEMBERED_EVENT_IDS = 500
MAX_HISTORY = 200
ANNOUNCEMENTS = (M_SCHEDULED, M_CHANGED, M_CANCELLED)
# the notices that arrive by their time (the others are said at once, or at the end)


class MaintenanceState(BaseModel):
    """What is known of a maintenance, as its agent keeps it (and as every partition's plan gets it)."""

    maintenance_id: str
    title: Text
    message: Text = ""
    components: list[str]
    regions: list[str] = []
    starts_at: datetime
    ends_at: datetime
    reminder_seconds: int
    status: str = SCHEDULED
    round: int = 1                    # events applied that changed something
    content_round: int = 1            # the round of the latest change of window or text
    window_set_at: datetime           # when the current window was announced (its event's time)
    previous_starts_at: datetime | None = None   # the window before the latest move
    previous_ends_at: datetime | None = None
    scheduled_at: datetime
    updated_at: datetime              # time of the latest applied event
    completed_at: datetime | None = None   # a completed event (it ended early)
    cancelled_at: datetime | None = None
    event_ids: list[str] = []
    history: list[dict] = []

    def scope(self) -> Scope:
        return Scope.of(self.components, self.regions)

    def end(self) -> datetime:
        """When it ends (or ended): a completed event's time, else ``ends_at``."""
        return self.completed_at or self.ends_at

    def reminder_at(self) -> datetime:
        return self.starts_at - timedelta(seconds=self.reminder_seconds)

    def reminds(self) -> bool:
        """Whether this window gets a reminder at all: it was announced ``reminder_seconds`` or more
        before its start."""
        return self.window_set_at <= self.reminder_at()

    def phase(self, now: datetime) -> str:
        """``upcoming``, ``running``, ``completed`` or ``cancelled`` at ``now``."""
        if self.status == CANCELLED:
            return CANCELLED
        if self.status == COMPLETED or now >= self.ends_at:
            return COMPLETED
        return "running" if now >= self.starts_at else "upcoming"


@dataclass(frozen=True)
class Decision:
    state: MaintenanceState | None
    changed: bool = False        # a new round: every partition's plan must see it
    ignored: str | None = None   # nothing to do (a duplicate event)
    error: str | None = None     # refused (dead letter; 404/409 at the API)
    unknown: bool = False        # the error is that the maintenance was never scheduled (404)


def _remember(state: MaintenanceState, event, entry: dict) -> None:
    state.event_ids = (state.event_ids + [event.event_id])[-MAX_REMEMBERED_EVENT_IDS:]
    state.history = (state.history + [entry])[-MAX_HISTORY:]


def _entry(event, state: MaintenanceState) -> dict:
    return {"event_id": event.event_id, "type": event.type, "at": event.at.isoformat(), "round": state.round}


def change_refused(state: MaintenanceState, at: datetime) -> str | None:
    """Why a change at ``at`` is refused (409 at the API), or None."""
    if state.status == CANCELLED:
        return f"maintenance {state.maintenance_id!r} is cancelled"
    if state.status == COMPLETED:
        return f"maintenance {state.maintenance_id!r} is completed"
    if at >= state.ends_at:
        return f"maintenance {state.maintenance_id!r} is over (it ended at {state.ends_at.isoformat()})"
    return None


def decide(state: MaintenanceState | None, event) -> Decision:
    """Apply a maintenance event (a ``schemas.MaintenanceEvent``)."""
    if state is not None and event.event_id in state.event_ids:
        return Decision(state, ignored=f"duplicate event_id {event.event_id!r}")
    if event.type == "scheduled":
        if state is not None:
            return Decision(state, error=f"maintenance {event.maintenance_id!r} was already scheduled")
        new = MaintenanceState(
            maintenance_id=event.maintenance_id, title=event.title, message=event.message or "",
            components=sorted(set(event.components)), regions=sorted(set(event.regions or [])),
            starts_at=event.starts_at, ends_at=event.ends_at, reminder_seconds=event.reminder_seconds,
            window_set_at=event.at, scheduled_at=event.at, updated_at=event.at)
        _remember(new, event, _entry(event, new))
        return Decision(new, changed=True)
    if state is None:
        return Decision(None, error=f"unknown maintenance {event.maintenance_id!r}: it was never scheduled",
                        unknown=True)
    refused = change_refused(state, event.at)
    if refused:
        return Decision(state, error=refused)
    new = state.model_copy(deep=True)
    changes = event.changes()
    if event.type == "updated":
        return _update(new, event, changes)
    if changes.get("message") is not None:
        new.message = changes["message"]
    if event.type == "cancelled":
        new.status, new.cancelled_at = CANCELLED, event.at
    elif event.type == "completed":
        if event.at < state.starts_at:
            return Decision(state, error=f"maintenance {state.maintenance_id!r} has not started: cancel it instead")
        new.status, new.completed_at = COMPLETED, event.at
    else:
        return Decision(state, error=f"unknown event type {event.type!r}")
    new.round += 1
    new.updated_at = max(event.at, state.updated_at)
    _remember(new, event, _entry(event, new))
    return Decision(new, changed=True)


def _update(new: MaintenanceState, event, changes: dict) -> Decision:
    old = new.model_copy()
    for name in ("title", "message", "components", "regions", "starts_at", "ends_at", "reminder_seconds"):
        if name not in changes:
            continue
        value = changes[name]
        if name in ("message",) and value is None:
            value = ""
        if name == "regions" and value is None:
            value = []
        if name in ("components", "regions"):
            value = sorted(set(value))
        if value is None:
            continue
        setattr(new, name, value)
    if new.ends_at <= new.starts_at:
        return Decision(old, error="ends_at must be later than starts_at")
    if event.at >= new.ends_at:
        return Decision(old, error="the new window is over already (ends_at must be later than the event's time)")
    window = (new.starts_at, new.ends_at) != (old.starts_at, old.ends_at)
    text = (new.title, new.message) != (old.title, old.message)
    if not window and not text and (new.components, new.regions, new.reminder_seconds) == (
            old.components, old.regions, old.reminder_seconds):
        _remember(new, event, _entry(event, new))   # nothing changed: remembered, no round
        return Decision(new, changed=False, ignored="the update changes nothing")
    new.round += 1
    if window:
        new.window_set_at = event.at
        new.previous_starts_at, new.previous_ends_at = old.starts_at, old.ends_at
    if window or text:
        new.content_round = new.round
    new.updated_at = max(event.at, old.updated_at)
    _remember(new, event, _entry(event, new))
    return Decision(new, changed=True)


def overlaps(a: Scope, b: Scope) -> bool:
    """Whether two scopes share a service: a component, and a region (no regions: every region)."""
    return bool(set(a.components) & set(b.components)) and (
        not a.regions or not b.regions or bool(set(a.regions) & set(b.regions)))


def under_way(states: Iterable[MaintenanceState], scope: Scope, at: datetime) -> list[dict]:
    """The maintenance running at ``at`` on a service of ``scope`` (what an incident's notices
    mention), by start: maintenance_id, title, ends_at (RFC 3339), components, regions."""
    found = sorted((m for m in states if m.phase(at) == "running" and overlaps(m.scope(), scope)),
                   key=lambda m: m.starts_at)
    return [{"maintenance_id": m.maintenance_id, "title": m.title, "ends_at": m.ends_at.isoformat(),
             "components": list(m.components), "regions": list(m.regions)} for m in found]


# -- what each contact is owed ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Owed:
    kind: str
    due: datetime     # when it should arrive by (the start, the reminder time), or when it became owed
    round: int        # the round its Message-ID carries


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def owed_to(m: MaintenanceState, affected: bool, known: dict | None, now: datetime,
            lead: float = 0.0) -> list[Owed]:
    """The notice (zero or one) owed now to one contact: ``affected`` whether its customer is
    affected now, ``known`` its part of the ledger (None: never told), ``lead`` how many seconds
    before a timed notice's time it may leave (what the audience needs at the send rate)."""
    told = known is not None and known.get("state") == ACTIVE
    ahead = timedelta(seconds=max(lead, 0.0))
    if m.status == CANCELLED:
        return [Owed(M_CANCELLED, m.cancelled_at or m.updated_at, m.round)] if told else []
    over = m.status == COMPLETED or now >= m.ends_at
    if not affected:
        # no longer concerns them; once it is over, nothing more is said
        return [Owed(M_CANCELLED, m.updated_at, m.round)] if told and not over else []
    said = (known or {}).get("said", {})
    if over:
        if told and not said.get(M_COMPLETED) and now >= m.end():
            return [Owed(M_COMPLETED, m.end(), m.content_round)]
        return []
    starting = now >= m.starts_at - ahead
    if not told:
        if starting:
            return [Owed(M_STARTED, m.starts_at, m.content_round)]
        return [Owed(M_SCHEDULED, m.updated_at, m.round)]
    if known.get("told", 0) < m.content_round:
        return [Owed(M_CHANGED, m.updated_at, m.round)]
    if starting:
        return [Owed(M_STARTED, m.starts_at, m.content_round)] if said.get(M_STARTED) != _iso(m.starts_at) else []
    remind = m.reminder_at()
    if (m.reminds() and now >= remind - ahead and said.get(M_REMINDER) != _iso(m.starts_at)
            and known.get("told_at", -math.inf) <= remind.timestamp()):
        return [Owed(M_REMINDER, remind, m.content_round)]
    return []


def checkpoints(m: MaintenanceState, lead: float) -> list[datetime]:
    """The times at which what is owed may change without an event (sorted): the reminder's and the
    start's release, and the end."""
    ahead = timedelta(seconds=max(lead, 0.0))
    times = [m.starts_at - ahead, m.end()]
    if m.reminds():
        times.append(m.reminder_at() - ahead)
    return sorted(times)


def lead_seconds(contacts: int, *, ahead: int, send_rate: float | None, base: float) -> float:
    """How long before a timed notice's time its audience must start leaving: planned as a holding
    update's deadline is (``domain.deadlines.latest_start``: the ``ahead`` notices queued and the
    ``contacts``, all due at that time, at ``send_rate`` with ``QUEUE_HEADROOM``, plus ``base``)."""
    return -latest_start([(0.0, contacts)], ahead=ahead, send_rate=max(send_rate or 0.0, 1e-6), base=base)


# -- the maintenance's part of a customer's ledger entry -------------------------------------------

def entry_of(entry: dict | None, maintenance_id: str) -> dict:
    return ((entry or {}).get("maintenance") or {}).get(maintenance_id, {})


def known_contacts(entry: dict | None, maintenance_id: str) -> dict[str, dict]:
    return entry_of(entry, maintenance_id).get("contacts", {})


def was_sent(entry: dict | None, maintenance_id: str, message_id: str) -> bool:
    return message_id in entry_of(entry, maintenance_id).get("sent", ())


def maintenance_in(entry: dict | None) -> list[str]:
    return list(((entry or {}).get("maintenance") or {}))


def record_sent(entry: dict | None, *, maintenance_id: str, recipient: str, email: str, message_id: str,
                kind: str, content_round: int, starts_at: datetime, sent: float) -> dict:
    """A new entry with one accepted maintenance notice added (the input is not modified)."""
    def change(contact: dict) -> None:
        contact["email"] = email
        said = dict(contact.get("said", {}))
        if kind == M_CANCELLED:
            contact["state"] = CANCELLED
            contact.pop("told", None)
            said = {}
        else:
            contact["state"] = ACTIVE
            if kind in (M_SCHEDULED, M_CHANGED, M_STARTED) and content_round >= contact.get("told", 0):
                contact["told"], contact["told_at"] = content_round, sent
            if kind in (M_REMINDER, M_STARTED):
                said[kind] = _iso(starts_at)
            if kind == M_COMPLETED:
                said[kind] = True
        contact["said"] = said

    return record_in(entry, "maintenance", maintenance_id, recipient, message_id, change)


# -- the notices, as jobs for the sender ----------------------------------------------------------

class MaintenanceRound(MaintenanceState):
    """What one kind of notice of a maintenance says, as the sender's jobs carry it (in place of an
    incident's ``Round``): the state, the round its Message-IDs carry (``seq``), the time its
    notices are due by (``keeps``: the sender's order, earliest first) and the lead it was planned
    with. It promises no next update in the incidents' sense (``next_update_at`` is None)."""

    seq: int
    kind: str
    at: datetime                      # when it was worked out
    keeps: datetime | None = None
    lead_seconds: float = 0.0
    next_update_at: None = None
    eta: None = None

    @property
    def incident_id(self) -> str:
        """The sender's and the delivery helpers' name for what a job belongs to (never an
        incident's id: those have no colon)."""
        return MAINTENANCE_PREFIX + self.maintenance_id

    def state(self) -> MaintenanceState:
        return MaintenanceState.model_validate(self.model_dump(include=set(MaintenanceState.model_fields)))


MAINTENANCE_PREFIX = "maintenance:"


def snapshot(m: MaintenanceState, owed: Owed, now: datetime, lead: float) -> MaintenanceRound:
    return MaintenanceRound.model_validate({**m.model_dump(), "seq": owed.round, "kind": owed.kind, "at": now,
                                            "keeps": owed.due, "lead_seconds": lead})


def plan(m: MaintenanceState, candidates: Iterable[str], customer_of, ledger_of, unsubscribed_of,
         now: datetime, lead: float, domain: str, job_type) -> list:
    """The notices owed now on one partition, all at once (see ``iter_plan``)."""
    return list(iter_plan(m, candidates, customer_of, ledger_of, unsubscribed_of, now, lead, domain, job_type))


def iter_plan(m: MaintenanceState, candidates: Iterable[str], customer_of, ledger_of, unsubscribed_of,
              now: datetime, lead: float, domain: str, job_type) -> Iterator:
    """The notices owed now on one partition, worked out one customer at a time as they are drawn
    (each customer's ledger entry read then): ``candidates`` the customer ids to look at (affected
    now, or told before), ``customer_of(id)`` the record (None: gone, gets nothing),
    ``ledger_of(id)`` its ledger entry, ``unsubscribed_of(entry)`` the recipients who opted out;
    ``job_type`` builds a job (``domain.audience.NoticeJob``)."""
    from domain.affected import affected_services
    from domain.ids import contact_key

    scope = m.scope()
    shared: dict[tuple[str, int], MaintenanceRound] = {}
    for cid in sorted(set(candidates)):
        customer = customer_of(cid)
        if customer is None:
            continue
        entry = ledger_of(cid)
        services = affected_services([(s.component, s.region) for s in customer.services], scope)
        known_all = known_contacts(entry, m.maintenance_id)
        opted_out = unsubscribed_of(entry)
        for contact in customer.contacts:
            key = contact_key(contact.email)
            if key in opted_out:
                continue
            known = known_all.get(key)
            for owed in owed_to(m, bool(services), known, now, lead):
                rnd = shared.get((owed.kind, owed.round))
                if rnd is None:
                    rnd = shared[(owed.kind, owed.round)] = snapshot(m, owed, now, lead)
                mid = maintenance_message_id(m.maintenance_id, owed.round, owed.kind, cid, key, domain)
                if was_sent(entry, m.maintenance_id, mid):
                    continue
                yield job_type(kind=owed.kind, round=rnd, customer=customer, recipient=key,
                               email=contact.email, contact_name=contact.name, message_id=mid,
                               in_reply_to=(known or {}).get("first"), services=services)


def still_owed(job, m: MaintenanceState | None, entry: dict | None, unsubscribed: frozenset[str],
               now: datetime) -> bool:
    """Whether a planned maintenance job is still owed right before it is sent: the ledger does
    not show it sent, the recipient did not opt out, and the rule, with the maintenance as its
    partition knows it now, still gives this very notice (a window moved or cancelled meanwhile
    makes its started or reminder owed no more)."""
    rnd = job.round
    if m is None or was_sent(entry, rnd.maintenance_id, job.message_id) or job.recipient in unsubscribed:
        return False
    from domain.affected import is_affected

    affected = is_affected([(s.component, s.region) for s in job.customer.services], m.scope())
    known = known_contacts(entry, rnd.maintenance_id).get(job.recipient)
    for owed in owed_to(m, affected, known, now, rnd.lead_seconds):
        if owed.kind == job.kind and owed.round == rnd.seq:
            return True
    return False
