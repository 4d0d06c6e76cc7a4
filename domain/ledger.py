"""The deliveries ledger: what each customer has been sent, per incident.

One entry per customer (so it lives on the customer's partition, next to the customer),
holding per incident and per recipient (contact key, or ``ticket:<id>`` for a ticket's
requester): the Message-ID of the first notice (the thread root), the newest round seq it
got, its deadline (``due``, epoch seconds: the next-update time its last notice stated;
``every``, the interval that notice counted with), ``sent_at`` (when its latest notice was
accepted: a holding update never follows it sooner than two thirds of an interval), and where
the conversation stands (``active`` while notices flow, ``unaffected`` after we said it no
longer concerns them, ``resolved`` at the end); plus the Message-IDs sent.
Checked before each send and written right after each SMTP acceptance, it makes every step
safe to repeat. Pure functions over plain dicts (the JSON kept in the changelogged table).
``record_in`` is the copy-on-write step of writing one notice down, shared with a planned
maintenance's part of the same entry (``domain/maintenance.py``).
"""

from __future__ import annotations

from typing import Callable

from core.vocabulary import RESOLVED, UNAFFECTED
from domain import preferences as P

ACTIVE = "active"


def incident_entry(entry: dict | None, incident_id: str) -> dict:
    """The customer's record for one incident (empty if never notified)."""
    if not entry:
        return {}
    return entry.get("incidents", {}).get(incident_id, {})


def recipients(entry: dict | None, incident_id: str) -> dict[str, dict]:
    """recipient key -> {"first", "seq", "state", "email", "due", "every", "sent_at"} for one incident."""
    return incident_entry(entry, incident_id).get("contacts", {})


def was_sent(entry: dict | None, incident_id: str, message_id: str) -> bool:
    return message_id in incident_entry(entry, incident_id).get("sent", ())


def incidents_in(entry: dict | None) -> list[str]:
    return list((entry or {}).get("incidents", {}))


def record_in(entry: dict | None, section: str, key: str, recipient: str, message_id: str,
              change: Callable[[dict], None]) -> dict:
    """A new entry (the input is not modified) in which ``entry[section][key]`` (an incident under
    ``incidents``, a maintenance under ``maintenance``: ``domain/maintenance.py``) counts
    ``message_id`` as sent and its ``recipient``'s record is changed by ``change``, which gets a
    copy whose ``first`` (the thread root) is set."""
    things = dict((entry or {}).get(section) or {})
    thing = dict(things.get(key, {}))
    contacts = dict(thing.get("contacts", {}))
    contact = dict(contacts.get(recipient, {}))
    contact.setdefault("first", message_id)
    change(contact)
    contacts[recipient] = contact
    thing["contacts"] = contacts
    if message_id not in thing.get("sent", ()):
        thing["sent"] = list(thing.get("sent", [])) + [message_id]
    things[key] = thing
    return {**(entry or {}), section: things}


def record_sent(entry: dict | None, *, incident_id: str, recipient: str, email: str, message_id: str,
                kind: str, seq: int, due: float | None = None, every: float | None = None,
                sent: float | None = None) -> dict:
    """A new entry with one accepted notice added (the input is not modified); ``due``: the
    next-update time it stated (None: it promised none, the recipient has no deadline now);
    ``sent``: when it was accepted (epoch seconds)."""
    def change(contact: dict) -> None:
        contact["seq"] = max(seq, contact.get("seq", 0))
        contact["email"] = email
        contact["state"] = RESOLVED if kind == RESOLVED else UNAFFECTED if kind == UNAFFECTED else ACTIVE
        if due is not None and contact["state"] == ACTIVE and seq >= contact.get("seq_due", 0):
            contact["due"], contact["every"], contact["seq_due"] = due, every, seq
        elif due is None and contact["state"] == ACTIVE and not P.owed_holding(entry, recipient):
            for name in ("due", "every", "seq_due"):   # start-and-end: its notice promised no update
                contact.pop(name, None)
        if contact["state"] == ACTIVE and sent is not None:
            contact["sent_at"] = max(sent, contact.get("sent_at", sent))
        elif contact["state"] != ACTIVE:
            for name in ("due", "every", "seq_due", "sent_at"):
                contact.pop(name, None)

    return record_in(entry, "incidents", incident_id, recipient, message_id, change)


def deadlines(entry: dict | None):
    """(incident, recipient, due, every, sent) of each recipient of this customer that is owed a
    notice by a stated time (``sent``: when its latest notice was accepted, None if not recorded).
    A recipient who chose start-and-end or none (or unsubscribed) is owed no holding update: it
    has no deadline here, whatever its last notice stated before it chose."""
    for incident_id, inc in (entry or {}).get("incidents", {}).items():
        for recipient, contact in inc.get("contacts", {}).items():
            if contact.get("state") == ACTIVE and contact.get("due") is not None and P.owed_holding(entry, recipient):
                yield incident_id, recipient, contact["due"], contact.get("every") or 0.0, contact.get("sent_at")


def unsubscribed(entry: dict | None) -> frozenset[str]:
    """Recipient keys that opted out of this customer's notices (one-click unsubscribe)."""
    return P.unsubscribed(entry)


def record_unsubscribe(entry: dict | None, recipient: str) -> dict:
    return P.apply_request(entry, {"recipient": recipient, "action": P.UNSUBSCRIBE})
