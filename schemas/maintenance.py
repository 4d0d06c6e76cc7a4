"""Planned maintenance events (topic ``outage.maintenance-events``, key ``maintenance_id``) and the
HTTP API bodies.

Rules, by event type:

* ``scheduled`` needs ``title``, ``components``, ``starts_at`` and ``ends_at``;
  ``reminder_seconds`` defaults to 3600 (``core.vocabulary.DEFAULT_REMINDER_SECONDS``).
* ``updated`` carries only what changes (title, message, components, regions, starts_at,
  ends_at, reminder_seconds). A field absent is unchanged; null clears ``message`` and
  ``regions`` (every region); the others cannot be null.
* ``cancelled`` and ``completed`` may carry a ``message`` (shown in their notices).
* For every type, ``components`` cannot be empty; ``ends_at`` must be after ``starts_at`` when
  both are given; the window is a promise, so a window already over is refused at the door:
  ``ends_at`` must be later than the event's own time ``at`` (``schemas/event_rules.py``
  ``is_ahead``, as an incident's promises). A window whose start is past but whose end is ahead
  is accepted (a maintenance announced as it begins). A window given by one end only in an ``updated`` event
  is checked against the other end when the event is applied (``domain/maintenance.py``).
* Timestamps need an offset (naive ones are invalid).

Serializing a ``MaintenanceEvent`` writes only the fields that were given, so absent-versus-null
survives a round trip through Kafka.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_serializer, model_validator

from core.vocabulary import DEFAULT_REMINDER_SECONDS, MaintenanceEventType

from .common import Id, Label, Message, Record, Timestamp, Title
from .event_rules import Failures, check_shape, given_fields, instant, is_ahead

MAX_REMINDER_SECONDS = 30 * 24 * 3600
ReminderSeconds = Annotated[int, Strict(), Field(gt=0, le=MAX_REMINDER_SECONDS)]

_SCHEDULED_REQUIRED = ("title", "components", "starts_at", "ends_at")
_NOT_CLEARABLE = ("title", "components", "starts_at", "ends_at", "reminder_seconds")


class MaintenanceFields(Record):
    """The fields a maintenance event may set; shared by the event and the API bodies."""

    title: Title | None = None
    message: Message | None = None
    components: list[Label] | None = None
    regions: list[Label] | None = None
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None
    reminder_seconds: ReminderSeconds | None = None

    def changes(self) -> dict[str, Any]:
        """The maintenance fields present in the input (explicit nulls included)."""
        return given_fields(self, MaintenanceFields)

    def _apply_rules(self, event_type: str, at: datetime | None) -> None:
        failures = Failures(self)
        check_shape(self, failures, event_type, creating="scheduled", required=_SCHEDULED_REQUIRED,
                    not_clearable=_NOT_CLEARABLE)
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            failures.fail("ends_at", "window", "must be later than starts_at")
        elif at is not None and not is_ahead(self.ends_at, at):
            failures.fail("ends_at", "not_ahead", "must be later than the event's time ({at}): a maintenance "
                          "already over is nothing to announce", at=instant(at))
        failures.raise_any()
        if event_type == "scheduled" and self.reminder_seconds is None:
            self.reminder_seconds = DEFAULT_REMINDER_SECONDS


class _EventHead(Record):
    event_id: Id
    maintenance_id: Id
    type: MaintenanceEventType
    at: Timestamp


class MaintenanceEvent(MaintenanceFields, _EventHead):
    """One record of ``outage.maintenance-events``; see the module docstring for the rules."""

    @model_validator(mode="after")
    def _rules(self) -> MaintenanceEvent:
        self._apply_rules(self.type, self.at)
        return self

    @model_serializer(mode="wrap")
    def _given_fields_only(self, handler) -> dict[str, Any]:
        data = handler(self)
        given = self.model_fields_set | ({"reminder_seconds"} if self.type == "scheduled" else set())
        return {key: value for key, value in data.items() if key in given}


def _to_event(body: MaintenanceFields, event_type: str, event_id: str, maintenance_id: str,
              at: datetime) -> MaintenanceEvent:
    data = {"event_id": event_id, "maintenance_id": maintenance_id, "type": event_type, "at": at, **body.changes()}
    return MaintenanceEvent.model_validate(data)


class _Body(MaintenanceFields):
    event_id: Id | None = None
    at: Timestamp | None = None
    _type = "updated"

    @model_validator(mode="after")
    def _rules(self):
        self._apply_rules(self._type, self.at)
        return self

    def to_event(self, *, maintenance_id: str, event_id: str, at: datetime) -> MaintenanceEvent:
        """The event for the maintenance in the path; the arguments fill only what the body left out."""
        return _to_event(self, self._type, self.event_id or event_id, maintenance_id, self.at or at)


class MaintenanceSchedule(_Body):
    """Body of ``POST /api/maintenance``: a ``scheduled`` event whose ``event_id``,
    ``maintenance_id`` and ``at`` may be left out (the API generates them)."""

    type: Literal["scheduled"] = "scheduled"
    maintenance_id: Id | None = None
    _type = "scheduled"

    def to_event(self, *, maintenance_id: str, event_id: str, at: datetime) -> MaintenanceEvent:
        return _to_event(self, "scheduled", self.event_id or event_id, self.maintenance_id or maintenance_id,
                         self.at or at)


class MaintenanceUpdateBody(_Body):
    """Body of ``POST /api/maintenance/{id}/updates``: the fields that change."""

    _type = "updated"


class MaintenanceCancelBody(_Body):
    """Body of ``POST /api/maintenance/{id}/cancel``: usually nothing, or a ``message``."""

    _type = "cancelled"


class MaintenanceCompleteBody(_Body):
    """Body of ``POST /api/maintenance/{id}/complete``: usually nothing, or a ``message``."""

    _type = "completed"
