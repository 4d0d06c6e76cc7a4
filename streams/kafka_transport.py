"""The faust transport of the Kafka profile: faust's own aiokafka transport, with an idempotent
producer and a short fetch wait.

faust-streaming 0.15 asks for ``enable_idempotence`` only inside a transaction
(``processing_guarantee="exactly_once"``, which the pipeline does not use: docs/kafka.md), and
has no setting for it otherwise. On Apache Kafka an idempotent producer costs nothing and keeps a
retried batch from being written twice or out of order (``acks=all`` is faust's default,
``producer_acks=-1``; idempotence requires it). The embedded Tansu broker cannot issue producer
ids, so its profile keeps its own transport (``streams/tansu.py``).

Its consumer seeks a changelog partition that faust's recovery hands over with no offset (None, or
negative) to the beginning, as faust does with -1: after a broker outage, one rebalance hard on
another made faust seek a standby partition to None, aiokafka refused it ("Offset must be a
positive integer") and the worker crashed (tests/integration/test_kafka_faults.py). Only the Kafka
profile keeps standby replicas.

Selected only by the Kafka profile in ``streams/broker.py``.
"""

from __future__ import annotations

from typing import Any, Mapping

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as base

from streams import consumer_thread

SCHEME = "outage-kafka"
PRODUCER_EXTRA = {"acks": "all", "enable_idempotence": True}


class Producer(base.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        # used by faust's producer and by its threaded producer alike
        return {**super()._settings_extra(), **PRODUCER_EXTRA}


def seekable(partitions: Mapping[Any, Any]) -> dict:
    """The offsets to seek: one not known (None or negative) is the partition's beginning."""
    return {tp: 0 if offset is None or offset < 0 else offset for tp, offset in partitions.items()}


class ConsumerThread(consumer_thread.ConsumerThread):
    async def _seek_wait(self, consumer, partitions) -> None:
        await super()._seek_wait(consumer, seekable(partitions))


class Consumer(base.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(base.Transport):
    Consumer = Consumer
    Producer = Producer


def register() -> str:
    """Make ``outage-kafka://host:port`` a faust broker URL; returns the scheme."""
    TRANSPORTS[SCHEME] = f"{__name__}:Transport"
    return SCHEME
