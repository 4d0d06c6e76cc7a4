"""Composing notices and handing them to SMTP in helper processes (``OUTAGE_DELIVERY_PROCESSES``).

Composing a notice and speaking SMTP are most of a notice's CPU, and a Python process uses
one core. ``ProcessDelivery`` runs both in ``processes`` child processes (``python -m
notifiers.delivery``), each with its own ``NoticeComposer`` and ``SmtpPool``; the worker keeps
everything else (planning, the order of sends, the ledger, the notices topic).

Runtime contract:
- ``await deliver(job, now)`` composes ``job`` at ``now`` and sends it, in a child, and returns
  the ``SendResult`` of the child's ``SmtpPool.send``; it raises ``ComposeError`` when the
  notice cannot be composed (the in-process composer's ``ValueError``).
- A child that exits (crash, kill) fails its pending deliveries as *temporary*, so the
  sender retries them: a message the child had already handed over may be sent again, as
  with any connection lost before the server's reply. The next delivery starts a new child
  (at most one start a second per child).
- ``close()`` closes the children's input: each finishes the sends it has, closes its SMTP
  connections and exits; one still running after ``timeout`` is killed. A worker killed
  outright leaves its children nothing to read: they finish their sends and exit too.

Wire: length-prefixed pickles over the child's stdin/stdout (a trusted pipe between two
processes of one program). The first frame is the child's configuration; a round is sent
once per child (``("round", key, round)``), then each job refers to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable

from notifiers.smtp import TEMPORARY, SendResult

__all__ = ["ComposeError", "DeliveryConfig", "ProcessDelivery"]

log = logging.getLogger(__name__)
_LEN = struct.Struct("!I")


class ComposeError(ValueError):
    """The notice cannot be composed (e.g. a header value the message builder refuses)."""


@dataclass(frozen=True)
class DeliveryConfig:
    """What a child needs to compose and send: the composer's and the SMTP pool's settings."""

    public_url: str
    mail_from: str
    signing_key: bytes
    smtp: dict[str, Any]          # SmtpPool keyword arguments; ``concurrency``: all helpers' connections together
    reply_to: str | None = None   # OUTAGE_REPLY_TO: every notice's Reply-To (and its invitation to reply)
    log_format: str = "text"      # OUTAGE_LOG_FORMAT: the child's lines are the worker's (core/logs.py)


@dataclass(frozen=True, slots=True)
class _Service:
    component: str
    region: str


@dataclass(frozen=True, slots=True)
class _Customer:
    """What composing reads of a customer: its own status link signs its services too."""

    customer_id: str
    name: str
    locale: str
    timezone: str
    services: tuple[_Service, ...] = ()


def customer_frame(customer) -> tuple:
    """A customer as the job frame carries it (``_customer`` makes it again in the child)."""
    return (customer.customer_id, customer.name, customer.locale, customer.timezone,
            tuple((s.component, s.region) for s in customer.services))


def _customer(cid: str, name: str, locale: str, tz: str, services: tuple) -> _Customer:
    return _Customer(cid, name, locale, tz, tuple(_Service(c, r) for c, r in services))


def job_frame(req: int, round_key: int, now: datetime, job) -> tuple:
    """What the worker sends a helper of one job (the round goes once, by its key): everything
    composing reads, as plain values (the recipient's choice too: a start-and-end notice promises
    no next update)."""
    return ("job", req, round_key, now, job.kind, customer_frame(job.customer), job.recipient, job.email,
            job.contact_name, job.message_id, job.in_reply_to, tuple(job.services), job.ticket_id, job.ticket_subject,
            job.receive)


def job_of(frame: tuple, rounds: dict):
    """The helper's job from ``job_frame``'s tuple and the rounds it was sent (the inverse)."""
    from domain.audience import NoticeJob

    (_, _req, key, _now, kind, customer, recipient, email, contact_name, message_id,
     in_reply_to, services, ticket_id, ticket_subject, receive) = frame
    return NoticeJob(kind=kind, round=rounds[key], customer=_customer(*customer), recipient=recipient, email=email,
                     contact_name=contact_name, message_id=message_id, in_reply_to=in_reply_to, services=services,
                     ticket_id=ticket_id, ticket_subject=ticket_subject, receive=receive)


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    return pickle.loads(await reader.readexactly(size))


# -- the worker's side -----------------------------------------------------------------------

class _Child:
    def __init__(self, connections: int) -> None:
        self.connections = connections   # its share of the SMTP connections
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.rounds: dict[int, tuple[object, int]] = {}   # id(round) -> (round kept alive, key)
        self.reader: asyncio.Task | None = None
        self.starting: asyncio.Task | None = None
        self.started = 0.0
        self.load = 0          # deliveries given to it and not answered yet

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.reader is not None \
            and not self.reader.done()


class ProcessDelivery:
    def __init__(self, config: DeliveryConfig, processes: int = 1,
                 on_eta_passed: Callable[[], None] | None = None, python: str = sys.executable) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._config = config
        # the connections are split exactly (never more in all than configured), so there is
        # at most one helper per connection
        total = config.smtp.get("concurrency", 8)
        processes = min(processes, total)
        self._children = [_Child(total // processes + (i < total % processes)) for i in range(processes)]
        self._on_eta_passed = on_eta_passed
        self._python = python
        self._ids = 0
        self._round_keys = 0
        self._closed = False

    async def _ready(self, child: _Child) -> bool:
        """Start ``child`` unless it runs (or is starting); True once it runs."""
        if child.alive:
            return True
        if child.starting is None or child.starting.done():
            child.starting = asyncio.get_running_loop().create_task(self._start(child))
        return await asyncio.shield(child.starting)

    async def _start(self, child: _Child) -> bool:
        if time.monotonic() - child.started < 1.0:
            return False  # it died within a second of its start: not again at once
        child.started = time.monotonic()
        child.proc = await asyncio.create_subprocess_exec(
            self._python, "-m", "notifiers.delivery", self._config.log_format, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=None)
        child.rounds = {}
        child.proc.stdin.write(_frame(replace(self._config, smtp={**self._config.smtp,
                                                                   "concurrency": child.connections})))
        child.reader = asyncio.get_running_loop().create_task(self._read(child))
        log.info("delivery: started helper process %d", child.proc.pid)
        return True

    async def _read(self, child: _Child) -> None:
        proc = child.proc
        try:
            while True:
                req, reply = await _read_frame(proc.stdout)
                fut = child.pending.pop(req, None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError, EOFError):
            pass
        except Exception as exc:  # noqa: BLE001 - a garbled frame: that child cannot be trusted
            log.error("delivery: bad reply from helper process %d (%s); stopping it", proc.pid, type(exc).__name__)
            proc.kill()
        finally:
            code = await proc.wait()
            if not self._closed:
                log.warning("delivery: helper process %d exited (status %s); %d sends to retry",
                            proc.pid, code, len(child.pending))
            lost = SendResult(TEMPORARY, None, "the delivery process exited before the server's reply")
            for fut in child.pending.values():
                if not fut.done():
                    fut.set_result(("sent", lost, False))
            child.pending.clear()

    async def deliver(self, job, now: datetime) -> SendResult:
        if self._closed:
            raise RuntimeError("ProcessDelivery is closed")
        child = min(self._children, key=lambda c: c.load)
        child.load += 1
        try:
            return await self._deliver(child, job, now)
        finally:
            child.load -= 1

    async def _deliver(self, child: _Child, job, now: datetime) -> SendResult:
        if not await self._ready(child):
            return SendResult(TEMPORARY, None, "the delivery process is restarting")
        rnd = job.round
        known = child.rounds.get(id(rnd))
        out = []
        if known is None or known[0] is not rnd:
            if len(child.rounds) >= 1024:
                child.rounds.clear()
                out.append(_frame(("forget",)))
            self._round_keys += 1
            known = child.rounds[id(rnd)] = (rnd, self._round_keys)
            out.append(_frame(("round", known[1], rnd)))
        self._ids += 1
        req = self._ids
        out.append(_frame(job_frame(req, known[1], now, job)))
        fut = asyncio.get_running_loop().create_future()
        child.pending[req] = fut
        child.proc.stdin.write(b"".join(out))
        try:
            await child.proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            pass  # the reader fails the pending ones
        outcome, value, eta_passed = await fut
        if eta_passed and self._on_eta_passed is not None:
            self._on_eta_passed()
        if outcome == "compose":
            raise ComposeError(value)
        return value

    async def close(self, timeout: float = 30.0) -> None:
        """Let every child finish its sends and exit (killed after ``timeout``). Idempotent."""
        self._closed = True
        for child in self._children:
            if child.proc is not None and child.proc.returncode is None:
                child.proc.stdin.close()
        for child in self._children:
            if child.proc is None:
                continue
            try:
                await asyncio.wait_for(child.proc.wait(), timeout)
            except TimeoutError:
                log.warning("delivery: helper process %d still running after %.0fs; killed", child.proc.pid, timeout)
                child.proc.kill()
                await child.proc.wait()
            if child.reader is not None:
                await asyncio.gather(child.reader, return_exceptions=True)


# -- the child's side ------------------------------------------------------------------------

async def _serve() -> None:
    from notifiers.notice import NoticeComposer
    from notifiers.smtp import SmtpPool

    loop = asyncio.get_running_loop()
    replies = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(replies, "wb", 0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    config: DeliveryConfig = await _read_frame(reader)
    passed = [False]

    def on_content(content) -> None:
        passed[0] = content.eta_state == "passed"

    composer = NoticeComposer(public_url=config.public_url, mail_from=config.mail_from,
                              signing_key=config.signing_key, on_content=on_content, reply_to=config.reply_to)
    pool = SmtpPool(**config.smtp)
    rounds: dict[int, Any] = {}
    tasks: set[asyncio.Task] = set()

    async def send(req: int, data: bytes, rcpt: str, eta_passed: bool) -> None:
        try:
            result = await pool.send(config.mail_from, rcpt, data)
        except Exception as exc:  # noqa: BLE001 - reported to the worker, never lost
            result = SendResult(TEMPORARY, None, f"{type(exc).__name__}: {exc}")
        writer.write(_frame((req, ("sent", result, eta_passed))))

    async with pool:
        while True:
            try:
                frame = await _read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the worker closed our input (or is gone): finish and exit
            if frame[0] == "round":
                rounds[frame[1]] = frame[2]
                continue
            if frame[0] == "forget":
                rounds.clear()
                continue
            req, now = frame[1], frame[3]
            job = job_of(frame, rounds)
            passed[0] = False
            try:
                data = composer(job, now)
            except ValueError as exc:
                writer.write(_frame((req, ("compose", str(exc), False))))
                continue
            task = loop.create_task(send(req, data, job.email, passed[0]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await writer.drain()
        except ConnectionError:
            pass


def main() -> None:
    from core.logs import FORMATS, configure

    fmt = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in FORMATS else "text"
    configure(fmt, logging.INFO, text_format="%(asctime)s %(levelname)s delivery[%(process)d] %(name)s: %(message)s")
    try:
        asyncio.run(_serve())
    except Exception:   # a line in the worker's format (the JSON one too), not a bare traceback
        logging.getLogger("notifiers.delivery").exception("delivery helper %d stopped", os.getpid())   # not __main__
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
