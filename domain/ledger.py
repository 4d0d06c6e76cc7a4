"""The deliveries ledger: what each customer has been sent, per incident.

One entry per customer (so it lives on the customer's partition, next to the customer),
holding per incident and per recipient (contact key, or ``ticket:<id>`` for a ticket's
requester): the Message-ID of the first notice (the thread root), the newest round seq it
got, and where the conversation stands (``active`` while notices flow, ``unaffected`` after we
said it no longer concerns them, ``resolved`` at the end); plus the Message-IDs sent.
Checked before each send and written right after each SMTP acceptance, it makes every step
safe to repeat. Pure functions over plain dicts (the JSON kept in the changelogged table).
"""

from __future__ import annotations

from domain.kinds import RESOLVED, UNAFFECTED

ACTIVE = "active"


def incident_entry(entry: dict | None, incident_id: str) -> dict:
    """The customer's record for one incident (empty if never notified)."""
    if not entry:
        return {}
    return entry.get("incidents", {}).get(incident_id, {})


def recipients(entry: dict | None, incident_id: str) -> dict[str, dict]:
    """recipient key -> {"first", "seq", "state", "email"} for one incident."""
    return incident_entry(entry, incident_id).get("contacts", {})


def was_sent(entry: dict | None, incident_id: str, message_id: str) -> bool:
    return message_id in incident_entry(entry, incident_id).get("sent", ())


def incidents_in(entry: dict | None) -> list[str]:
    return list((entry or {}).get("incidents", {}))


def record_sent(entry: dict | None, *, incident_id: str, recipient: str, email: str, message_id: str,
                kind: str, seq: int) -> dict:
    """A new entry with one accepted notice added (the input is not modified)."""
    incidents = dict((entry or {}).get("incidents", {}))
    inc = dict(incidents.get(incident_id, {}))
    contacts = dict(inc.get("contacts", {}))
    contact = dict(contacts.get(recipient, {}))
    contact.setdefault("first", message_id)
    contact["seq"] = max(seq, contact.get("seq", 0))
    contact["email"] = email
    contact["state"] = RESOLVED if kind == RESOLVED else UNAFFECTED if kind == UNAFFECTED else ACTIVE
    contacts[recipient] = contact
    inc["contacts"] = contacts
    if message_id not in inc.get("sent", ()):
        inc["sent"] = list(inc.get("sent", [])) + [message_id]
    incidents[incident_id] = inc
    return {**(entry or {}), "incidents": incidents}


def unsubscribed(entry: dict | None) -> frozenset[str]:
    """Recipient keys that opted out of this customer's notices (one-click unsubscribe)."""
    return frozenset((entry or {}).get("unsubscribed", ()))


def record_unsubscribe(entry: dict | None, recipient: str) -> dict:
    entry = dict(entry or {})
    entry["unsubscribed"] = sorted(set(entry.get("unsubscribed", ())) | {recipient})
    return entry
