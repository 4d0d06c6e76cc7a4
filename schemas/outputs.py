"""Records the project writes: notices, ticket updates, feedback, signals and dead letters.

Timestamps are aware and serialize as RFC 3339 with their offset (``Z`` for UTC).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import Field, Strict

from core.vocabulary import NoticeKind, Severity, TicketAction

from .common import Comment, Email, Id, Label, Line, Record, Text, Timestamp


Seq = Annotated[int, Strict(), Field(ge=1)]
KafkaPosition = Annotated[int, Strict(), Field(ge=0)]
Score = Annotated[int, Strict(), Field(ge=1, le=5)]
Count = Annotated[int, Strict(), Field(ge=1)]

# A dead letter repeats the bad value; cut it so that the dead letter itself stays well
# under the broker's default 1 MB message limit.
DEAD_LETTER_VALUE_LIMIT = 100_000


class NoticeRecord(Record):
    """One email handed to the SMTP server (topic ``outage.notices``, key ``customer_id``).
    ``notice_id`` is the Message-ID; ``seq`` is the incident's round (1 = declared)."""

    notice_id: Line  # a Message-ID such as <inc-7.3.progress.c-42.0@example.com>; may exceed the id length cap
    incident_id: Id
    ticket_id: Id | None = None
    customer_id: Id
    email: Email
    kind: NoticeKind
    seq: Seq
    sent_at: Timestamp
    eta: Timestamp | None = None
    next_update_at: Timestamp | None = None


class TicketUpdate(Record):
    """A public reply for a help-desk ticket (topic ``outage.ticket-updates``, key ``ticket_id``)."""

    ticket_id: Id
    incident_id: Id
    action: TicketAction
    at: Timestamp
    comment: Text


class FeedbackRecord(Record):
    """A contact's answer to a resolved notice's question (topic ``outage.feedback``, compacted, key
    ``feedback_id``: one per contact per incident, a later answer replaces the earlier).
    ``score`` 1 (very hard to stay informed) to 5 (very easy); ``severity`` is the incident's
    when it was resolved."""

    feedback_id: Id
    incident_id: Id
    customer_id: Id
    severity: Severity
    score: Score
    comment: Comment | None = None
    at: Timestamp


class SignalRecord(Record):
    """A possible incident (topic ``outage.signals``, key ``component``): at least
    ``OUTAGE_SURGE_TICKETS`` tickets from at least 3 customers named ``component`` within
    ``window_seconds`` and no active incident covers it (``domain/surge.py``). ``region``: the one
    region all those customers have the component in, else null; ``first_at``: the first counted
    ticket's time; ``at``: when the signal was made."""

    type: Literal["possible-incident"] = "possible-incident"
    component: Label
    region: Label | None = None
    tickets: Count
    customers: Count
    window_seconds: Count
    first_at: Timestamp
    at: Timestamp


class DeadLetter(Record):
    """An input record that could not be processed (topic ``outage.dead-letters``);
    ``value`` is the raw text, ``error`` says why."""

    topic: Line
    partition: KafkaPosition | None = None
    offset: KafkaPosition | None = None
    key: str | None = None
    value: str | None = None
    error: Text
    at: Timestamp

    @classmethod
    def from_raw(cls, *, topic: str, partition: int | None, offset: int | None, key: bytes | str | None,
                 value: bytes | str | None, error: str, at: datetime | None = None) -> DeadLetter:
        """Build one from a consumed record: bytes are decoded (bad UTF-8 replaced by U+FFFD),
        a value longer than ``DEAD_LETTER_VALUE_LIMIT`` characters is cut (and the error says so),
        ``at`` defaults to now in UTC."""
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if text is not None and len(text) > DEAD_LETTER_VALUE_LIMIT:
            text = text[:DEAD_LETTER_VALUE_LIMIT]
            error = f"{error} (value cut to its first {DEAD_LETTER_VALUE_LIMIT:,} characters)"
        return cls(
            topic=topic, partition=partition, offset=offset,
            key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
            value=text, error=error or "unknown error", at=at or datetime.now(timezone.utc),
        )
