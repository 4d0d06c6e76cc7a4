"""The bench's own Kafka traffic (kafka-python): topics, customers in bulk, events, notices back.

On the Tansu broker ``end_offsets()`` is wrong (docs/kafka.md), so reading "to the end" uses the
high watermark of fetch responses (``consumer.highwater``), which is right.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from core.settings import Settings
from streams import topics as T
from streams.kafka.broker import ensure_topics


def create_topics(bootstrap: str, prefix: str, partitions: int = 4) -> int:
    """Every topic of the pipeline under ``prefix``, with the worker's own code (exact counts)."""
    return ensure_topics(Settings(broker=bootstrap, topic_prefix=prefix, partitions=partitions))


def producer(bootstrap: str, bulk: bool = False):
    from kafka import KafkaProducer

    if bulk:
        return KafkaProducer(bootstrap_servers=[bootstrap], linger_ms=20, batch_size=512 * 1024,
                             max_request_size=8 * 1024 * 1024, acks=1)
    return KafkaProducer(bootstrap_servers=[bootstrap], linger_ms=0, acks=1)


def produce_customers(bootstrap: str, topic: str, customers: Iterable[dict], on_each=None,
                      timeout: float = 900.0) -> tuple[int, int, float]:
    """Produce customer records (key ``customer_id``) in large batches; (count, bytes, seconds)."""
    p = producer(bootstrap, bulk=True)
    count = size = 0
    started = time.perf_counter()
    try:
        for c in customers:
            value = json.dumps(c, ensure_ascii=False, separators=(",", ":")).encode()
            p.send(topic, key=c["customer_id"].encode(), value=value)
            count += 1
            size += len(value)
            if on_each is not None:
                on_each(c)
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"producing customers took more than {timeout:.0f}s ({count} sent)")
        p.flush(timeout=120)
    finally:
        p.close(timeout=30)
    return count, size, time.perf_counter() - started


def send_event(p, topic: str, key: str, value: dict) -> int:
    """Produce one event and wait until it is written; returns its partition."""
    future = p.send(topic, key=key.encode(), value=json.dumps(value, ensure_ascii=False).encode())
    p.flush(timeout=30)
    return future.get(timeout=30).partition


@dataclass(frozen=True, slots=True)
class Notice:
    incident_id: str
    kind: str
    seq: int
    sent_at: float          # epoch seconds (the worker's clock: same machine)
    next_update_at: float | None
    customer_id: str
    notice_id: str
    partition: int


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class NoticeReader:
    """Reads ``<prefix>notices`` from the beginning, incrementally, grouped by incident."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.topic = prefix + T.NOTICES
        self.consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False, group_id=None,
                                      max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=100)
        parts = None
        deadline = time.monotonic() + 30
        while not parts and time.monotonic() < deadline:
            parts = self.consumer.partitions_for_topic(self.topic)
            if not parts:
                time.sleep(0.2)
        if not parts:
            raise RuntimeError(f"topic {self.topic} not found")
        self.tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning(*self.tps)
        self.by_incident: dict[str, list[Notice]] = defaultdict(list)
        self.total = 0

    def poll(self, seconds: float = 0.5) -> int:
        """Read what is there (for up to ``seconds``); returns how many records were new."""
        new = 0
        deadline = time.monotonic() + seconds
        while True:
            batches = self.consumer.poll(timeout_ms=100, max_records=50_000)
            for tp, records in batches.items():
                for r in records:
                    if r.value is None:
                        continue
                    v = json.loads(r.value)
                    n = Notice(v["incident_id"], v["kind"], v["seq"], _ts(v["sent_at"]), _ts(v.get("next_update_at")),
                               v["customer_id"], v["notice_id"], tp.partition)
                    self.by_incident[n.incident_id].append(n)
                    new += 1
            if not batches and self.caught_up():
                break
            if time.monotonic() > deadline:
                break
        self.total += new
        return new

    def caught_up(self) -> bool:
        for tp in self.tps:
            high = self.consumer.highwater(tp)
            if high is None or self.consumer.position(tp) < high:
                return False
        return True

    def wait_for(self, incident_id: str, count: int, timeout: float, predicate=None) -> list[Notice]:
        """Poll until ``count`` notices of the incident (matching ``predicate``) are read, or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll(0.5)
            got = [n for n in self.by_incident.get(incident_id, ()) if predicate is None or predicate(n)]
            if len(got) >= count or time.monotonic() > deadline:
                return got

    def close(self) -> None:
        self.consumer.close()

    def stop(self) -> None:  # for Processes
        self.close()


async def partitions_of(consumer, topic: str, timeout: float = 30.0) -> list:
    """The partitions of ``topic`` for a started aiokafka consumer without a subscription. Tansu
    answers the consumer's first metadata request with every topic; Apache Kafka only with the
    topics asked for, so the topic is added to the client's metadata and fetched until known."""
    import asyncio

    from aiokafka import TopicPartition

    deadline = time.monotonic() + timeout
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no partitions in the metadata after {timeout:.0f}s")
        consumer._client.add_topic(topic)       # tracked by the client's metadata from now on
        await consumer._client.force_metadata_update()
        if not consumer.partitions_for_topic(topic):
            await asyncio.sleep(0.2)
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]


def read_raw(bootstrap: str, topic: str, timeout: float = 600.0) -> tuple[int, float]:
    """Read every record of ``topic`` once with a plain aiokafka consumer (what the worker's
    customers reader does, minus validating and storing): (records, seconds). The reference of
    the cold start: the rate at which this machine reads them raw."""
    import asyncio

    async def run() -> tuple[int, float]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streams.kafka import transport as tansu

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
                                    fetch_max_bytes=16 << 20, fetch_max_wait_ms=tansu.FETCH_MAX_WAIT_MS)
        await consumer.start()
        try:
            tps = await partitions_of(consumer, topic)
            consumer.assign(tps)
            ends = await tansu.end_offsets(consumer, tps)
            started = time.perf_counter()
            n = 0
            positions = {tp: 0 for tp in tps}
            while any(positions[tp] < ends[tp] for tp in tps):
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"reading {topic} raw took more than {timeout:.0f}s")
                for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                    n += len(records)
                    if records:
                        positions[tp] = records[-1].offset + 1
            return n, time.perf_counter() - started
        finally:
            await consumer.stop()

    return asyncio.run(run())


def group_assignment(bootstrap: str, prefix: str, topic_base: str = T.ROUNDS) -> list[set[int]] | None:
    """The partitions of ``<prefix><topic_base>`` each member of the workers' consumer group holds
    (one set per member), from the group coordinator (DescribeGroups); None when the broker does
    not tell (e.g. an answer without decodable assignments)."""
    from kafka.admin import KafkaAdminClient

    names = T.TopicNames(prefix)
    topic = names.name(topic_base)
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], request_timeout_ms=10000)
    try:
        group = admin.describe_groups([names.app_id]).get(names.app_id) or {}
    except Exception:  # noqa: BLE001 - not every broker answers DescribeGroups usefully
        return None
    finally:
        admin.close()
    members = []
    for member in group.get("members") or []:
        assignment = member.get("member_assignment")
        parts = assignment.get("assigned_partitions") if isinstance(assignment, dict) else None
        if parts is None:
            return None
        held: set[int] = set()
        for entry in parts:
            name = entry.get("topic") if isinstance(entry, dict) else entry[0]
            if name == topic:
                held |= set(entry.get("partitions") if isinstance(entry, dict) else entry[1])
        members.append(held)
    return members or None
