"""Customer records (topic ``outage.customers``, key ``customer_id``; a null value deletes)."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
import pydantic_core
from pydantic import BeforeValidator, Field, field_validator

from .common import (Email, Id, Label, Name, InputRecord, Timezone, _timezone_or_default, normalize_locale,
                     record_error_from, validate_email)
from .limits import MAX_ID_BYTES, MAX_LABEL_CHARS, MAX_NAME_CHARS
from .parse import MAX_RECORD_BYTES, parse_object


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _null_to_empty(value: Any) -> Any:
    return [] if value is None else value


OptionalName = Annotated[Name | None, BeforeValidator(_blank_to_none)]
"""An optional name; blank means absent (a CSV import leaves empty cells)."""

OptionalLabel = Annotated[Label | None, BeforeValidator(_blank_to_none)]
"""An optional label (the tier); blank means absent."""


class Contact(InputRecord):
    """Someone who receives the notices. ``email`` is validated without a DNS lookup and stored
    normalized; ``name`` is one line (control characters such as CR/LF are rejected) of at
    most ``MAX_NAME_CHARS`` characters (it goes into the ``To`` header)."""

    email: Email
    name: OptionalName = None


class Service(InputRecord):
    """A component the customer uses in a region; both stripped, non-empty labels."""

    component: Label
    region: Label


class Customer(InputRecord):
    """A customer and what it uses.

    * ``name`` is one line: control characters (CR/LF included) are rejected, not stripped;
      at most ``MAX_NAME_CHARS`` characters (``schemas/limits.py``), as for contacts' names.
    * ``locale`` is normalized to ``ja`` or ``en`` (unknown, null or absent -> ``en``).
    * ``timezone`` is an IANA name (null, blank or absent -> ``UTC``; unknown -> error).
    * ``contacts`` and ``services`` may be null or absent (= none); repeats are dropped,
      keeping the first (contacts compare by e-mail address, case-insensitively), so nobody
      gets the same notice twice.

    ``plain_customer`` below gives this model's result for plain records without it: a change
    here needs the same change there (tests/unit/test_customers.py compares the two).
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


# --- the same judgement, faster, for plain records -----------------------------------------
#
# A worker validates every customer when it first loads them (a million at a cold start), and
# the model and Python's JSON decoder cost most of that. ``parse_customer`` is
# ``parse_record(Customer, raw)`` reduced to what the customers' store keeps, and it takes a
# short way for plain records: pydantic-core's JSON parser (stricter than Python's: it refuses
# NaN, a byte-order mark, lone surrogates and deep nesting, and where both accept a text they
# give the same values), then ``plain_customer``, which gives the model's result for the
# records it is sure of and None for any other. Whatever the short way is not sure of goes the
# long way (Python's decoder and the model), which words every error as before. It is sure
# only of text that ``str.isprintable`` accepts: no control characters, and no whitespace but
# the ASCII space, so Python's ``strip`` and pydantic's agree; the record is written by the
# serializer of ``model_dump_json``. tests/unit/test_customers.py compares both ways.


def _plain_line(value: Any, limit: int) -> str | None:
    """A ``Line`` of at most ``limit`` characters, stripped; None when not surely one."""
    if type(value) is not str or not value.isprintable():
        return None
    value = value.strip(" ")
    return value if 0 < len(value) <= limit else None


_ABSENT = object()


def _plain_optional(value: Any, limit: int) -> tuple[bool, str | None]:
    """An ``OptionalName`` / ``OptionalLabel``: (sure, value)."""
    if value is _ABSENT or _blank_to_none(value) is None:
        return True, None
    line = _plain_line(value, limit)
    return line is not None, line


def _plain_items(value: Any) -> list | None:
    value = _null_to_empty(value)
    if type(value) is not list or any(type(item) is not dict for item in value):
        return None
    return value


_CUSTOMER_FIELDS = frozenset(Customer.model_fields)
_CONTACT_FIELDS = frozenset(Contact.model_fields)
_SERVICE_FIELDS = frozenset(Service.model_fields)


def plain_customer(data: dict) -> tuple[str, bytes, list[tuple[str, str]]] | None:
    """For a record that ``Customer.model_validate(data)`` surely accepts: its ``customer_id``,
    ``model_dump_json()`` (UTF-8) and its services as (component, region) pairs; else None."""
    if not _CUSTOMER_FIELDS.issuperset(data):   # an unknown field: the model names it
        return None
    cid = data.get("customer_id")
    if (type(cid) is not str or not cid or not cid.isprintable() or cid != cid.strip()
            or len(cid.encode()) > MAX_ID_BYTES):
        return None
    name = _plain_line(data.get("name"), MAX_NAME_CHARS)
    if name is None:
        return None
    locale = normalize_locale(data.get("locale"))
    if "timezone" in data:
        try:
            timezone = _timezone_or_default(data["timezone"])
        except Exception:  # noqa: BLE001 - the model says why
            return None
        if type(timezone) is not str or not timezone.isprintable():
            return None
    else:
        timezone = "UTC"
    sure, tier = _plain_optional(data.get("tier", _ABSENT), MAX_LABEL_CHARS)
    if not sure:
        return None
    contacts = _plain_items(data.get("contacts"))
    services = _plain_items(data.get("services"))
    if contacts is None or services is None:
        return None
    out_contacts, seen_emails = [], set()
    for contact in contacts:
        if not _CONTACT_FIELDS.issuperset(contact):
            return None
        try:
            email = validate_email(contact.get("email", _ABSENT))
        except Exception:  # noqa: BLE001 - the model says why
            return None
        sure, contact_name = _plain_optional(contact.get("name", _ABSENT), MAX_NAME_CHARS)
        if not sure:
            return None
        if email.lower() not in seen_emails:
            seen_emails.add(email.lower())
            out_contacts.append({"email": email, "name": contact_name})
    out_services, pairs, seen_pairs = [], [], set()
    for service in services:
        if not _SERVICE_FIELDS.issuperset(service):
            return None
        component = _plain_line(service.get("component"), MAX_LABEL_CHARS)
        region = _plain_line(service.get("region"), MAX_LABEL_CHARS)
        if component is None or region is None:
            return None
        if (component, region) not in seen_pairs:
            seen_pairs.add((component, region))
            pairs.append((component, region))
            out_services.append({"component": component, "region": region})
    record = {"customer_id": cid, "name": name, "locale": locale, "timezone": timezone, "tier": tier,
              "contacts": out_contacts, "services": out_services}
    return cid, pydantic_core.to_json(record), pairs


def parse_customer(raw: bytes) -> tuple[str, bytes, list[tuple[str, str]]]:
    """``parse_record(Customer, raw)`` as what a store keeps of it: the ``customer_id``, the
    record's ``model_dump_json()`` in UTF-8 and its services as (component, region) pairs.
    Raises ``RecordError`` as ``parse_record`` does."""
    if len(raw) <= MAX_RECORD_BYTES:
        try:
            data = pydantic_core.from_json(raw, allow_inf_nan=False)
        except ValueError:
            data = None
        if type(data) is dict:
            plain = plain_customer(data)
            if plain is not None:
                return plain
    data = parse_object(raw)
    try:
        customer = Customer.model_validate(data)
    except pydantic.ValidationError as exc:
        raise record_error_from(exc) from None
    return (customer.customer_id, customer.model_dump_json().encode(),
            [(s.component, s.region) for s in customer.services])
