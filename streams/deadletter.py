"""The dead-letter topic: every input record that could not be processed, with the reason.

``guard(event, topic)`` wraps the handling of one record: any exception is caught, the record
goes to the dead-letter topic with a clear one-line reason, and the stream goes on (an
exception escaping a faust agent can stop consumption quietly: faust-streaming#175, #523).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Callable

from pydantic import ValidationError

from schemas import DeadLetter, RecordError, describe_validation_error
from streams import metrics as M
from streams import topics as T

log = logging.getLogger(__name__)
MAX_VALUE_CHARS = 100_000


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    if isinstance(exc, RecordError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return raw[:MAX_VALUE_CHARS]


# The id that the key of each keyed input topic is (docs/contract.md), by the topic's base name.
KEY_FIELDS = {T.CUSTOMERS: "customer_id", T.INCIDENT_EVENTS: "incident_id", T.TICKET_EVENTS: "ticket_id"}


def key_field(topic: str) -> str | None:
    """The id that a record's key must be on ``topic`` (a full, prefixed name), or None."""
    return next((name for base, name in KEY_FIELDS.items() if topic.endswith(base)), None)


def record_key(event, required: bool = True) -> str | None:
    """The record's key as text. A key that is not UTF-8 is bad input, and so is a null key
    unless ``required`` is False: on a keyed topic the key decides the partition, and so the
    worker that holds the record (a customer with a null key would sit in the indexes of
    whichever partitions its records happened to land on). A tombstone needs its key as well."""
    if event.key is None:
        if not required:
            return None
        field = key_field(event.message.topic) or "record's id"
        what = "tombstone" if event.value is None else "record"
        raise RecordError(f"the {what} has no key; the key must be the {field}", field="key")
    try:
        return event.key.decode()
    except UnicodeDecodeError:
        raise RecordError("the record key is not valid UTF-8", field="key") from None


def origin_of(event) -> dict:
    """Where a record came from, to dead-letter it later from an internal topic."""
    msg = event.message
    return {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
            "key": _text(event.key), "value": _text(event.value)}


class DeadLetters:
    def __init__(self, topic, clock: Callable, names: T.TopicNames = T.TopicNames("")) -> None:
        self.topic = topic
        self.clock = clock
        self.names = names   # the metrics' topic label is the name without the prefix

    @asynccontextmanager
    async def guard(self, event, source: str, origin: dict | None = None):
        """Handle one record; on any error dead-letter it (``origin``: the input it came from,
        when ``event`` is an internal copy) with the reason, and go on."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - the point is to catch everything per record
            msg = event.message
            reason = reason_of(exc)
            if not isinstance(exc, (ValidationError, RecordError)):
                # the type only: an exception's text may quote the record (addresses); the traceback at debug
                log.error("unexpected %s on %s[%s]@%s", type(exc).__name__, msg.topic, msg.partition, msg.offset)
                log.debug("traceback", exc_info=True)
            await self.send_raw(error=reason, **(origin or origin_of(event)))
            M.EVENTS.labels(self.names.base(source), "dead-letter").inc()
        else:
            M.EVENTS.labels(self.names.base(source), "ok").inc()

    async def send_raw(self, *, topic: str, key: str | None, value: str | None, error: str,
                       partition: int | None = None, offset: int | None = None) -> None:
        record = DeadLetter(topic=topic, partition=partition, offset=offset, key=key, value=value,
                            error=error, at=self.clock())
        log.warning("dead letter from %s[%s]@%s: %s", topic, partition, offset, error)
        M.DEAD_LETTERS.labels(self.names.base(topic)).inc()
        await self.topic.send(key=key.encode() if key else None, value=record.model_dump_json().encode())
