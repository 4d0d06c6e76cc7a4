"""The relay of row 8: an SMTP server that accepts only so many messages a second, recording
what it accepted, and the judge of the promises those messages kept. ``judge`` is pure code,
unit-tested in tests/unit/test_bench_relay.py.

``ThrottledRelay`` is an aiosmtpd ``Controller`` (its own thread and event loop) on 127.0.0.1:
every DATA, on any of its connections, is answered no sooner than ``1 / rate`` seconds after
the one before (a slot taken under a lock, then waited for), like a relay that throttles its
senders; the rules of ``judge`` are those of tests/integration/faults_kit.py's ``promises_kept``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Iterable, Protocol

from aiosmtpd.controller import Controller

from devtools.embedded import free_port


@dataclass(frozen=True, slots=True)
class RelayMail:
    rcpt: str                   # the recipient, lowercased (a notice has one)
    message_id: str
    kind: str                   # X-Outage-Notice
    incident: str               # X-Outage-Incident
    next_update: float | None   # X-Outage-Next-Update, epoch seconds (None: no such header)
    received: float             # epoch seconds when the relay accepted it


def _epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp() if value else None


class ThrottledRelay:
    """An SMTP server on 127.0.0.1:``port`` (a free one unless given) accepting at most ``rate``
    messages a second across all its connections; records every message it accepted
    (``RelayMail``; thread-safe). ``start()`` / ``stop()``; registered for clean-up like the
    bench's processes."""

    def __init__(self, rate: float, port: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._next_slot = 0.0           # (monotonic) when the next message may be accepted
        self._mails: list[RelayMail] = []
        self._controller: Controller | None = None

    def start(self) -> "ThrottledRelay":
        controller = Controller(self, hostname="127.0.0.1", port=self.port, ready_timeout=10)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def count(self) -> int:
        """Messages accepted so far."""
        with self._lock:
            return len(self._mails)

    def mails(self, incident: str | None = None) -> list[RelayMail]:
        """The messages accepted (about ``incident``, when given), in the order accepted."""
        with self._lock:
            return [m for m in self._mails if incident is None or m.incident == incident]

    def reached(self, incident: str) -> int:
        """How many distinct recipients have received something about ``incident``."""
        return len({m.rcpt for m in self.mails(incident)})

    async def handle_DATA(self, server, session, envelope) -> str:   # aiosmtpd's handler hook
        with self._lock:
            slot = max(time.monotonic(), self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        h = BytesHeaderParser(policy=compat32).parsebytes(envelope.content)
        mail = RelayMail(rcpt=envelope.rcpt_tos[0].lower(), message_id=str(h["Message-ID"]).strip(),
                         kind=str(h["X-Outage-Notice"]), incident=str(h["X-Outage-Incident"]),
                         next_update=_epoch(h["X-Outage-Next-Update"]), received=time.time())
        with self._lock:
            self._mails.append(mail)
        return "250 2.0.0 Ok: queued"


class MailLike(Protocol):
    rcpt: str
    message_id: str
    kind: str
    next_update: float | None
    received: float


def _in_force(copies: list, before: float | None) -> float | None:
    """The next update a contact holds from the copies of one notice received before ``before``
    (None: all): the latest copy's (a copy resent after a ``kill -9`` states a later time, and the
    pipeline keeps that one), as tests/integration/faults_kit.py's ``in_force``."""
    held = [m for m in copies if before is None or m.received < before]
    return (held[-1] if held else copies[0]).next_update


CLOSE_EXAMPLES = 5


def judge(mails: Iterable[MailLike], *, interval: float, until: float, slack: float = 1.0) -> dict:
    """Every notice against the one before it to the same contact (times in epoch seconds).

    Per contact, its distinct Message-IDs in the order they arrived (a copy of one already
    received is a repeat); of each pair in a row, the later one must arrive by the time the
    earlier one stated (its next update, plus ``slack``; of its copies received by then, the
    latest one's), else a promise is missed; a holding
    update (``scheduled``) arriving less than two thirds of ``interval`` (minus ``slack``)
    after the notice before it is ``close``. A contact whose last notice's promise fell more
    than ``slack`` before ``until`` (when watching stopped) with nothing after it missed that
    promise too; a promise falling later is not judged. ``worst_missed_s``: the most seconds a
    missed promise was overdue (None when none was missed). ``close_examples``: the first
    ``CLOSE_EXAMPLES`` close pairs, each with the gap, the kind of the notice before, how far
    ahead of its arrival the promise it held lay, and its copies (to see why it came so soon);
    ``missed_examples``: the first ``CLOSE_EXAMPLES`` missed promises, each with the kinds of the
    notice that stated it and of the one that came late (None: nothing came), when the first came
    (seconds after the first email watched), how far ahead its promise lay, and how late it was."""
    mails = list(mails)
    by_rcpt: dict[str, list[MailLike]] = {}
    for m in sorted(mails, key=lambda m: m.received):
        by_rcpt.setdefault(m.rcpt, []).append(m)
    notices = kept = close = repeats = 0
    missed: list[float] = []
    examples: list[dict] = []
    missed_examples: list[dict] = []
    start = min((m.received for m in mails), default=0.0)

    def note_miss(before, after, promise, past) -> None:
        if len(missed_examples) < CLOSE_EXAMPLES:
            missed_examples.append({"before_kind": before.kind, "after_kind": after.kind if after else None,
                                    "before_at_s": round(before.received - start, 2),
                                    "promise_ahead_s": round(promise - before.received, 2),
                                    "late_s": round(past, 2)})
    for ms in by_rcpt.values():
        seen: set[str] = set()
        distinct = []
        copies: dict[str, list[MailLike]] = {}
        for m in ms:
            copies.setdefault(m.message_id, []).append(m)
            if m.message_id in seen:
                repeats += 1
                continue
            seen.add(m.message_id)
            distinct.append(m)
        notices += len(distinct)
        for before, after in zip(distinct, distinct[1:]):
            promise = _in_force(copies[before.message_id], after.received)
            if promise is not None:
                past = after.received - promise
                if past > slack:
                    missed.append(past)
                    note_miss(before, after, promise, past)
                else:
                    kept += 1
            if after.kind == "scheduled" and after.received - before.received < interval * 2 / 3 - slack:
                close += 1
                if len(examples) < CLOSE_EXAMPLES:
                    held = copies[before.message_id]
                    examples.append({"gap_s": round(after.received - before.received, 2), "before_kind": before.kind,
                                     "before_promise_ahead_s": None if promise is None
                                     else round(promise - before.received, 2),
                                     "before_copies": len(held)})
        last = _in_force(copies[distinct[-1].message_id], None)
        if last is not None and until - last > slack:
            missed.append(until - last)   # nothing came by it
            note_miss(distinct[-1], None, last, until - last)
    return {"notices": notices, "kept": kept, "missed": len(missed), "worst_missed_s": max(missed, default=None),
            "close": close, "close_examples": examples, "missed_examples": missed_examples, "repeats": repeats,
            "contacts": len(by_rcpt)}
