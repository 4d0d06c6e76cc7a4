"""What each contact chose to receive, kept in the customer's ledger entry (``domain/ledger.py``).

A contact (a recipient key: a contact key, or ``ticket:<key>`` for a ticket's requester) receives
``all`` notices (the default), ``start-and-end`` (``acknowledged``, ``resolved``, ``unaffected``,
the ``maintenance-*`` kinds, and ``ticket-ack``, which answers the contact's own ticket), or
``none``. A one-click unsubscribe (RFC 8058) is ``none`` too, kept apart in the entry's
``unsubscribed`` list as it always was, so records written before choices existed still read the same.

A request (the ``preferences`` topic, ``streams/preferences.py``) is ``{"customer_id",
"recipient", "action": "unsubscribe"|"receive", "receive": <choice, for receive>, "at"}``.
Applying one records the choice and the one before it (``previous``): undo is a ``receive``
request back to ``previous``, so every request names its outcome and applying it twice (a replay)
changes nothing more. A ``receive`` request also lifts an unsubscribe.

Pure functions over plain dicts: the entry is the JSON kept in the changelogged ledger table, and
the view every worker keeps (``streams/preferences_view.py``) folds the same requests with them.
"""

from __future__ import annotations

import json

from core.vocabulary import (MAINTENANCE_KIND_PREFIX, RECEIVE_ALL, RECEIVE_CHOICES, RECEIVE_NONE,
                             RECEIVE_START_AND_END, SCHEDULED, START_AND_END_KINDS)

UNSUBSCRIBE = "unsubscribe"
RECEIVE = "receive"
ACTIONS = (UNSUBSCRIBE, RECEIVE)


class BadRequest(ValueError):
    """A preferences request that cannot be applied; ``field`` names what is wrong."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_request(request) -> dict:
    """``request`` when it can be applied; raises ``BadRequest`` naming the field otherwise. A
    request without ``action`` is an unsubscribe (none was written without one, but a reader of
    old records should not be stricter than the writer was)."""
    if not isinstance(request, dict):
        raise BadRequest("must be a JSON object", "record")
    for name in ("customer_id", "recipient"):
        if not isinstance(request.get(name), str) or not request[name]:
            raise BadRequest("must be a non-empty string", name)
    action = request.get("action", UNSUBSCRIBE)
    if action not in ACTIONS:
        raise BadRequest(f"must be one of {', '.join(ACTIONS)}", "action")
    if action == RECEIVE and request.get("receive") not in RECEIVE_CHOICES:
        raise BadRequest(f"must be one of {', '.join(RECEIVE_CHOICES)}", "receive")
    return request


def unsubscribed(entry: dict | None) -> frozenset[str]:
    """Recipient keys that opted out with the one-click unsubscribe."""
    return frozenset((entry or {}).get("unsubscribed", ()))


def choice(entry: dict | None, recipient: str) -> str:
    """What the recipient chose on the page or through ops (``all`` when nothing), unsubscribed or not."""
    return ((entry or {}).get("receive", {}).get(recipient) or {}).get("receive", RECEIVE_ALL)


def previous(entry: dict | None, recipient: str) -> str | None:
    """What the recipient received before its latest change (what undo goes back to), if it changed."""
    return ((entry or {}).get("receive", {}).get(recipient) or {}).get("previous")


def receive_of(entry: dict | None, recipient: str) -> str:
    """What the recipient receives now: ``none`` when unsubscribed, else its choice."""
    if not entry:
        return RECEIVE_ALL
    if recipient in entry.get("unsubscribed", ()):
        return RECEIVE_NONE
    return choice(entry, recipient)


def wants_kind(receive: str, kind: str) -> bool:
    """Whether a recipient receiving ``receive`` gets a notice of ``kind``."""
    if receive == RECEIVE_ALL:
        return True
    if receive == RECEIVE_START_AND_END:
        return kind in START_AND_END_KINDS or kind.startswith(MAINTENANCE_KIND_PREFIX)
    return False


def wants(entry: dict | None, recipient: str, kind: str) -> bool:
    """Whether the recipient gets a notice of ``kind`` (the audience and ticket plans ask this)."""
    return wants_kind(receive_of(entry, recipient), kind)


def owed_holding(entry: dict | None, recipient: str) -> bool:
    """Whether the recipient is owed holding updates (``scheduled``): not when start-and-end or none."""
    return wants(entry, recipient, SCHEDULED)


def apply_request(entry: dict | None, request: dict) -> dict:
    """A new entry with the (checked) request applied; the input is not modified."""
    recipient = request["recipient"]
    before = receive_of(entry, recipient)
    entry = dict(entry or {})
    choices = dict(entry.get("receive", {}))
    record = dict(choices.get(recipient) or {})
    unsub = set(entry.get("unsubscribed", ()))
    if request.get("action", UNSUBSCRIBE) == UNSUBSCRIBE:
        unsub.add(recipient)
        after = RECEIVE_NONE
    else:
        unsub.discard(recipient)
        after = record["receive"] = request["receive"]
    if after != before:
        record["previous"] = before
        if request.get("at"):
            record["at"] = request["at"]
    if record:
        choices[recipient] = record
    if choices:
        entry["receive"] = choices
    if unsub:
        entry["unsubscribed"] = sorted(unsub)
    else:
        entry.pop("unsubscribed", None)
    return entry


def preferences_of(entry: dict | None) -> dict:
    """The preferences part of an entry alone (what the view keeps)."""
    out = {}
    for name in ("receive", "unsubscribed"):
        if (entry or {}).get(name):
            out[name] = entry[name]
    return out


class PreferenceBook:
    """customer_id -> the preferences part of its entry, folded from the preferences topic's
    requests in offset order, as the ledger folds them (what the web reads on every worker)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}
        self.skipped = 0   # records that were not requests (the agent dead-letters them)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, customer_id: str) -> dict | None:
        return self._entries.get(customer_id)

    def put(self, request: dict) -> None:
        """Apply one request (checked first; a bad one is counted and skipped)."""
        try:
            check_request(request)
        except BadRequest:
            self.skipped += 1
            return
        cid = request["customer_id"]
        self._entries[cid] = apply_request(self._entries.get(cid), request)

    def apply(self, records) -> None:
        """Apply records (raw key, raw value) of the preferences topic in offset order."""
        for _, raw_value in records:
            try:
                request = json.loads(raw_value) if raw_value is not None else None
            except (ValueError, RecursionError):
                request = None
            if request is None:
                self.skipped += 1
                continue
            self.put(request)


def opted_out(entry: dict | None) -> frozenset[str]:
    """Recipients who receive nothing (unsubscribed, or chose ``none``): what a plan that sends only
    kinds every other choice receives (the maintenance notices) leaves out."""
    if not entry:
        return frozenset()
    nothing = {r for r, record in entry.get("receive", {}).items() if (record or {}).get("receive") == RECEIVE_NONE}
    return frozenset(entry.get("unsubscribed", ())) | nothing
