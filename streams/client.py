"""Producing records to the pipeline's topics from outside a worker: the ``outage`` command and
``outage dev`` (customers from a file, events). Every record is validated with ``schemas`` first;
what is wrong with the input or the broker is a ``ClientError`` with one clear line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import ValidationError

from core.settings import Settings


class ClientError(Exception):
    """A clear message for the person at the terminal (the CLI exits with status 2)."""


# -- producing --------------------------------------------------------------------------------
def producer(settings: Settings):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from streams.kafka.broker import kafka_python_options, refusal

    if not settings.broker:
        raise ClientError("OUTAGE_BROKER is not set: point it at the broker (outage dev prints the value)")
    try:
        return KafkaProducer(bootstrap_servers=settings.broker.split(","), acks="all", linger_ms=5,
                             request_timeout_ms=15000, max_block_ms=15000, **kafka_python_options(settings))
    except KafkaError as exc:
        raise ClientError(refusal(settings) or f"cannot reach the broker at {settings.broker}: {exc}") from exc


def produce(settings: Settings, topic_base: str, records: list[tuple[str, bytes | None]]) -> None:
    from streams.kafka.broker import admin, ensure_topics
    from streams.topics import TopicNames

    try:
        client = admin(settings, wait_seconds=15)
    except RuntimeError as exc:
        raise ClientError(str(exc)) from exc
    try:
        ensure_topics(settings, client)
    finally:
        client.close()
    kafka = producer(settings)
    topic = TopicNames(settings.topic_prefix).name(topic_base)
    try:
        futures = [kafka.send(topic, key=key.encode(), value=value) for key, value in records]
        kafka.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    finally:
        kafka.close(timeout=5)


def validate(model, data: dict, what: str):
    from schemas import describe_validation_error

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ClientError(f"invalid {what}: {describe_validation_error(exc)}") from exc


# -- customers --------------------------------------------------------------------------------
def _read_customers(path: Path) -> list[dict]:
    if not path.exists():
        raise ClientError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return [_customer_from_csv(row, n) for n, row in enumerate(csv.DictReader(text.splitlines()), start=2)]
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ClientError(f"{path}:{n}: invalid JSON: {exc.msg} at column {exc.colno}") from exc
    return rows


def _customer_from_csv(row: dict, line: int) -> dict:
    """CSV columns: customer_id, name, locale, timezone, tier, contacts, services.
    ``contacts``: ``Name <email>`` or ``email``, separated by ``;``. ``services``:
    ``component@region`` separated by ``;``."""
    def split(value: str | None) -> list[str]:
        return [v.strip() for v in (value or "").split(";") if v.strip()]

    contacts = []
    for item in split(row.get("contacts")):
        if "<" in item and item.endswith(">"):
            name, _, email = item[:-1].partition("<")
            contacts.append({"email": email.strip(), "name": name.strip() or None})
        else:
            contacts.append({"email": item})
    services = []
    for item in split(row.get("services")):
        component, sep, region = item.partition("@")
        if not sep:
            raise ClientError(f"line {line}: service {item!r} must be component@region")
        services.append({"component": component.strip(), "region": region.strip()})
    return {"customer_id": row.get("customer_id"), "name": row.get("name"), "locale": row.get("locale"),
            "timezone": row.get("timezone"), "tier": row.get("tier") or None, "contacts": contacts,
            "services": services}


def import_customers(settings: Settings, path: Path) -> int:
    from schemas import Customer

    records = []
    for n, data in enumerate(_read_customers(path), start=1):
        customer = validate(Customer, data, f"customer #{n} in {path}")
        records.append((customer.customer_id, customer.model_dump_json().encode()))
    from streams.topics import CUSTOMERS
    produce(settings, CUSTOMERS, records)
    return len(records)
