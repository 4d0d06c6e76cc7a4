"""A faust transport for the embedded Tansu broker: aiokafka, with two of its defects worked around.

- **End offsets.** Tansu's ListOffsets answer for "latest" is the base offset of a partition's
  last record *batch* + 1, not its last offset + 1 (docs/kafka.md). faust's table recovery
  reads a changelog up to that answer, so with normal batching a restarted worker silently
  recovered only part of its tables. The high watermark in a Fetch response is right, so
  :func:`end_offsets` asks ListOffsets first (a lower bound) and then fetches from just below
  it, taking the fetch's high watermark. Producers keep normal batching.
- **Fetch wait.** faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer.
  Apache Kafka answers a waiting fetch as soon as a record arrives, so the wait costs nothing
  there; Tansu answers late (a bare hop took 377 ms at 1500 ms and 7 ms at 100 ms). The
  shorter wait is set in ``streams/consumer_thread.py``, the consumer thread both transports share.

Selected only by the Tansu profile in ``streams/broker.py``; production keeps faust's own transport.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Iterable, Mapping

from aiokafka.protocol.fetch import FetchRequest
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as base
from faust.types import TP

from streams import consumer_thread
from streams.broker import FETCH_MAX_WAIT_MS  # declared once, for both brokers

log = logging.getLogger(__name__)

SCHEME = "outage-tansu"


async def end_offsets(consumer, partitions: Iterable, attempts: int = 3) -> dict:
    """The true end offset (last offset + 1) of each partition, for a started aiokafka consumer.

    ListOffsets on Tansu may under-report but never over-reports, so a fetch from just below its
    answer returns at most the last batch, at once, and the response's high watermark is the end.
    (Tansu answers a fetch with no wait with no partitions at all, and a fetch at the very end
    after the wait: an empty partition costs one ``FETCH_MAX_WAIT_MS`` per request.)
    """
    partitions = list(partitions)
    listed = await consumer.end_offsets(partitions)
    result = {tp: listed[tp] for tp in partitions}
    pending = set(partitions)
    client = consumer._client
    for _ in range(attempts):
        by_node: dict = defaultdict(lambda: defaultdict(list))
        for tp in pending:
            node = client.cluster.leader_for_partition(tp)
            if node is not None and node >= 0:
                by_node[node][tp.topic].append((tp.partition, max(listed[tp] - 1, 0), 1))
        keys = {(tp.topic, tp.partition): tp for tp in pending}
        for node, topics in by_node.items():
            request = FetchRequest(FETCH_MAX_WAIT_MS, 0, 1, 0, list(topics.items()))
            response = await client.send(node, request)
            for topic, parts in response.topics:
                for partition, error, highwater, *_ in parts:
                    tp = keys.get((topic, partition))
                    if tp is not None and not error and highwater >= 0:
                        result[tp] = max(result[tp], highwater)
                        pending.discard(tp)
        if not pending:
            return result
        await client.force_metadata_update()
    log.warning("the end offset of %d partitions (e.g. %s) is the broker's ListOffsets answer, which may "
                "be short on this broker", len(pending), sorted(f"{tp.topic}:{tp.partition}" for tp in pending)[:3])
    return result


class ConsumerThread(consumer_thread.ConsumerThread):
    async def _highwaters(self, partitions) -> Mapping[TP, int]:
        # faust's table recovery reads every changelog partition up to these offsets
        found = await end_offsets(self._ensure_consumer(), partitions)
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}


class Consumer(base.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(base.Transport):
    Consumer = Consumer


def register() -> str:
    """Make ``outage-tansu://host:port`` a faust broker URL; returns the scheme."""
    TRANSPORTS[SCHEME] = f"{__name__}:Transport"
    return SCHEME
