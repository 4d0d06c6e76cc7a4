"""Signed links in emails (unsubscribe): HMAC over what the link acts on, no address in clear."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign(key: bytes, *parts: str) -> str:
    payload = "\x1f".join(parts).encode()
    return _b64(hmac.new(key, payload, hashlib.sha256).digest()[:16])


def unsubscribe_token(key: bytes, customer_id: str, recipient: str) -> str:
    """``<customer>.<recipient key>.<signature>``: verifiable, and names no address."""
    return f"{_b64(customer_id.encode())}.{recipient}.{sign(key, 'unsubscribe', customer_id, recipient)}"


def verify_unsubscribe(key: bytes, token: str) -> tuple[str, str] | None:
    try:
        cid_b64, recipient, signature = token.split(".")
        customer_id = base64.urlsafe_b64decode(cid_b64 + "=" * (-len(cid_b64) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(signature, sign(key, "unsubscribe", customer_id, recipient)):
        return None
    return customer_id, recipient
