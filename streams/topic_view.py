"""A topic read whole by every worker: the base of the views that let any worker answer for all.

A ``TopicView`` is a plain aiokafka consumer with no consumer group that ``assign()``s every
partition of one topic, reads it from the beginning and then follows it, handing each batch of
records (raw key, raw value), in offset order per partition, to ``apply``. A subclass keeps
what it needs from them. Two kinds of subclass are declared here once, so that each view module is
only what it keeps: a ``BookView`` hands the records to a pure book of ``domain/`` that folds them
(``streams/preferences_view.py``, ``streams/suppression_view.py``), a ``ChangelogView`` keeps a
faust table's latest state per key (``streams/incident_view.py``, ``streams/maintenance_view.py``);
``streams/feedback_view.py`` applies its records itself. ``of`` builds any of them from the
settings and the topic names (``topic_of``). It is not a faust
GlobalTable: their recovery has known issues, and a view needs no standby or recovery machinery
of its own. Reads are eventually consistent: a record shows when it arrives here, typically
within a fetch wait; ``sync`` waits until what the topic holds now has been read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, ClassVar, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from pydantic import BaseModel, ValidationError

from streams.kafka.broker import FETCH_MAX_WAIT_MS, KAFKA, BrokerProfile, aiokafka_options, bootstrap

if TYPE_CHECKING:
    from core.settings import Settings
    from streams.topics import TopicNames

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


class TopicView(Service):
    """Every partition of ``topic``, read from the beginning and followed; ``apply`` keeps what it needs."""

    label = "topic view"   # how the log names it
    default_client_id = "outage-topic-view"
    source: ClassVar[str] = ""   # the logical topic (or table) name, streams/topics.py

    def __init__(self, *, bootstrap_servers: list[str], topic: str, partitions: int,
                 profile: BrokerProfile = KAFKA, client_id: str | None = None,
                 security: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.security = dict(security or {})   # aiokafka_options() of the settings (streams/kafka/broker.py)
        self.bootstrap_servers = list(bootstrap_servers)
        self.topic = topic
        self.partitions = partitions
        self.profile = profile
        self.client_id = client_id or self.default_client_id
        self._skipped = 0                          # records a subclass could not use
        self._positions: dict[int, int] = {}      # next offset to read, per partition
        self._start_ends: dict[int, int] | None = None  # the topic's end when the view started
        self._consumer: AIOKafkaConsumer | None = None
        self._progress: asyncio.Event | None = None     # set (and replaced) after each read
        self._reported = False

    @classmethod
    def topic_of(cls, names: TopicNames) -> str:
        """The topic this view reads: ``source`` under ``names``."""
        return names.name(cls.source)

    @classmethod
    def of(cls, settings: Settings, *, names: TopicNames, partitions: int, profile: BrokerProfile, **kwargs):
        """The view of its topic (named by ``names``) on the brokers of ``settings``."""
        return cls(bootstrap_servers=bootstrap(settings), topic=cls.topic_of(names), partitions=partitions,
                   profile=profile, security=aiokafka_options(settings), **kwargs)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Apply records (raw key, raw value) in offset order."""
        raise NotImplementedError

    def _skip(self, why: str) -> None:
        """Count a record that could not be used, and say why in the log."""
        self._skipped += 1
        log.warning("%s: skipped %s (%d skipped so far)", self.label, why, self._skipped)

    def size(self) -> int:
        """How many things the view holds (for the log line once it has caught up)."""
        return 0

    @property
    def caught_up(self) -> bool:
        """True once every record that was in the topic when the view started has been read."""
        ends = self._start_ends
        return ends is not None and all(self._positions.get(p, 0) >= end for p, end in ends.items())

    async def sync(self, timeout: float = 1.0) -> bool:
        """Wait (at most ``timeout`` seconds) until the view has read everything the topic
        holds now; True when it has. A 404 or 409 judged after this is no older than the request."""
        consumer = self._consumer
        if consumer is None or self._start_ends is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            ends = await asyncio.wait_for(self._end_offsets(consumer), timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            log.info("%s: end offsets not known (%s); answering from what was read", self.label, type(exc).__name__)
            return False
        while any(self._positions.get(p, 0) < end for p, end in ends.items()):
            remaining = deadline - loop.time()
            if remaining <= 0 or self._progress is None:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    # -- following the topic -----------------------------------------------------------------------
    def _tps(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in range(self.partitions)]

    async def _end_offsets(self, consumer: AIOKafkaConsumer) -> dict[int, int]:
        tps = self._tps()
        found = await self.profile.end_offsets(consumer, tps)
        return {tp.partition: offset for tp, offset in found.items()}

    def _new_consumer(self) -> AIOKafkaConsumer:
        options = dict(bootstrap_servers=self.bootstrap_servers, client_id=self.client_id, group_id=None,
                       enable_auto_commit=False, auto_offset_reset="earliest", **self.security)
        # a short fetch wait on every broker: Tansu answers a waiting fetch late, and Kafka answers
        # a connection's requests in order, so a ListOffsets (a refusal reads to the end first)
        # would wait behind a waiting fetch (aiokafka's 500 ms)
        options["fetch_max_wait_ms"] = FETCH_MAX_WAIT_MS
        return AIOKafkaConsumer(**options)

    async def on_start(self) -> None:
        self._progress = asyncio.Event()

    async def on_stop(self) -> None:
        await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - stopping a consumer whose broker is gone
                log.debug("%s: consumer stop failed", self.label, exc_info=True)

    @Service.task
    async def _follow(self) -> None:
        attempt = 0
        while not self.should_stop:
            try:
                await self._connect()
                attempt = 0
                while not self.should_stop:
                    await self._read_once()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                attempt += 1
                log.warning("%s: %s reading %s; again in %.1fs", self.label, type(exc).__name__, self.topic, delay)
                await self._close()
                await self.sleep(delay)

    async def _connect(self) -> None:
        consumer = self._new_consumer()
        await consumer.start()
        self._consumer = consumer
        tps = self._tps()
        consumer.assign(tps)
        if self._start_ends is None:   # the first connection reads from the beginning
            await consumer.seek_to_beginning(*tps)
            self._start_ends = await self._end_offsets(consumer)
        else:                          # a reconnection goes on from where it was
            for tp in tps:
                consumer.seek(tp, self._positions.get(tp.partition, 0))
        await self._note_positions(consumer, tps)
        log.info("%s: following %s (%d partitions)", self.label, self.topic, self.partitions)

    async def _read_once(self) -> None:
        consumer = self._consumer
        batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
        for tp, records in batches.items():
            self.apply((r.key, r.value) for r in records)
        await self._note_positions(consumer, self._tps())

    async def _note_positions(self, consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._positions[tp.partition] = await consumer.position(tp)
        if not self._reported and self.caught_up:
            self._reported = True
            log.info("%s: read %s as it stood at start (%d held)", self.label, self.topic, self.size())
        if self._progress is not None:
            done, self._progress = self._progress, asyncio.Event()
            done.set()


class BookView(TopicView):
    """A view whose records a pure book folds: ``book_type()`` has ``apply(records)``, a ``skipped``
    count and a length."""

    book_type: ClassVar[type]
    skipped_what = "records"   # what the log calls the records the book skipped

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.book = self.book_type()

    def size(self) -> int:
        return len(self.book)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        skipped = self.book.skipped
        self.book.apply(records)
        if self.book.skipped > skipped:
            log.warning("%s: skipped %d %s", self.label, self.book.skipped - skipped, self.skipped_what)


def decode_key(raw: bytes | None) -> str | None:
    """A changelog key (faust's json codec of a str); None for anything else."""
    if raw is None:
        return None
    try:
        key = json.loads(raw)
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def decode_model(model: type[BaseModel], raw: bytes) -> BaseModel | None:
    """A changelog value (a JSON object) as ``model``; None for anything that is not one."""
    try:
        data = json.loads(raw)
        return model.model_validate(data) if isinstance(data, dict) else None
    except (ValueError, ValidationError, RecursionError):
        return None


class ChangelogView(TopicView):
    """A faust table's changelog (``source`` is the table): key -> the latest ``state_type``, over
    every partition; a tombstone deletes. faust serialises a table whose ``key_type`` is ``str``
    and whose ``value_type`` is None with its ``json`` codec on both sides, so a key is a JSON
    string (quotes included) and a value the JSON object the agent stored."""

    state_type: ClassVar[type[BaseModel]]
    state_what = "a state"   # how the log names a value that is not one

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._states: dict[str, BaseModel] = {}

    @classmethod
    def topic_of(cls, names: TopicNames) -> str:
        return names.changelog(cls.source)

    def get(self, key: str):
        """The latest state of ``key`` (a ``state_type``), or None."""
        return self._states.get(key)

    def states(self) -> list:
        """Every state held (each a ``state_type``)."""
        return list(self._states.values())

    def size(self) -> int:
        return len(self._states)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Apply changelog records (raw key, raw value) in offset order."""
        for raw_key, raw_value in records:
            key = decode_key(raw_key)
            if key is None:
                self._skipped += 1
                continue
            if raw_value is None:
                self._states.pop(key, None)
                continue
            state = decode_model(self.state_type, raw_value)
            if state is None:
                self._skip(f"a changelog value that is not {self.state_what}")
                continue
            self._states[key] = state
