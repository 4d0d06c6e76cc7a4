"""A faust transport for the embedded Tansu broker: aiokafka with a short fetch wait.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. Apache Kafka
answers a waiting fetch as soon as a record arrives, so the wait costs nothing there; the
benchmark measured that Tansu answers late (a bare hop took 377 ms at 1500 ms and 7 ms at
100 ms), which put about a second between a declared incident and its first email. Selected
only by the Tansu profile in ``streams/broker.py``; production keeps faust's own transport.
"""

from __future__ import annotations

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as base

FETCH_MAX_WAIT_MS = 100
SCHEME = "outage-tansu"


class ConsumerThread(base.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class Consumer(base.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(base.Transport):
    Consumer = Consumer


def register() -> str:
    """Make ``outage-tansu://host:port`` a faust broker URL; returns the scheme."""
    TRANSPORTS[SCHEME] = f"{__name__}:Transport"
    return SCHEME
