"""In-memory stand-ins for the faust parts an agent touches, to run an agent in process: a topic
that keeps what is sent to it, a stream of events over a list of records, a clock the test moves,
and a table of partitions with their changelogs. Agents written against these run unchanged in
faust; a topic as the web pages write to it (``RecordingTopic``) and an app that
keeps the pages registered on it (``App``). The in-memory test broker (``tests/inmemory/broker.py``) runs whole workers on them."""

from __future__ import annotations

import json
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


class RecordingTopic:
    """A topic as a worker's web pages write to it: ``send`` keeps (key, value) in ``sent`` and
    returns the acknowledgement to await, as faust's does; ``fail`` makes the broker refuse."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes | None]] = []
        self.fail = False

    async def send(self, *, key: bytes, value: bytes | None):
        if self.fail:
            from aiokafka.errors import KafkaConnectionError

            raise KafkaConnectionError()
        self.sent.append((key, value))

        async def acknowledged():
            return None
        return acknowledged()

    def records(self) -> list[dict]:
        """The values sent, as JSON."""
        return [json.loads(value) for _, value in self.sent]


class App:
    """What ``register_pages`` (``streams/web.py``) uses of a faust app: ``service`` (ignored) and
    ``page``, which keeps each route's view class in ``pages`` for a test to call."""

    def __init__(self) -> None:
        self.pages: dict[str, type] = {}

    def service(self, service) -> None:
        pass

    def page(self, path: str):
        def register(view: type) -> type:
            self.pages[path] = view
            return view
        return register


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


class Partition:
    """One partition of a table (``streams.state.StorePartition``): a dict, and its changelog as
    a list of (key, value or None) records; the changelog offset is the last record's index."""

    def __init__(self, p: int) -> None:
        self.partition = p
        self.data: dict = {}
        self.changelog: list[tuple[str, object]] = []

    def get(self, key, default=None):
        return self.data.get(key, default)

    def items(self):
        return iter(list(self.data.items()))

    def keys(self):
        return iter(list(self.data))

    def values(self):
        return iter(list(self.data.values()))

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key) -> bool:
        return key in self.data

    def apply(self, key, value) -> None:
        """``key`` set to ``value`` (None: deleted) here, without a changelog record."""
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def log(self, key, value) -> None:
        self.changelog.append((key, value))

    def set(self, key, value) -> None:
        self.apply(key, value)
        self.log(key, value)

    async def put(self, key, value) -> None:
        self.set(key, value)

    def delete(self, key) -> None:
        self.set(key, None)

    @property
    def changelog_offset(self) -> int | None:
        return len(self.changelog) - 1 if self.changelog else None

    def recover(self, changes, offset: int) -> None:
        for key, value in changes:
            self.set(key, value)


class Table:
    """A table (``streams.state.PartitionedTable``): one ``Partition`` per partition.
    ``recovered(p)`` is partition p as a worker taking it over rebuilds it from the changelog."""

    def __init__(self, name: str = "table") -> None:
        self.name = name
        self.parts: dict[int, Partition] = {}

    def partition(self, p: int) -> Partition:
        part = self.parts.get(p)
        if part is None:
            part = self.parts[p] = Partition(p)
        return part

    def recovered(self, p: int) -> Partition:
        fresh = Partition(p)
        log = self.partition(p).changelog
        fresh.recover(log, len(log) - 1)
        return fresh
