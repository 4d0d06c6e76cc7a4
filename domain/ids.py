"""Deterministic identifiers: the same notice always gets the same Message-ID.

A retry or a restarted worker recomputes the id instead of remembering it, so a notice is
never sent under two ids. The recipient part is a short hash of the contact's address
(stable when the contact list is reordered; no address in the id). ``utf8_key`` reads a record's
key as the id it carries (the suppression book and the feedback view fold records by it).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


MAX_ATOM = 64


def _atom(value: str) -> str:
    """Make an id safe inside a Message-ID: anything but [A-Za-z0-9_-] is %-encoded; an id
    whose encoding is long keeps its start and gets a hash of the whole (still deterministic)."""
    encoded = _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)
    if len(encoded) <= MAX_ATOM:
        return encoded
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    head = encoded[:MAX_ATOM - 17]
    head = head[:head.rfind("%")] if "%" in head[-2:] else head  # never cut inside a %XX
    return f"{head}~{digest}"


def contact_key(email: str) -> str:
    """Stable, address-free key of a contact (12 hex digits of SHA-256 of the address)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]


# a ticket requester who is not one of the customer's contacts: ``ticket:<contact key>``
TICKET_PREFIX = "ticket:"


def message_id(incident_id: str, seq: int, kind: str, customer_id: str, recipient: str, domain: str) -> str:
    """``<incident.seq.kind.customer.recipient@domain>``; ``recipient`` is a contact key, or
    the ticket id for a ``ticket-ack``."""
    return f"<{_atom(incident_id)}.{int(seq)}.{kind}.{_atom(customer_id)}.{_atom(recipient)}@{domain}>"


def maintenance_message_id(maintenance_id: str, rnd: int, kind: str, customer_id: str, recipient: str,
                           domain: str) -> str:
    """``<maintenance.round.kind.customer.recipient@domain>`` for a maintenance notice (``kind`` is
    one of the ``maintenance-*`` kinds, so it never equals an incident notice's id)."""
    return f"<{_atom(maintenance_id)}.{int(rnd)}.{kind}.{_atom(customer_id)}.{_atom(recipient)}@{domain}>"


def utf8_key(raw: bytes | None) -> str | None:
    """A record's key (or a link's id) as text: None when there is none or it is not UTF-8."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
