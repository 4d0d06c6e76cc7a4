"""Signed links in emails (unsubscribe): HMAC over what the link acts on, no address in clear.

A token is three fields of unpadded URL-safe base64 (RFC 4648 §5) joined by dots. Verification is
strict, because a link arrives from anyone: a token with any character outside that alphabet
(padding included), a field that is not the canonical encoding of its bytes, or a wrong length
does not verify, and the signature is compared as bytes. So each (customer, recipient) has
exactly one valid token, and a crafted token never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from domain.ids import TICKET_PREFIX

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


def unsubscribe_token(key: bytes, customer_id: str, recipient: str) -> str:
    """``<customer>.<recipient key>.<signature>``: verifiable, and names no address."""
    return f"{_b64(customer_id.encode())}.{recipient}.{sign(key, 'unsubscribe', customer_id, recipient)}"


def verify_unsubscribe(key: bytes, token: str) -> tuple[str, str] | None:
    """``(customer_id, recipient)`` of a token this key signed; None for anything else."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    fields = token.split(".")
    if len(fields) != 3:
        return None
    cid_b64, recipient, signature_b64 = fields
    if not _RECIPIENT.fullmatch(recipient):
        return None
    raw_cid, signature = _unb64(cid_b64), _unb64(signature_b64)
    if raw_cid is None or signature is None or len(signature) != SIGNATURE_BYTES:
        return None
    try:
        customer_id = raw_cid.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not hmac.compare_digest(signature, _mac(key, "unsubscribe", customer_id, recipient)):
        return None
    return customer_id, recipient
