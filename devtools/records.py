"""Builders of the pipeline's input records — customers, incident events, ticket events — as the
dicts a producer sends (docs/contract.md), with plain defaults and keyword overrides: for the
bench and the tests, which need many records that differ in a field or two."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as _tz
from typing import Any, Iterable, Sequence

from core import vocabulary as V

Record = dict[str, Any]


def now_iso(delta: float = 0.0) -> str:
    """Now (plus ``delta`` seconds) in UTC, as a record's ``at``."""
    return (datetime.now(_tz.utc) + timedelta(seconds=delta)).isoformat()


def contact(email: str, name: str | None = None) -> Record:
    """One contact of a customer; without ``name`` the record has none."""
    return {"email": email} if name is None else {"email": email, "name": name}


def numbered_contacts(n: int, local: str, domain: str = "example.com") -> list[Record]:
    """``n`` contacts ``{local}.{k}@{domain}``, named "Contact k"."""
    return [contact(f"{local}.{k}@{domain}", f"Contact {k}") for k in range(n)]


def service(component: str, region: str) -> Record:
    return {"component": component, "region": region}


def customer(customer_id: str, *, name: str | None = None, locale: str | None = V.DEFAULT_LOCALE,
             timezone: str | None = "UTC", tier: str | None = None,
             contacts: int | Sequence[str | Record] = 1,
             services: Iterable[tuple[str, str] | Record] = (("api", "ap-northeast-1"),), **extra: Any) -> Record:
    """A ``customers`` record.

    ``name``: "Customer {customer_id}" unless given; ``locale``, ``timezone``, ``tier``: None
    leaves the field out (the schema's default then); ``contacts``: how many (numbered, at
    ``{customer_id}.{k}@example.com``), or each one as an address or a contact record;
    ``services``: (component, region) pairs or service records; ``extra``: further fields, last.
    """
    record: Record = {"customer_id": customer_id, "name": f"Customer {customer_id}" if name is None else name}
    if locale is not None:
        record["locale"] = locale
    if timezone is not None:
        record["timezone"] = timezone
    if tier is not None:
        record["tier"] = tier
    record["contacts"] = (numbered_contacts(contacts, customer_id) if isinstance(contacts, int)
                          else [contact(c) if isinstance(c, str) else c for c in contacts])
    record["services"] = [s if isinstance(s, dict) else service(*s) for s in services]
    record.update(extra)
    return record


def declared(incident_id: str, components: Any = ("api",), *, event_id: str | None = None, at: str | None = None,
             severity: str = "major", status: str = V.INVESTIGATING, title: Any = None, message: Any = None,
             regions: Any = (), update_interval_seconds: Any = 3600, **extra: Any) -> Record:
    """An ``incident-events`` record declaring ``incident_id`` on ``components`` (in every region
    unless ``regions`` says which). Its event id is "{incident_id}-declared", its ``at`` now and
    its title "Trouble {incident_id}", unless given; ``extra``: further fields, last (or a field
    above replaced in place, e.g. ``type``). A tuple given for components or regions is sent as a
    list; anything else as it is (a test of bad input sends a string)."""
    record: Record = {
        "event_id": event_id or f"{incident_id}-{V.DECLARED}", "incident_id": incident_id, "type": V.DECLARED,
        "at": at or now_iso(), "severity": severity, "status": status,
        "title": {"en": f"Trouble {incident_id}", "ja": f"障害 {incident_id}"} if title is None else title,
        "message": {"en": "We are investigating.", "ja": "調査しております。"} if message is None else message,
        "components": list(components) if isinstance(components, tuple) else components,
        "regions": list(regions) if isinstance(regions, tuple) else regions,
        "update_interval_seconds": update_interval_seconds,
    }
    record.update(extra)
    return record


def updated(incident_id: str, event_id: str, *, at: str | None = None, **fields: Any) -> Record:
    """An ``updated`` event of ``incident_id`` saying ``fields`` (status, message, eta, ...), at now unless given."""
    return {"event_id": event_id, "incident_id": incident_id, "type": V.UPDATED, "at": at or now_iso(), **fields}


def resolved(incident_id: str, event_id: str, *, at: str | None = None, **fields: Any) -> Record:
    """A ``resolved`` event of ``incident_id`` (``fields``: e.g. its message), at now unless given."""
    return {"event_id": event_id, "incident_id": incident_id, "type": V.RESOLVED, "at": at or now_iso(), **fields}


def ticket(ticket_id: str, customer_id: str, requester: str | Record | None, *, type: str = "opened",
           event_id: str | None = None, at: str | None = None, subject: str = "API returns 503",
           components: list[str] | None = None, **extra: Any) -> Record:
    """A ``ticket-events`` record of ``customer_id``'s ticket, opened unless ``type`` says
    otherwise; ``requester``: an address, a contact record, or None (a bad ``opened``). Its event
    id is "t-{ticket_id}" and its ``at`` now unless given; ``components`` None leaves the field
    out; ``extra``: further fields, last."""
    record: Record = {"event_id": event_id or f"t-{ticket_id}", "ticket_id": ticket_id, "customer_id": customer_id,
                      "type": type, "at": at or now_iso(), "subject": subject,
                      "requester": contact(requester) if isinstance(requester, str) else requester}
    if components is not None:
        record["components"] = components
    record.update(extra)
    return record


def maintenance(maintenance_id: str, type: str = "scheduled", *, event_id: str | None = None, at: str | None = None,
                **fields: Any) -> Record:
    """A ``maintenance-events`` record (``fields``: title, message, components, regions, starts_at,
    ends_at, reminder_seconds, as given); its event id "{maintenance_id}-{type}" and its ``at`` now
    unless given. A ``scheduled`` one gets a title and the API component unless ``fields`` say."""
    record: Record = {"event_id": event_id or f"{maintenance_id}-{type}", "maintenance_id": maintenance_id,
                      "type": type, "at": at or now_iso()}
    if type == "scheduled":
        fields.setdefault("title", {"en": f"Maintenance {maintenance_id}", "ja": f"メンテナンス {maintenance_id}"})
        fields.setdefault("components", ["api"])
    record.update(fields)
    return record
