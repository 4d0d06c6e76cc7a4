"""Help-desk ticket events (topic ``outage.ticket-events``, key ``ticket_id``)."""

from __future__ import annotations

from pydantic import ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.vocabulary import TicketEventType

from .common import Id, Label, InputRecord, Subject, Timestamp
from .customer import Contact


class TicketEvent(InputRecord):
    """A ticket opened or closed by a customer. ``opened`` needs ``subject`` (one line of at
    most ``MAX_SUBJECT_CHARS`` characters) and ``requester`` (a contact: its name is bounded as
    contacts' are); ``components`` is optional (absent, null or empty: not stated)."""

    event_id: Id
    ticket_id: Id
    customer_id: Id
    type: TicketEventType
    at: Timestamp
    subject: Subject | None = None
    requester: Contact | None = None
    components: list[Label] | None = None

    @model_validator(mode="after")
    def _opened_needs_subject_and_requester(self) -> TicketEvent:
        if self.type == "opened":
            missing = [field for field in ("subject", "requester") if getattr(self, field) is None]
            if missing:
                raise ValidationError.from_exception_data(type(self).__name__, [
                    InitErrorDetails(type=PydanticCustomError("missing", "field required when type is opened"),
                                     loc=(field,), input=None)
                    for field in missing
                ])
        return self
