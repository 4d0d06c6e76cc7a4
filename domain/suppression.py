"""Suppressed addresses: an address the SMTP server refused for good (a 5xx reply) gets no later
notice, of any customer, until ops lift it.

A suppression is a record of the compacted ``outage.suppressions`` topic, keyed by the address in
lower case: ``{"email", "at", "code", "reason"}`` (``reason``: the SMTP code and a short text,
with any address in it replaced, at most ``MAX_REASON_CHARS``); a tombstone (null value) lifts it.
``SuppressionBook`` folds those records, in offset order, into what is suppressed now: every
worker keeps one (``streams/suppressions.py``). Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Iterable

from domain.ids import utf8_key

MAX_REASON_CHARS = 200


def address_key(email: str) -> str:
    """The key of an address: the topic's key and the book's (addresses compare case-insensitively)."""
    return email.strip().lower()


def is_permanent_refusal(code: int | None) -> bool:
    """Whether an SMTP reply code refuses the address for good (5xx)."""
    return code is not None and 500 <= code < 600


def reason_of(code: int | None, text: str) -> str:
    """``<code> <text>`` on one line, at most ``MAX_REASON_CHARS`` (the caller scrubs addresses out)."""
    line = " ".join(f"{code if code is not None else ''} {text}".split())
    return line[:MAX_REASON_CHARS]


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    at: str            # RFC 3339, when the refusal came
    code: int | None   # the SMTP reply code
    reason: str        # the code and a short text

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def public(self) -> dict:
        """What the ops API lists."""
        return {"email": self.email, "at": self.at, "reason": self.reason}


def parse(raw: bytes) -> Suppression:
    """A suppression from a record's value; ValueError for anything else."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("email"), str) or not isinstance(data.get("at"), str):
        raise ValueError("not a suppression record")
    code = data.get("code")
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
        raise ValueError("code must be an integer")
    return Suppression(email=data["email"], at=data["at"], code=code, reason=str(data.get("reason") or ""))


class SuppressionBook:
    """Address key -> its suppression, as the records so far say."""

    def __init__(self) -> None:
        self._held: dict[str, Suppression] = {}
        self.skipped = 0   # records that were not suppressions (a view logs them)

    def __len__(self) -> int:
        return len(self._held)

    def put(self, suppression: Suppression) -> None:
        self._held[address_key(suppression.email)] = suppression

    def remove(self, email: str) -> None:
        self._held.pop(address_key(email), None)

    def get(self, email: str) -> Suppression | None:
        return self._held.get(address_key(email))

    def suppressed(self, email: str) -> bool:
        return address_key(email) in self._held

    def all(self) -> list[Suppression]:
        """Every suppression, newest first."""
        return sorted(self._held.values(), key=lambda s: (s.at, s.email), reverse=True)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Apply records (raw key, raw value) of the topic in offset order."""
        for raw_key, raw_value in records:
            key = utf8_key(raw_key)
            if not key:
                self.skipped += 1
                continue
            if raw_value is None:
                self.remove(key)
                continue
            try:
                suppression = parse(raw_value)
            except (ValueError, TypeError, RecursionError):
                self.skipped += 1
                continue
            if address_key(suppression.email) != address_key(key):
                self.skipped += 1
                continue
            self.put(suppression)
