"""Shared kit of the fault tests: an SMTP server with faults to order (``FaultySmtp``, a real
aiosmtpd ``Controller`` on its own thread and loop, recording what it accepted), the ``faulty``
fixture, bulk customers, and small helpers to declare incidents and wait for workers.

Used by test_faults.py, test_failover.py and test_cadence.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest
from aiosmtpd.controller import Controller

from outage.embedded import free_port
from tests.conftest import API_TOKEN, http

CONCURRENCY = 8  # OUTAGE_SMTP_CONCURRENCY of every worker here (the default, made explicit)


# --------------------------------------------------------------------------- helpers


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class Mail:
    rcpt: str
    message_id: str
    kind: str
    incident: str
    seq: int
    next_update: datetime | None
    in_reply_to: str | None
    received: datetime
    server: str


class FaultySmtp:
    """An SMTP server with faults to order, recording what it accepted (thread-safe).

    ``delay``: seconds every DATA takes; ``slow``: {domain: seconds} for recipients of a domain;
    ``refuse``: addresses answered 550 at RCPT; ``defer``: {address: n} answers 451 to the first
    n DATA attempts for that address. ``serve(port, name)`` adds a listener sharing the record.
    """

    def __init__(self, *, delay: float = 0.0, slow: dict[str, float] | None = None,
                 refuse: tuple[str, ...] = (), defer: dict[str, int] | None = None) -> None:
        self.delay = delay
        self.slow = dict(slow or {})
        self.refuse = {a.lower() for a in refuse}
        self.defer = {a.lower(): n for a, n in (defer or {}).items()}
        self.mails: list[Mail] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.data_attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._controllers: list[Controller] = []

    # -- servers ------------------------------------------------------------------------
    def serve(self, port: int | None = None, name: str = "smtp") -> int:
        port = port or free_port()
        controller = Controller(_Listener(self, name), hostname="127.0.0.1", port=port, ready_timeout=10)
        controller.start()
        self._controllers.append(controller)
        return port

    def stop(self) -> None:
        for controller in self._controllers:
            try:
                controller.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass
        self._controllers = []

    # -- reading ------------------------------------------------------------------------
    def received(self, incident: str | None = None) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if incident is None or m.incident == incident]

    def by_recipient(self, incident: str | None = None) -> dict[str, list[Mail]]:
        out: dict[str, list[Mail]] = {}
        for m in self.received(incident):
            out.setdefault(m.rcpt, []).append(m)
        return out

    def duplicates(self, incident: str | None = None) -> int:
        """Messages received again under a Message-ID already received."""
        ids = [m.message_id for m in self.received(incident)]
        return len(ids) - len(set(ids))

    async def wait(self, predicate, timeout: float, what: str, poll: float = 0.1, quiet: float | None = None):
        """Wait until ``predicate(self)``; give up after ``timeout`` s, or after ``quiet`` s with
        nothing new arriving (when given)."""
        deadline = time.monotonic() + timeout
        seen, changed = -1, time.monotonic()
        while True:
            if predicate(self):
                return
            count = len(self.received())
            if count != seen:
                seen, changed = count, time.monotonic()
            now = time.monotonic()
            if now > deadline or (quiet is not None and now - changed > quiet):
                raise AssertionError(f"gave up after {timeout if now > deadline else quiet:.0f}s waiting for "
                                     f"{what}; {count} messages received")
            await asyncio.sleep(poll)


class _Listener:
    def __init__(self, server: FaultySmtp, name: str) -> None:
        self.server, self.name = server, name

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        s = self.server
        with s._lock:
            s.rcpt_attempts[address.lower()] += 1
        if address.lower() in s.refuse:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        s = self.server
        rcpt = envelope.rcpt_tos[0].lower()
        with s._lock:
            s.data_attempts[rcpt] += 1
            attempt = s.data_attempts[rcpt]
        if attempt <= s.defer.get(rcpt, 0):
            return "451 4.3.0 Temporary local problem, try again later"
        delay = s.slow.get(rcpt.rpartition("@")[2], s.delay)
        if delay:
            await asyncio.sleep(delay)
        h = BytesHeaderParser(policy=compat32).parsebytes(envelope.content)
        mail = Mail(rcpt=rcpt, message_id=str(h["Message-ID"]).strip(), kind=str(h["X-Outage-Notice"]),
                    incident=str(h["X-Outage-Incident"]), seq=int(h["X-Outage-Seq"]),
                    next_update=parse_time(h["X-Outage-Next-Update"]),
                    in_reply_to=str(h["In-Reply-To"]).strip() if h["In-Reply-To"] else None,
                    received=utc_now(), server=self.name)
        with s._lock:
            s.mails.append(mail)
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def faulty():
    """Factory of ``FaultySmtp`` servers; all stopped at the end of the test."""
    made: list[FaultySmtp] = []

    def make(**kwargs) -> FaultySmtp:
        server = FaultySmtp(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def make_customers(n: int, *, tag: str, component: str = "api", region: str = "ap-northeast-1",
                   contacts: int = 1, domain: str = "example.com") -> list[dict]:
    return [{"customer_id": f"{tag}-{i:05d}", "name": f"{tag.upper()} {i} KK", "locale": ("ja", "en")[i % 2],
             "timezone": ("Asia/Tokyo", "Europe/London")[i % 2],
             "contacts": [{"email": f"{tag}{i}.{k}@{domain}", "name": f"Contact {k}"} for k in range(contacts)],
             "services": [{"component": component, "region": region}]}
            for i in range(n)]


def emails_of(customers: list[dict]) -> set[str]:
    return {c["email"].lower() for cust in customers for c in cust["contacts"]}


def load_customers(bootstrap: str, prefix: str, customers: list[dict]) -> None:
    """Produce many customer records at once (one flush); the worker reads them as input."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=[bootstrap], linger_ms=5)
    try:
        for c in customers:
            producer.send(prefix + "customers", key=c["customer_id"].encode(), value=json.dumps(c).encode())
        producer.flush(timeout=60)
    finally:
        producer.close()


def declare(worker, **fields) -> str:
    body = {"severity": "major", "status": "investigating", "title": {"en": "API errors", "ja": "APIのエラー"},
            "message": {"en": "We are investigating.", "ja": "調査しております。"},
            "components": ["api"], "regions": ["ap-northeast-1"], "update_interval_seconds": 3600, **fields}
    status, out = http("POST", worker.url + "/api/incidents", body, token=API_TOKEN)
    assert status == 201, out
    return out["incident_id"]


async def ready(*procs, timeout: float = 90.0) -> None:
    """Wait (off the loop) until every worker process answers /readyz with 200."""
    await asyncio.gather(*(asyncio.to_thread(p.wait_ready, timeout) for p in procs))


def smtp_env(port: int) -> dict:
    return {"OUTAGE_SMTP_PORT": str(port), "OUTAGE_SMTP_CONCURRENCY": str(CONCURRENCY)}


def every_one_once(server: FaultySmtp, incident: str, expected: set[str]) -> None:
    got = server.by_recipient(incident)
    missing = expected - set(got)
    assert not missing, f"{len(missing)} of {len(expected)} contacts got nothing, e.g. {sorted(missing)[:5]}"
    assert set(got) <= expected, f"unexpected recipients: {sorted(set(got) - expected)[:5]}"
    twice = {r: [m.message_id for m in ms] for r, ms in got.items() if len(ms) > 1}
    assert not twice, f"{len(twice)} contacts got the notice more than once, e.g. {list(twice.items())[:3]}"
