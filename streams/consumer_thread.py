"""The worker's consumer thread, for both brokers' transports (``streams/kafka_transport.py``,
``streams/tansu.py``): faust's aiokafka consumer thread with two changes.

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
  stream partition with nothing committed yet kept its position past the records dropped, and those records were never read:
  an incident declared while two workers were finishing a rebalance was never taken up ("the
  fan-out never began" in 4 of 13 three-worker kill -9 runs on a fresh Kafka;
  tests/integration/test_declared_as_rebalance_ends.py failed 1 run in 3). Here such a partition is
  sought to offset 0, or, with none committed, to its beginning (the worker consumer's
  ``auto_offset_reset`` is faust's ``earliest``). Changelog partitions are left alone: faust's
  recovery places them itself.
"""

from __future__ import annotations

import logging
from typing import Mapping

from faust.transport.drivers import aiokafka as base
from faust.types import TP

from streams.broker import FETCH_MAX_WAIT_MS  # declared once, for both brokers

log = logging.getLogger(__name__)


class ConsumerThread(base.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer

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
