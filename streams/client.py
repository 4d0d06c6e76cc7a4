"""Producing records to the pipeline's topics from outside a worker: the ``outage`` command and
``outage dev`` (customers from a file, events). Every record is validated with ``schemas`` first;
what is wrong with the input or the broker is a ``ClientError`` with one clear line."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from core.settings import Settings


class ClientError(Exception):
    """A clear message for the person at the terminal (the CLI exits with status 2)."""


# -- producing --------------------------------------------------------------------------------
def producer(settings: Settings, **options):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from streams.kafka.broker import kafka_python_options, refusal

    if not settings.broker:
        raise ClientError("OUTAGE_BROKER is not set: point it at the broker (outage dev prints the value)")
    try:
        return KafkaProducer(**{"bootstrap_servers": settings.broker.split(","), "acks": "all", "linger_ms": 5,
                                "request_timeout_ms": 15000, "max_block_ms": 15000,
                                **kafka_python_options(settings), **options})
    except KafkaError as exc:
        raise ClientError(refusal(settings) or f"cannot reach the broker at {settings.broker}: {exc}") from exc


def produce(settings: Settings, topic_base: str, records: list[tuple[str, bytes | None]]) -> None:
    from streams.topics import TopicNames

    from kafka.errors import KafkaError

    _ensure_topics(settings)
    kafka = producer(settings)
    topic = TopicNames(settings.topic_prefix).name(topic_base)
    try:
        futures = [kafka.send(topic, key=key.encode(), value=value) for key, value in records]
        kafka.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    except KafkaError as exc:
        raise ClientError(f"the broker at {settings.broker} did not take the record ({exc})") from None
    finally:
        kafka.close(timeout=5)


def _ensure_topics(settings: Settings) -> None:
    """Wait up to 15 s for the broker (a refusal ends it at once), and create missing topics."""
    from kafka.errors import KafkaError

    from streams.kafka.broker import admin, ensure_topics

    if not settings.broker:
        raise ClientError("OUTAGE_BROKER is not set: point it at the broker (outage dev prints the value)")
    try:
        client = admin(settings, wait_seconds=15)
    except RuntimeError as exc:
        raise ClientError(str(exc)) from exc
    try:
        ensure_topics(settings, client)
    except KafkaError as exc:
        raise ClientError(f"cannot create the topics on {settings.broker}: {exc}") from None
    finally:
        client.close()


def read_topic(settings: Settings, topic_base: str, idle_seconds: float = 5.0):
    """Every record value of a topic from its beginning up to its end as this call finds it (the
    commands' view of the incidents and maintenance: ``outage/cli.py``, ``outage/maintenance_cli.py``).
    A topic that does not exist yet has nothing; a broker that refuses or does not answer is one line."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from streams.kafka.broker import admin, kafka_python_options, refusal
    from streams.topics import TopicNames

    if not settings.broker:
        raise ClientError("OUTAGE_BROKER is not set")
    topic = TopicNames(settings.topic_prefix).name(topic_base)
    try:   # as the producing commands do: a refusal ends it at once, an unreachable broker after 15 s
        admin(settings, wait_seconds=15).close()
    except RuntimeError as exc:
        raise ClientError(str(exc)) from exc
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.broker.split(","), enable_auto_commit=False,
                                 consumer_timeout_ms=int(idle_seconds * 1000), **kafka_python_options(settings))
    except KafkaError as exc:
        raise ClientError(refusal(settings) or f"cannot reach the broker at {settings.broker}: {exc}") from exc
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = {tp: end for tp, end in consumer.end_offsets(tps).items() if end > 0}
        while ends:   # read up to the end offsets taken now; idle_seconds without a record ends it too
            got = consumer.poll(timeout_ms=int(idle_seconds * 1000))
            if not got:   # nothing more came (e.g. only transaction markers left): what was read is all
                return
            for tp, messages in got.items():
                for msg in messages:
                    if tp in ends and msg.offset < ends[tp]:
                        yield msg.value
            for tp in list(ends):
                if consumer.position(tp) >= ends[tp]:
                    del ends[tp]
    finally:
        consumer.close()


def fold_topic(settings: Settings, topic_base: str, model, key, step) -> dict:
    """The topic's records of ``model`` folded in order (``read_topic``): key -> state, where
    ``step(state or None, record)`` gives the next state, or None to keep the one held. A record
    that is not a valid ``model`` is passed over (the workers dead-letter it)."""
    from schemas import parse_record

    states: dict = {}
    for value in read_topic(settings, topic_base):
        try:
            record = parse_record(model, value)
        except Exception:  # noqa: BLE001 - dead-lettered by the workers; not one of these records
            continue
        state = step(states.get(key(record)), record)
        if state is not None:
            states[key(record)] = state
    return states


def validate(model, data: dict, what: str):
    from schemas import describe_validation_error

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ClientError(f"invalid {what}: {describe_validation_error(exc)}") from exc


# -- customers --------------------------------------------------------------------------------
class KafkaSink:
    """The customers topic as the import's sink (``streams/customer_import.py``): sends are
    batched by the producer (``linger_ms``, ``batch_size``) and flushed once, by ``finish``.
    Nothing is kept per record: a failed delivery is counted, and the first reason kept."""

    def __init__(self, settings: Settings) -> None:
        from streams.topics import CUSTOMERS, TopicNames

        _ensure_topics(settings)
        self.kafka = producer(settings, linger_ms=50, batch_size=512 * 1024)
        self.topic = TopicNames(settings.topic_prefix).name(CUSTOMERS)
        self.failed = 0
        self.first_error: str | None = None

    def _failed(self, exc) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(exc) or type(exc).__name__

    def send(self, key: bytes, value: bytes) -> None:
        from kafka.errors import KafkaError

        try:
            self.kafka.send(self.topic, key=key, value=value).add_errback(self._failed)
        except KafkaError as exc:   # the buffer stayed full (a broker that stopped answering)
            self.close()
            raise ClientError(f"the broker stopped taking records ({exc})") from None

    def finish(self) -> None:
        try:
            self.kafka.flush()
        finally:
            self.close()
        if self.failed:
            raise ClientError(f"{self.failed} customers were not delivered to the broker: {self.first_error}")

    def close(self) -> None:
        self.kafka.close(timeout=5)


def import_customers(settings: Settings, path: Path, *, fmt: str | None = None, rejects: Path | None = None,
                     progress=None):
    """Import a customers file (``streams/customer_import.py``); its ``ImportResult``."""
    from streams.customer_import import ImportFailed, check_file, import_file

    try:
        check_file(path, fmt)
        return import_file(path, KafkaSink(settings), fmt=fmt, rejects_path=rejects, progress=progress)
    except ImportFailed as exc:
        raise ClientError(str(exc)) from None
