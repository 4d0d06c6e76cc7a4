"""Customer records (topic ``outage.customers``, key ``customer_id``; a null value deletes)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from .common import Email, Id, Label, Name, Record, Timezone, normalize_locale


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _null_to_empty(value: Any) -> Any:
    return [] if value is None else value


OptionalName = Annotated[Name | None, BeforeValidator(_blank_to_none)]
"""An optional name; blank means absent (a CSV import leaves empty cells)."""

OptionalLabel = Annotated[Label | None, BeforeValidator(_blank_to_none)]
"""An optional label (the tier); blank means absent."""


class Contact(Record):
    """Someone who receives the notices. ``email`` is validated without a DNS lookup and stored
    normalized; ``name`` is one line (control characters such as CR/LF are rejected) of at
    most ``MAX_NAME_CHARS`` characters (it goes into the ``To`` header)."""

    email: Email
    name: OptionalName = None


class Service(Record):
    """A component the customer uses in a region; both stripped, non-empty labels."""

    component: Label
    region: Label


class Customer(Record):
    """A customer and what it uses.

    * ``name`` is one line: control characters (CR/LF included) are rejected, not stripped;
      at most ``MAX_NAME_CHARS`` characters (``schemas/limits.py``), as for contacts' names.
    * ``locale`` is normalized to ``ja`` or ``en`` (unknown, null or absent -> ``en``).
    * ``timezone`` is an IANA name (null, blank or absent -> ``UTC``; unknown -> error).
    * ``contacts`` and ``services`` may be null or absent (= none); repeats are dropped,
      keeping the first (contacts compare by e-mail address, case-insensitively), so nobody
      gets the same notice twice.
    """

    customer_id: Id
    name: Name
    locale: Annotated[str, BeforeValidator(normalize_locale)] = "en"
    timezone: Timezone = "UTC"
    tier: OptionalLabel = None
    contacts: Annotated[list[Contact], BeforeValidator(_null_to_empty)] = Field(default_factory=list)
    services: Annotated[list[Service], BeforeValidator(_null_to_empty)] = Field(default_factory=list)

    @field_validator("contacts")
    @classmethod
    def _unique_contacts(cls, contacts: list[Contact]) -> list[Contact]:
        seen: set[str] = set()
        unique = []
        for contact in contacts:
            if contact.email.lower() not in seen:
                seen.add(contact.email.lower())
                unique.append(contact)
        return unique

    @field_validator("services")
    @classmethod
    def _unique_services(cls, services: list[Service]) -> list[Service]:
        seen: set[tuple[str, str]] = set()
        unique = []
        for service in services:
            if (service.component, service.region) not in seen:
                seen.add((service.component, service.region))
                unique.append(service)
        return unique
