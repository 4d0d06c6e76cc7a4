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


class DeadLetters:
    def __init__(self, topic, clock: Callable) -> None:
        self.topic = topic
        self.clock = clock

    @asynccontextmanager
    async def guard(self, event, source: str):
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - the point is to catch everything per record
            msg = event.message
            reason = reason_of(exc)
            if not isinstance(exc, (ValidationError, RecordError)):
                log.exception("unexpected error on %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            await self.send_raw(topic=msg.topic, partition=msg.partition, offset=msg.offset,
                                key=_text(event.key), value=_text(event.value), error=reason)
            M.EVENTS.labels(source, "dead-letter").inc()
        else:
            M.EVENTS.labels(source, "ok").inc()

    async def send_raw(self, *, topic: str, key: str | None, value: str | None, error: str,
                       partition: int | None = None, offset: int | None = None) -> None:
        record = DeadLetter(topic=topic, partition=partition, offset=offset, key=key, value=value,
                            error=error, at=self.clock())
        log.warning("dead letter from %s[%s]@%s: %s", topic, partition, offset, error)
        M.DEAD_LETTERS.labels(topic).inc()
        await self.topic.send(key=key.encode() if key else None, value=record.model_dump_json().encode())
