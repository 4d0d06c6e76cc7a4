"""The workers' faust transport: faust's aiokafka transport, one class for both brokers, with the
embedded broker's differences as data (``Flavour``). Registered as ``outage-kafka://`` and
``outage-tansu://``; the profile of ``streams/kafka/broker.py`` picks one.

What it changes, on both brokers:

- **Fetch wait.** faust hard-codes a 1.5 s fetch wait for the worker's consumer. Kafka answers a
  waiting fetch as soon as one of its partitions has a record, but a partition left out of the
  fetch under way (its records were still being handled when it was sent) waits for that fetch to
  end: a round reached the partitions one after another, 0.5 s apart, and a first email took up
  to 2 s (bench row 2b on Kafka, 20261202T023643Z.json). Tansu answers late (a bare hop took
  377 ms at 1500 ms and 7 ms at 100 ms). Both use ``FETCH_MAX_WAIT_MS``.
- **Seeking back to the committed offsets.** faust drops records that arrive while its flow is
  stopped (a rebalance) and then seeks every partition back to its committed offset, to read
  them again; it seeks the same way when a rebalance ends. aiokafka's ``seek_to_committed``
  seeks only a partition whose committed offset is above 0 (aio-libs/aiokafka#1003, open), so a
  stream partition with nothing committed yet kept its position past the records dropped, and
  those records were never read: an incident declared while two workers were finishing a
  rebalance was never taken up ("the fan-out never began" in 4 of 13 three-worker kill -9 runs on
  a fresh Kafka; tests/integration/test_declared_as_rebalance_ends.py failed 1 run in 3). Here
  such a partition is sought to offset 0, or, with none committed, to its beginning (the worker
  consumer's ``auto_offset_reset`` is faust's ``earliest``). Changelog partitions are left
  alone: faust's recovery places them itself.

Where the brokers differ (``KAFKA_FLAVOUR``, ``TANSU_FLAVOUR``):

- **Idempotent producer** (Kafka). faust-streaming 0.15 asks for ``enable_idempotence`` only
  inside a transaction (``processing_guarantee="exactly_once"``, which the pipeline does not
  use: faust's exactly-once is unreliable and cannot cover SMTP), and has no setting for it
  otherwise. On Apache Kafka an idempotent producer costs nothing and keeps a retried batch from
  being written twice or out of order (``acks=all``, which idempotence requires). Tansu cannot
  issue producer ids.
- **Changelog offsets faust does not know** (Kafka). A changelog partition that faust's recovery
  hands over with no offset (None, or negative) is sought to its beginning, as faust does with
  -1: after a broker outage, one rebalance hard on another made faust seek a standby partition to
  None, aiokafka refused it ("Offset must be a positive integer") and the worker crashed
  (tests/integration/test_kafka_faults.py). Only the Kafka profile keeps standby replicas.
- **End offsets from a fetch** (Tansu). Tansu's ListOffsets answer for "latest" is the base
  offset of a partition's last record *batch* + 1, not its last offset + 1 (docs/kafka.md).
  faust's table recovery reads a changelog up to that answer, so with normal batching a
  restarted worker silently recovered only part of its tables. The high watermark in a Fetch
  response is right, so :func:`end_offsets` asks ListOffsets first (a lower bound) and then
  fetches from just below it, taking the fetch's high watermark. Producers keep normal batching.

Every touch of a private attribute or method of faust's or aiokafka's consumer and client is in
this package (``tests/unit/test_private_access.py`` fails on one anywhere else).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from aiokafka.protocol.fetch import FetchRequest
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as base
from faust.types import TP

log = logging.getLogger(__name__)

# The fetch wait of every consumer a worker runs, on both brokers (faust hard-codes 1.5 s for its
# own, aiokafka defaults to 500 ms): Tansu answers a waiting fetch late, and Kafka leaves a
# partition out of the fetch under way waiting for it, and answers one connection's requests in
# order, so a ListOffsets waits behind a waiting fetch
FETCH_MAX_WAIT_MS = 100


@dataclass(frozen=True)
class Flavour:
    """What the workers' transport does differently on one broker."""

    scheme: str                          # the faust broker URL scheme it is registered under
    producer_extra: Mapping[str, Any]    # added to faust's producer settings
    seek_unknown_to_start: bool          # a changelog offset faust does not know is the beginning
    end_offsets_from_fetch: bool         # ListOffsets may under-report: take a fetch's high watermark


KAFKA_FLAVOUR = Flavour("outage-kafka", {"acks": "all", "enable_idempotence": True},
                        seek_unknown_to_start=True, end_offsets_from_fetch=False)
TANSU_FLAVOUR = Flavour("outage-tansu", {}, seek_unknown_to_start=False, end_offsets_from_fetch=True)


def seekable(partitions: Mapping[Any, Any]) -> dict:
    """The offsets to seek: one not known (None or negative) is the partition's beginning."""
    return {tp: 0 if offset is None or offset < 0 else offset for tp, offset in partitions.items()}


async def end_offsets(consumer, partitions: Iterable, attempts: int = 3) -> dict:
    """The true end offset (last offset + 1) of each partition, for a started aiokafka consumer
    on the Tansu broker (on Kafka, ``consumer.end_offsets`` is right).

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


async def wait_on_metadata(consumer, topic: str) -> None:
    """Wait until a started aiokafka consumer's client knows ``topic``'s partitions."""
    await consumer._client._wait_on_metadata(topic)


class ConsumerThread(base.AIOKafkaConsumerThread):
    flavour: Flavour = KAFKA_FLAVOUR

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer

    async def _seek_wait(self, consumer, partitions) -> None:
        if self.flavour.seek_unknown_to_start:
            partitions = seekable(partitions)
        await super()._seek_wait(consumer, partitions)

    async def _highwaters(self, partitions) -> Mapping[TP, int]:
        if not self.flavour.end_offsets_from_fetch:
            return await super()._highwaters(partitions)
        # faust's table recovery reads every changelog partition up to these offsets
        found = await end_offsets(self._ensure_consumer(), partitions)
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()   # those committed above 0
        changelogs = self.app.tables.changelog_topics
        assignment = consumer._subscription.subscription.assignment
        at_zero, at_start, moved = [], [], 0
        for tp, offset in committed.items():
            if tp.topic in changelogs or (offset is not None and offset > 0):
                continue
            state = assignment.state_value(tp)
            if state is not None and state.has_valid_position and state.position > 0:
                moved += 1   # read past the start: dropped, or handled but not yet committed
            (at_zero if offset == 0 else at_start).append(tp)
        for tp in at_zero:
            consumer.seek(tp, 0)
        if at_start:
            await consumer.seek_to_beginning(*at_start)
        if moved:
            log.info("%d stream partitions with nothing committed yet are read again from the start",
                     moved)
        return committed


class Consumer(base.Consumer):
    flavour: Flavour = KAFKA_FLAVOUR

    def _new_consumer_thread(self) -> ConsumerThread:
        thread = ConsumerThread(self, loop=self.loop, beacon=self.beacon)
        thread.flavour = self.flavour
        return thread


class Producer(base.Producer):
    flavour: Flavour = KAFKA_FLAVOUR

    def _settings_extra(self) -> Mapping[str, Any]:
        # used by faust's producer and by its threaded producer alike
        return {**super()._settings_extra(), **self.flavour.producer_extra}


def _transport(flavour: Flavour) -> type:
    """faust's transport with this flavour's consumer and producer."""
    name = flavour.scheme.split("-")[-1].title()
    consumer = type(f"{name}Consumer", (Consumer,), {"flavour": flavour})
    producer = type(f"{name}Producer", (Producer,), {"flavour": flavour})
    return type(f"{name}Transport", (base.Transport,), {"Consumer": consumer, "Producer": producer})


KafkaTransport = _transport(KAFKA_FLAVOUR)
TansuTransport = _transport(TANSU_FLAVOUR)


def register(flavour: Flavour) -> str:
    """Make ``<scheme>://host:port`` a faust broker URL for this flavour; returns the scheme."""
    transport = next(t for t in (KafkaTransport, TansuTransport) if t.Consumer.flavour is flavour)
    TRANSPORTS[flavour.scheme] = f"{__name__}:{transport.__name__}"
    return flavour.scheme
