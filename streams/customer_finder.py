"""One customer's record, on any worker: for the ops API of contacts' preferences.

Customers are held per partition (``streams/customers.py``), so a worker has only its own. The
finder answers from the local store when the customer is there; otherwise it reads the one
``outage.customers`` partition the key belongs to (the producers' murmur2 partitioning, as the
co-partitioned topics assume) from the start to its end now, keeping that key's last record, and
judges it as the customers reader does (``streams.customers.check``). Both read the same
compacted topic, so every worker answers alike. The read costs one partition's records (about
a second per 150,000 on Tansu): fine for an operator's request, which is what it serves; it
gives up after ``timeout`` seconds (``FinderUnavailable``: the API answers 503).
"""

from __future__ import annotations

import asyncio
from typing import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from streams.customers import check
from streams.views import StoredCustomer, customer_of_json

READ_TIMEOUT_SECONDS = 20.0
MAX_RECORDS = 5000


class FinderUnavailable(Exception):
    """The customers topic could not be read in time."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a producer's default partitioner gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class CustomerFinder:
    def __init__(self, *, bootstrap_servers: list[str], topic: str, partitions: int, profile,
                 local: Callable[[int, str], StoredCustomer | None], security: dict | None = None,
                 timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.partitions = partitions
        self.profile = profile
        self.local = local
        self.security = dict(security or {})
        self.timeout = timeout

    async def find(self, customer_id: str) -> StoredCustomer | None:
        """The customer, or None when the topic has none (or its tombstone) under that id."""
        key = customer_id.encode()
        p = partition_of(key, self.partitions)
        found = self.local(p, customer_id)
        if found is not None:
            return found
        try:
            raw = await asyncio.wait_for(self._read(p, key), self.timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            raise FinderUnavailable(type(exc).__name__) from None
        if raw is None:
            return None
        judged = check(key, raw)
        return customer_of_json(judged[2]) if judged[0] == "put" else None

    async def _read(self, p: int, key: bytes) -> bytes | None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    client_id="outage-customer-finder", **self.security)
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, p)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await self.profile.end_offsets(consumer, [tp]))[tp]
            value = None
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=500, max_records=MAX_RECORDS)
                for record in batches.get(tp, ()):
                    if record.offset < end and record.key == key:
                        value = record.value   # the last one counts (None: a tombstone)
            return value
        finally:
            await consumer.stop()
