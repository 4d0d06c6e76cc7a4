"""Incident events (topic ``outage.incident-events``, key ``incident_id``) and the HTTP API bodies.

Rules, by event type:

* ``declared`` needs ``severity``, ``title`` and ``components``; ``status`` defaults to
  ``investigating`` and cannot be ``resolved``.
* ``updated`` carries only what changes, and at least one field besides ``event_id``,
  ``incident_id``, ``type`` and ``at``: an update that changes nothing is refused ("changes
  nothing"; 400 from the API, a dead letter on the topic), as is any unknown field (``InputRecord``).
  A field absent from the input is unchanged; an
  explicit null clears it (``eta``, ``next_update_at``, ``update_interval_seconds``,
  ``regions``, ``message``). ``severity``, ``status``, ``title`` and ``components`` cannot be
  cleared, so null is an error for them. ``status`` cannot be ``resolved``: only a
  ``resolved`` event ends an incident (an update saying so would read resolved and go on
  notifying). ``changes()`` returns exactly the fields given.
* ``resolved`` may carry a ``message`` (and any other field); ``status`` is ``resolved``.
* ``title`` is one line of at most ``MAX_TITLE_CHARS`` characters per locale, ``message`` at
  most ``MAX_MESSAGE_CHARS`` per locale (``schemas/limits.py``).
* For every type, ``components`` cannot be an empty list; empty or null ``regions`` means
  every region. ``update_interval_seconds`` is a whole number of seconds, 1 to 30 days.
* For every type, ``eta`` and ``next_update_at`` are promises: each must be later than the
  event's own time ``at`` (``promise_is_ahead``). An estimate already past when it is given would
  tell every customer something untrue, and a next update promised for a time already past cannot
  be kept. The API bodies check it against their ``at`` when they give one, and their event
  (``to_event``, with ``at`` generated as now) checks it again; so the HTTP API (400), the topic
  (dead letter) and the command line (exit 2) refuse the same records with the same reason. The
  reference is ``at``, never the clock of whoever reads the record, so a record is valid or not
  once and for all (a replay decides the same).

Serializing an ``IncidentEvent`` writes only the fields that were given (``model_fields_set``),
so the absent-versus-null distinction survives a round trip through Kafka.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationError, model_serializer, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.vocabulary import DECLARED, INVESTIGATING, RESOLVED, EventType, Severity, Status

from .common import Id, Label, Message, InputRecord, Timestamp, Title
from .event_rules import Failures, check_shape, given_fields, instant, is_ahead

MAX_UPDATE_INTERVAL_SECONDS = 30 * 24 * 3600
IntervalSeconds = Annotated[int, Strict(), Field(gt=0, le=MAX_UPDATE_INTERVAL_SECONDS)]

_DECLARED_REQUIRED = ("severity", "title", "components")
# an update must change one of these (besides event_id, incident_id, type and at)
_CHANGEABLE = frozenset(("severity", "status", "title", "message", "components", "regions", "eta", "next_update_at",
                         "update_interval_seconds"))
CHANGES_NOTHING = "changes nothing: an update carries at least one field that changes"
_NOT_CLEARABLE = ("severity", "status", "title", "components")
# the fields that promise something about a time to come, and what a past one would break
PROMISES = {
    "eta": "a recovery estimate already past is no estimate to give customers",
    "next_update_at": "an update promised for a time already past cannot be kept",
}


promise_is_ahead = is_ahead
"""The rule of ``eta`` and ``next_update_at``: none, or later than the event's time ``at``."""


class IncidentFields(InputRecord):
    """The fields an incident event may set; shared by the event and the API bodies."""

    severity: Severity | None = None
    status: Status | None = None
    title: Title | None = None
    message: Message | None = None
    components: list[Label] | None = None
    regions: list[Label] | None = None
    eta: Timestamp | None = None
    next_update_at: Timestamp | None = None
    update_interval_seconds: IntervalSeconds | None = None

    def changes(self) -> dict[str, Any]:
        """The incident fields present in the input (explicit nulls included), in field order."""
        return given_fields(self, IncidentFields)

    def _apply_rules(self, event_type: str, at: datetime | None) -> None:
        """Check the per-type rules of the module docstring, and the promises against ``at`` (the
        event's time; None: not known yet, checked again by the event); fill the default ``status``."""
        failures = Failures(self)
        fail = failures.fail
        if event_type == "updated" and not self.model_fields_set & _CHANGEABLE:
            failures.fail_record("changes_nothing", CHANGES_NOTHING)
        check_shape(self, failures, event_type, creating="declared", required=_DECLARED_REQUIRED,
                    not_clearable=_NOT_CLEARABLE)
        if event_type == "declared" and self.status == "resolved":
            fail("status", "status", "a declared incident cannot start resolved")
        elif event_type == "updated" and self.status == "resolved":   # it would read resolved and go on notifying
            fail("status", "status", "an update cannot resolve: send a resolved event")
        elif event_type == "resolved" and self.status not in (None, "resolved"):
            fail("status", "status", "a resolved event has status 'resolved'")
        if at is not None:
            for field, why in PROMISES.items():
                if not is_ahead(getattr(self, field), at):
                    fail(field, "not_ahead", "must be later than the event's time ({at}): {why}",
                         at=instant(at), why=why)
        failures.raise_any()

        if self.status is None and event_type in (DECLARED, RESOLVED):
            self.status = INVESTIGATING if event_type == DECLARED else RESOLVED


class _EventHead(InputRecord):
    event_id: Id
    incident_id: Id
    type: EventType
    at: Timestamp


class IncidentEvent(IncidentFields, _EventHead):  # this base order puts the _EventHead fields first
    """One record of ``outage.incident-events``; see the module docstring for the rules."""

    @model_validator(mode="after")
    def _rules(self) -> IncidentEvent:
        self._apply_rules(self.type, self.at)
        return self

    @model_serializer(mode="wrap")
    def _given_fields_only(self, handler) -> dict[str, Any]:
        data = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}


def _to_event(body: IncidentFields, event_type: str, event_id: str, incident_id: str, at: datetime) -> IncidentEvent:
    data = {"event_id": event_id, "incident_id": incident_id, "type": event_type, "at": at, **body.changes()}
    return IncidentEvent.model_validate(data)


class IncidentDeclare(IncidentFields):
    """Body of ``POST /api/incidents``: a ``declared`` event whose ``event_id``,
    ``incident_id`` and ``at`` may be left out (the API generates them)."""

    type: Literal["declared"] = "declared"
    event_id: Id | None = None
    incident_id: Id | None = None
    at: Timestamp | None = None

    @model_validator(mode="after")
    def _rules(self) -> IncidentDeclare:
        self._apply_rules("declared", self.at)
        return self

    def to_event(self, *, event_id: str, incident_id: str, at: datetime) -> IncidentEvent:
        """The ``declared`` event; the arguments fill only what the body left out."""
        return _to_event(self, "declared", self.event_id or event_id, self.incident_id or incident_id, self.at or at)


def _same_incident(body: IncidentFields, incident_id: str) -> None:
    """A body that names its incident names the one in the path (400 naming ``incident_id``)."""
    given = getattr(body, "incident_id", None)
    if given is not None and given != incident_id:
        raise ValidationError.from_exception_data(type(body).__name__, [InitErrorDetails(
            type=PydanticCustomError("incident_mismatch", "{given} is not the incident in the path ({path})",
                                     {"given": repr(given), "path": repr(incident_id)}),
            loc=("incident_id",), input=given)])


class IncidentUpdateBody(IncidentFields):
    """Body of ``POST /api/incidents/{id}/updates``: the fields that change (as in an
    ``updated`` event); ``event_id`` and ``at`` may be left out, and so may ``type`` and
    ``incident_id`` (given, they must be ``updated`` and the incident in the path)."""

    type: Literal["updated"] = "updated"
    event_id: Id | None = None
    incident_id: Id | None = None
    at: Timestamp | None = None

    @model_validator(mode="after")
    def _rules(self) -> IncidentUpdateBody:
        self._apply_rules("updated", self.at)
        return self

    def to_event(self, *, incident_id: str, event_id: str, at: datetime) -> IncidentEvent:
        """The ``updated`` event for the incident in the path; keeps absent-versus-null."""
        _same_incident(self, incident_id)
        return _to_event(self, "updated", self.event_id or event_id, incident_id, self.at or at)


class IncidentResolveBody(IncidentFields):
    """Body of ``POST /api/incidents/{id}/resolve``: usually just ``message``;
    ``event_id`` and ``at`` may be left out, and so may ``type`` and ``incident_id`` (given,
    they must be ``resolved`` and the incident in the path)."""

    type: Literal["resolved"] = "resolved"
    event_id: Id | None = None
    incident_id: Id | None = None
    at: Timestamp | None = None

    @model_validator(mode="after")
    def _rules(self) -> IncidentResolveBody:
        self._apply_rules("resolved", self.at)
        return self

    def to_event(self, *, incident_id: str, event_id: str, at: datetime) -> IncidentEvent:
        """The ``resolved`` event for the incident in the path."""
        _same_incident(self, incident_id)
        return _to_event(self, "resolved", self.event_id or event_id, incident_id, self.at or at)
