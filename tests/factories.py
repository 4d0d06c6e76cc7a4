"""What the integration tests build: input records (devtools/records.py's builders, and bulk
customers), the producing of customers to a test's topics, and worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from devtools import procs
from devtools.records import (  # noqa: F401 - the tests' builders, from here
    Record, contact, customer, declared, maintenance, numbered_contacts, resolved, ticket, updated,
)

ROOT = Path(__file__).resolve().parents[1]


def make_customers(n: int, *, tag: str, component: str = "api", region: str = "ap-northeast-1",
                   contacts: int = 1, domain: str = "example.com") -> list[Record]:
    """``n`` customers ``{tag}-00000``, ... of one service, Japanese and English in turn, each with
    ``contacts`` contacts ``{tag}{i}.{k}@{domain}``."""
    return [customer(f"{tag}-{i:05d}", name=f"{tag.upper()} {i} KK", locale=("ja", "en")[i % 2],
                     timezone=("Asia/Tokyo", "Europe/London")[i % 2],
                     contacts=numbered_contacts(contacts, f"{tag}{i}", domain), services=[(component, region)])
            for i in range(n)]


def load_customers(bootstrap: str, prefix: str, customers: Iterable[Record], *, acks: int | str = 1,
                   linger_ms: int = 5, **options: Any) -> None:
    """Produce customer records to ``{prefix}customers`` (keyed by id, in order, one flush); the
    worker reads them as input. ``acks="all"``: each acknowledged by every in-sync replica (on
    several Kafka nodes); ``options``: further settings of kafka-python's producer (e.g. larger
    batches for tens of thousands)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), linger_ms=linger_ms, acks=acks, **options)
    try:
        for c in customers:
            producer.send(prefix + "customers", key=c["customer_id"].encode(), value=json.dumps(c).encode())
        producer.flush(timeout=60)
    finally:
        producer.close()


class WorkerProcess(procs.WorkerProcess):
    """One ``outage worker`` process of a test: ``env`` over this process's environment, run from
    the repository, its output in ``log_path``.

    Not detached: it shares the test run's session (a Ctrl-C reaches it too), and has no
    PR_SET_PDEATHSIG, which fires when the thread that started it ends: the tests wait for workers
    in threads (``asyncio.to_thread``), and ``wait_ready`` may start one again there.
    """

    port_retries = 3
    stop_timeout = 60.0
    log_lines = 60

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        super().__init__({**os.environ, **env}, log_path, cwd=ROOT, detach=False)
