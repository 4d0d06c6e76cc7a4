"""Signed links in emails (unsubscribe, feedback): HMAC over what the link acts on, no address in clear.

An unsubscribe token is three fields of unpadded URL-safe base64 (RFC 4648 §5) joined by dots. Verification is
strict, because a link arrives from anyone: a token with any character outside that alphabet
(padding included), a field that is not the canonical encoding of its bytes, or a wrong length
does not verify, and the signature is compared as bytes. So each (customer, recipient) has
exactly one valid token, and a crafted token never raises.

A feedback token (the five links of a ``resolved`` notice) is six fields, checked the same way:
the incident and the customer (base64), the recipient key, the customer's locale and the
incident's severity (so the page speaks the contact's language and the answer carries the
severity, on any worker, without a lookup), and the signature over all of them.

A contact token (the preferences page, and the unsubscribe link of notices composed since that page
exists) is five fields: the customer (base64), the recipient key, the customer's locale, the
contact's address (base64) and the signature over the link's purpose and all of them. It carries
the address so that the page, on any worker and without reading the customer (customers are held
per partition), can say which address it is about; the link is only ever sent to that address.
The three-field unsubscribe token of earlier notices still verifies (``verify_contact`` reads it,
without a locale or an address).

Key rotation: every ``verify_*`` takes one key or several (``Settings.verification_keys``: the
current ``OUTAGE_SECRET`` first, then ``OUTAGE_SECRET_PREVIOUS``); a token any of them signed
verifies. Tokens are always signed with the current key.

A customer status token (the "your services" link of every notice, ``GET /status/customer/{token}``)
is two fields: a payload and the signature over it. The payload is the customer's id, locale,
time zone and services as they were when the notice was composed, as compact JSON, deflated, in
unpadded URL-safe base64. It carries the services because a worker holds only the customers of
the partitions it owns (``streams/customers.py``): any worker can answer the link without a
lookup. A newer notice carries a newer link; a customer with so many services that the token
would pass ``MAX_TOKEN_LENGTH`` gets no link (``ValueError``; the notice still goes). The
signature is checked before anything is inflated, and inflating is bounded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import zlib
from dataclasses import dataclass
from typing import Iterable

from core.vocabulary import LOCALES, SEVERITIES
from domain.ids import TICKET_PREFIX, utf8_key

SIGNATURE_BYTES = 16
MAX_TOKEN_LENGTH = 2048   # ids are at most 256 bytes: a real token is far shorter
_FIELD = re.compile(r"[A-Za-z0-9_-]+")
# the recipient of a token: a contact key, or a ticket requester's (``domain/ids.py``)
_RECIPIENT = re.compile(f"(?:{re.escape(TICKET_PREFIX)})?[A-Za-z0-9_-]+")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes | None:
    """The bytes of an unpadded URL-safe base64 field, or None unless ``text`` is their
    canonical encoding (no padding, no other characters, no stray trailing bits)."""
    if not _FIELD.fullmatch(text) or len(text) % 4 == 1:
        return None
    standard = text.translate(str.maketrans("-_", "+/")) + "=" * (-len(text) % 4)
    try:
        raw = binascii.a2b_base64(standard.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None


def _mac(key: bytes, *parts: str) -> bytes:
    payload = "\x1f".join(parts).encode()
    return hmac.new(key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def sign(key: bytes, *parts: str) -> str:
    return _b64(_mac(key, *parts))


Keys = bytes | Iterable[bytes]
"""One key, or several (the current one and earlier ones): a token any of them signed verifies."""


def _signed(keys: Keys, signature: bytes, *parts: str) -> bool:
    """Whether ``signature`` is one of ``keys``' over ``parts`` (each compared in constant time)."""
    if isinstance(keys, (bytes, bytearray)):
        keys = (bytes(keys),)
    found = False
    for key in keys:
        found |= hmac.compare_digest(signature, _mac(key, *parts))
    return found


def _text(field: str) -> str | None:
    """The UTF-8 text a base64 field encodes, or None."""
    return utf8_key(_unb64(field))


def _signature(field: str) -> bytes | None:
    raw = _unb64(field)
    return raw if raw is not None and len(raw) == SIGNATURE_BYTES else None


def _fields(token: str, *counts: int) -> list[str] | None:
    """The dot-separated fields of a token of one of ``counts`` fields, not longer than a link
    carries; None for anything else."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    fields = token.split(".")
    return fields if len(fields) in counts else None


def unsubscribe_token(key: bytes, customer_id: str, recipient: str) -> str:
    """``<customer>.<recipient key>.<signature>``: verifiable, and names no address."""
    return f"{_b64(customer_id.encode())}.{recipient}.{sign(key, 'unsubscribe', customer_id, recipient)}"


def verify_unsubscribe(keys: Keys, token: str) -> tuple[str, str] | None:
    """``(customer_id, recipient)`` of a token one of ``keys`` signed; None for anything else."""
    fields = _fields(token, 3)
    if fields is None:
        return None
    cid_b64, recipient, signature_b64 = fields
    if not _RECIPIENT.fullmatch(recipient):
        return None
    customer_id, signature = _text(cid_b64), _signature(signature_b64)
    if customer_id is None or signature is None:
        return None
    if not _signed(keys, signature, "unsubscribe", customer_id, recipient):
        return None
    return customer_id, recipient


@dataclass(frozen=True, slots=True)
class FeedbackLink:
    """What a feedback token names: whose answer about which incident, and how to speak to them."""

    incident_id: str
    customer_id: str
    recipient: str    # the contact key (or ``ticket:<key>``) of ``domain/ids.py``
    locale: str       # the customer's locale: the page's language
    severity: str     # the incident's severity when it was resolved


def feedback_token(key: bytes, incident_id: str, customer_id: str, recipient: str, locale: str,
                   severity: str) -> str:
    """``<incident>.<customer>.<recipient key>.<locale>.<severity>.<signature>``; names no address."""
    if locale not in LOCALES or severity not in SEVERITIES or not _RECIPIENT.fullmatch(recipient):
        raise ValueError("a feedback token needs a known locale and severity and a recipient key")
    parts = ("feedback", incident_id, customer_id, recipient, locale, severity)
    return ".".join((_b64(incident_id.encode()), _b64(customer_id.encode()), recipient, locale, severity,
                     sign(key, *parts)))


def verify_feedback(keys: Keys, token: str) -> FeedbackLink | None:
    """What a feedback token one of ``keys`` signed names; None for anything else (never raises)."""
    fields = _fields(token, 6)
    if fields is None:
        return None
    iid_b64, cid_b64, recipient, locale, severity, signature_b64 = fields
    if not _RECIPIENT.fullmatch(recipient) or locale not in LOCALES or severity not in SEVERITIES:
        return None
    incident_id, customer_id, signature = _text(iid_b64), _text(cid_b64), _signature(signature_b64)
    if incident_id is None or customer_id is None or signature is None:
        return None
    if not _signed(keys, signature, "feedback", incident_id, customer_id, recipient, locale, severity):
        return None
    return FeedbackLink(incident_id, customer_id, recipient, locale, severity)


PREFERENCES = "preferences"
UNSUBSCRIBE = "unsubscribe"
PURPOSES = (PREFERENCES, UNSUBSCRIBE)


@dataclass(frozen=True, slots=True)
class ContactLink:
    """What a contact token names: one recipient of one customer, and how to speak to it."""

    customer_id: str
    recipient: str            # the contact key (or ``ticket:<key>``) of ``domain/ids.py``
    locale: str = "en"        # the customer's locale: the page's language
    email: str | None = None  # the address the link was sent to (None: an earlier unsubscribe token)


def contact_token(key: bytes, purpose: str, customer_id: str, recipient: str, locale: str, email: str) -> str:
    """``<customer>.<recipient key>.<locale>.<address>.<signature>`` for ``purpose``
    (``preferences`` or ``unsubscribe``): a token for one purpose does not verify for the other."""
    if purpose not in PURPOSES or locale not in LOCALES or not _RECIPIENT.fullmatch(recipient):
        raise ValueError("a contact token needs a known purpose and locale and a recipient key")
    return ".".join((_b64(customer_id.encode()), recipient, locale, _b64(email.encode()),
                     sign(key, purpose, customer_id, recipient, locale, email)))


def verify_contact(keys: Keys, purpose: str, token: str) -> ContactLink | None:
    """What a contact token for ``purpose`` one of ``keys`` signed names; for ``unsubscribe``
    also an earlier three-field token. None for anything else (never raises)."""
    fields = _fields(token, 5, 3)
    if fields is None or (len(fields) == 3 and purpose != UNSUBSCRIBE):
        return None
    if len(fields) == 3:
        found = verify_unsubscribe(keys, token)
        return ContactLink(*found) if found is not None else None
    cid_b64, recipient, locale, email_b64, signature_b64 = fields
    if not _RECIPIENT.fullmatch(recipient) or locale not in LOCALES:
        return None
    customer_id, email, signature = _text(cid_b64), _text(email_b64), _signature(signature_b64)
    if customer_id is None or email is None or signature is None:
        return None
    if not _signed(keys, signature, purpose, customer_id, recipient, locale, email):
        return None
    return ContactLink(customer_id, recipient, locale, email)


MAX_STATUS_PAYLOAD_BYTES = 64 * 1024   # what a status token's payload may inflate to


@dataclass(frozen=True, slots=True)
class StatusLink:
    """What a customer status token names: whose page, how to speak to them, and their services."""

    customer_id: str
    locale: str                                  # the customer's locale: the page's language
    timezone: str                                # the customer's IANA zone: the page's times
    services: tuple[tuple[str, str], ...]        # (component, region), as when the link was made


def status_token(key: bytes, customer_id: str, locale: str, timezone: str,
                 services: Iterable[tuple[str, str]]) -> str:
    """``<payload>.<signature>``; ValueError for an unknown locale or a token too long for a link."""
    if locale not in LOCALES:
        raise ValueError("a status token needs a known locale")
    payload = json.dumps([customer_id, locale, timezone, [[c, r] for c, r in services]],
                         ensure_ascii=False, separators=(",", ":")).encode()
    body = _b64(zlib.compress(payload, 9))
    token = f"{body}.{sign(key, 'status', body)}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError("too many services for a status link")
    return token


def verify_status(keys: Keys, token: str) -> StatusLink | None:
    """What a status token one of ``keys`` signed names; None for anything else (never raises)."""
    fields = _fields(token, 2)
    if fields is None:
        return None
    body, signature_b64 = fields
    raw, signature = _unb64(body), _signature(signature_b64)
    if raw is None or signature is None or not _signed(keys, signature, "status", body):
        return None
    try:   # signed by us, so well formed; still checked, never trusted to raise nothing
        inflater = zlib.decompressobj()
        payload = inflater.decompress(raw, MAX_STATUS_PAYLOAD_BYTES)
        if inflater.unconsumed_tail:
            return None
        customer_id, locale, timezone, services = json.loads(payload)
        pairs = tuple((c, r) for c, r in services)
    except (zlib.error, ValueError, TypeError, RecursionError):
        return None
    if not (isinstance(customer_id, str) and isinstance(timezone, str) and locale in LOCALES
            and all(isinstance(c, str) and isinstance(r, str) for c, r in pairs)):
        return None
    return StatusLink(customer_id, locale, timezone, pairs)
