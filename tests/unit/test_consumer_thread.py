"""streams/kafka/transport.py: seeking back to the committed offsets reaches the stream partitions
with nothing committed above 0 (aiokafka's own seek leaves them where they are), and leaves the
changelogs to faust's recovery. Both brokers' transports use this thread."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.structs import TopicPartition

from streams.kafka import transport as C

NONE, ZERO, FIVE = (TopicPartition("t.incident-events", p) for p in range(3))
CHANGELOG = TopicPartition("t.worker-incidents-changelog", 0)


class FakeConsumer:
    """aiokafka's consumer, as far as the seek uses it: committed offsets, positions, seeks."""

    def __init__(self, committed: dict, positions: dict) -> None:
        self.committed = committed
        self.positions = dict(positions)
        self.seeks: list[tuple] = []
        states = {tp: SimpleNamespace(has_valid_position=True, position=pos) for tp, pos in positions.items()}
        self._subscription = SimpleNamespace(subscription=SimpleNamespace(
            assignment=SimpleNamespace(state_value=states.get)))

    async def seek_to_committed(self):
        # aiokafka 0.14: `if offset and offset > 0: self._fetcher.seek_to(tp, offset)`
        for tp, offset in self.committed.items():
            if offset and offset > 0:
                self.seeks.append(("to", tp, offset))
        return dict(self.committed)

    def seek(self, tp, offset) -> None:
        self.seeks.append(("to", tp, offset))

    async def seek_to_beginning(self, *tps) -> bool:
        self.seeks.extend(("beginning", tp) for tp in tps)
        return True


def thread_over(consumer: FakeConsumer) -> C.ConsumerThread:
    thread = object.__new__(C.ConsumerThread)
    thread._ensure_consumer = lambda: consumer
    thread.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics={CHANGELOG.topic}))
    return thread


async def test_stream_partitions_with_nothing_committed_go_back_to_their_start():
    consumer = FakeConsumer({NONE: None, ZERO: 0, FIVE: 5, CHANGELOG: None},
                            {NONE: 1, ZERO: 3, FIVE: 9, CHANGELOG: 40})
    committed = await thread_over(consumer)._seek_to_committed()
    assert sorted(consumer.seeks, key=str) == sorted([("to", FIVE, 5), ("to", ZERO, 0), ("beginning", NONE)], key=str)
    assert committed == {NONE: None, ZERO: 0, FIVE: 5, CHANGELOG: None}   # what faust records as read


async def test_the_changelogs_stay_where_recovery_put_them():
    consumer = FakeConsumer({CHANGELOG: None}, {CHANGELOG: 40})
    await thread_over(consumer)._seek_to_committed()
    assert consumer.seeks == []


def test_both_transports_use_this_thread_with_their_broker_flavour():
    flavours = {}
    for transport in (C.KafkaTransport, C.TansuTransport):
        assert issubclass(transport.Consumer, C.Consumer) and issubclass(transport.Producer, C.Producer)
        flavours[transport.Consumer.flavour.scheme] = transport.Consumer.flavour
        assert transport.Producer.flavour is transport.Consumer.flavour
    assert flavours["outage-kafka"].seek_unknown_to_start and not flavours["outage-kafka"].end_offsets_from_fetch
    assert flavours["outage-tansu"].end_offsets_from_fetch and not flavours["outage-tansu"].producer_extra
