"""streams/kafka/transport.py: a changelog partition handed over with no offset is read from its beginning
(faust's recovery seeks a standby partition to None when one rebalance follows another at once)."""

from __future__ import annotations

from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as base

from core.settings import Settings
from streams.kafka import broker as B
from streams.kafka import transport as K


def test_an_offset_not_known_is_the_beginning_and_the_others_stay():
    a, b, c, d = (TopicPartition("t-changelog", p) for p in range(4))
    assert K.seekable({a: None, b: -1, c: 0, d: 42}) == {a: 0, b: 0, c: 0, d: 42}


async def test_the_kafka_consumer_thread_seeks_none_to_the_beginning(monkeypatch):
    seen = {}

    async def fake(self, consumer, partitions):
        seen.update(partitions)

    monkeypatch.setattr(base.AIOKafkaConsumerThread, "_seek_wait", fake)
    thread = object.__new__(K.ConsumerThread)
    thread.flavour = K.KAFKA_FLAVOUR
    tp = TopicPartition("t-changelog", 0)
    await thread._seek_wait(None, {tp: None})
    assert seen == {tp: 0}
    seen.clear()
    thread.flavour = K.TANSU_FLAVOUR   # (no standby replicas there: handed on as it is)
    await thread._seek_wait(None, {tp: None})
    assert seen == {tp: None}


def test_the_kafka_profile_uses_this_consumer():
    import faust

    settings = Settings(broker="127.0.0.1:9")
    app = faust.App("t-seek", broker=B.KAFKA.faust_broker(settings), **B.KAFKA.faust_config(settings))
    assert app.transport.Consumer is K.KafkaTransport.Consumer
    assert app.transport.Consumer.flavour is K.KAFKA_FLAVOUR
    assert K.Consumer._new_consumer_thread is not base.Consumer._new_consumer_thread
