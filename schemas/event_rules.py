"""What the event schemas share (``schemas/incident.py``, ``schemas/maintenance.py``): the fields
an event sets, the checks every type of event makes, and the errors they raise.

* ``given_fields``: the fields present in the input (explicit nulls included), in field order
  (what an event's ``changes()`` returns).
* ``Failures``: the errors of one record, collected and raised together, each naming its field
  (one ``ValidationError``, so the API, the topic and the CLI give every reason at once).
* ``check_shape``: ``components`` is never an empty list; the type that creates the thing needs
  its fields (``required``); an ``updated`` event cannot null the fields that cannot be cleared.
* ``is_ahead``: a promised time (an ``eta``, a ``next_update_at``, a maintenance's ``ends_at``)
  is none, or later than the event's own time ``at``; ``instant`` writes ``at`` in an error.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


def is_ahead(value: datetime | None, at: datetime) -> bool:
    """The rule of a promised time: none given, or later than the event's time ``at``."""
    return value is None or value > at


def instant(value: datetime) -> str:
    """A time in UTC as an error message shows it (``2026-11-25T10:00:00Z``)."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Failures:
    """The errors found in ``model`` so far; ``raise_any`` raises them as one ``ValidationError``."""

    def __init__(self, model: BaseModel) -> None:
        self.model = model
        self.errors: list[InitErrorDetails] = []

    def fail(self, field: str, kind: str, message: str, **context: str) -> None:
        """An error of ``field``: ``message`` may name ``{context}`` keys."""
        self.errors.append(InitErrorDetails(type=PydanticCustomError(kind, message, context or None), loc=(field,),
                                            input=getattr(self.model, field)))

    def fail_record(self, kind: str, message: str) -> None:
        """An error of the record as a whole (no field)."""
        self.errors.append(InitErrorDetails(type=PydanticCustomError(kind, message), loc=(), input=None))

    def raise_any(self) -> None:
        if self.errors:
            raise ValidationError.from_exception_data(type(self.model).__name__, self.errors)


def check_shape(model: BaseModel, failures: Failures, event_type: str, *, creating: str,
                required: tuple[str, ...], not_clearable: tuple[str, ...]) -> None:
    """The checks of every event type: ``components`` not empty; a ``creating`` event has each of
    ``required``; an ``updated`` event does not null any of ``not_clearable``."""
    if getattr(model, "components", None) == []:
        failures.fail("components", "components_empty", "components cannot be empty")
    if event_type == creating:
        for field in required:
            if getattr(model, field) is None:
                failures.fail(field, "missing", f"field required when type is {creating}")
    elif event_type == "updated":
        for field in not_clearable:
            if field in model.model_fields_set and getattr(model, field) is None:
                failures.fail(field, "not_clearable", "cannot be null in an update (leave it out to keep it)")


def given_fields(model: BaseModel, fields_model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``fields_model`` present in ``model``'s input (explicit nulls included), in field order."""
    given = model.model_fields_set
    return {name: getattr(model, name) for name in fields_model.model_fields if name in given}
