"""In-memory stand-ins for the faust parts an agent touches, to run an agent in process: a topic
that keeps what is sent to it, and a stream of events over a list of records. (The seed of the
in-memory test broker issue 15 asks for: agents written against these run unchanged in faust.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass
class Message:
    topic: str
    partition: int
    offset: int


@dataclass
class Event:
    key: bytes | None
    value: bytes | None
    message: Message


@dataclass
class Topic:
    """A topic: ``send`` keeps each record (key, value, partition) in ``sent``."""

    name: str
    partitions: int = 4
    sent: list[tuple[bytes | None, bytes | None, int | None]] = field(default_factory=list)

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, key: bytes | None = None, value: bytes | None = None, partition: int | None = None,
                   **_) -> None:
        self.sent.append((key, value, partition))

    def stream(self, partition_of=lambda key: 0) -> "Stream":
        """What was sent, as the stream an agent reads (each record on ``partition_of(key)``
        unless it was sent to a partition)."""
        return Stream([Event(k, v, Message(self.name, p if p is not None else partition_of(k), i))
                       for i, (k, v, p) in enumerate(self.sent)])


@dataclass
class Stream:
    """A finished stream of events: ``events()`` yields each once, in order."""

    items: list[Event]

    async def events(self):
        for event in self.items:
            yield event


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.at


class Table(dict):
    """A table: a dict, with the pipeline's ``put`` (a write whose changelog record is queued)."""

    async def put(self, key, value) -> None:
        self[key] = value
