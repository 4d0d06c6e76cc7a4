"""Suppressed addresses, on every worker: recorded on a 5xx, skipped by every later notice, listed
and lifted by ops.

Runtime contract:
- ``refused(job, result)`` (the sender, on a permanent failure): a 5xx reply to RCPT (the
  recipient refused, ``SendResult.recipient_refused``; not one to MAIL or DATA) suppresses the
  address: a record keyed by the address (``domain/suppression.py``) goes to the compacted
  ``outage.suppressions`` topic, and this worker's view holds it at once (the others' when they
  read it, typically within a fetch wait). Counted in ``outage_addresses_suppressed_total`` (no
  label names an address); the reason keeps the code and the reply text with addresses scrubbed.
  A refusal without a code (an address the message builder cannot use) is only dead-lettered.
- ``ready()``: the sender's gate before each send: no notice leaves a worker before its view has
  read the suppressions the topic held when it started (at most ``READY_WAIT_SECONDS``).
- ``guard(refresh)``: the sender's check right before each send, made to drop a notice to a
  suppressed address (``suppressed(email)``): it is not tried (``outage_notices_suppressed_total``); it stays unsent in the
  ledger, so once the address is lifted the next round reaches it. The customer's other contacts
  are unaffected.
- ``lift(email)`` (ops, ``DELETE /api/suppressions/{email}``): a tombstone for the address; False
  when it is not suppressed. ``listed()``: every suppression, newest first.
- The book is the one of ``streams/suppression_view.py`` (the topic read whole by every worker),
  so every worker skips, lists and lifts the same addresses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime
from typing import Callable

from domain.suppression import Suppression, SuppressionBook, address_key, is_permanent_refusal, reason_of
from notifiers.smtp import scrub
from streams import metrics as M

log = logging.getLogger(__name__)

READY_WAIT_SECONDS = 30.0
READY_POLL_SECONDS = 0.05


class Suppressions:
    """The suppressions of a worker: ``book`` is its view's (or, in tests, any book kept up to date)."""

    def __init__(self, *, topic, book: SuppressionBook, clock: Callable[[], datetime],
                 sync: Callable | None = None, caught_up: Callable[[], bool] | None = None) -> None:
        self.topic = topic
        self.book = book
        self.clock = clock
        self._sync = sync   # waits until the view read what the topic holds now (ops reads)
        self._caught_up = caught_up   # the view has read what the topic held when it started
        self._open = caught_up is None

    async def ready(self) -> None:
        """The sender's gate before each send: returns at once once the book holds every
        suppression the topic held when this worker started (a worker just started would
        otherwise try a suppressed address once); waits for that at most ``READY_WAIT_SECONDS``,
        then lets the notices go with a warning (a promise is not given up for a view that
        cannot be read)."""
        if self._open:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + READY_WAIT_SECONDS
        while not self._caught_up():
            if loop.time() >= until:
                log.warning("the suppressed addresses were not read within %.0fs: sending without them",
                            READY_WAIT_SECONDS)
                break
            await asyncio.sleep(READY_POLL_SECONDS)
        self._open = True

    def suppressed(self, email: str) -> bool:
        return self.book.suppressed(email)

    def guard(self, refresh: Callable) -> Callable:
        """The sender's ``refresh(job, partition)`` that also drops a job whose address is suppressed
        (an incident's notice or a maintenance's): it stays unsent in the ledger, so once the address
        is lifted the next round reaches it."""
        def refreshed(job, *args):
            owed = refresh(job, *args)
            if owed is not None and self.book.suppressed(owed.email):
                M.NOTICES_SUPPRESSED.inc()
                return None
            return owed
        return refreshed

    async def sync(self) -> None:
        if self._sync is not None:
            await self._sync()

    def listed(self) -> list[dict]:
        return [s.public() for s in self.book.all()]

    async def refused(self, job, result) -> None:
        """The SMTP server refused ``job``'s address for good: suppress it. Only a 5xx to RCPT
        refuses the address: one to MAIL refuses the sender (a relay that refuses every notice
        must not suppress every contact), one to DATA the message."""
        if not (is_permanent_refusal(result.code) and getattr(result, "recipient_refused", False)):
            return
        suppression = Suppression(email=job.email, at=self.clock().isoformat(), code=result.code,
                                  reason=reason_of(result.code, scrub(result.message or "")))
        self.book.put(suppression)   # this worker skips it at once
        M.ADDRESSES_SUPPRESSED.inc()
        log.warning("an address was suppressed after a permanent refusal: %s", suppression.reason)
        # handed to the producer, not waited for: a sender's runner must not wait on the broker
        await self._send(address_key(job.email), suppression.to_json(), acknowledged=False)

    async def lift(self, email: str) -> bool:
        """Lift the suppression of ``email``; False when it is not suppressed."""
        if not self.book.suppressed(email):
            return False
        await self._send(address_key(email), None)
        self.book.remove(email)
        M.SUPPRESSIONS_LIFTED.inc()
        return True

    async def _send(self, key: str, value: bytes | None, acknowledged: bool = True) -> None:
        sent = await self.topic.send(key=key.encode(), value=value)
        if acknowledged and inspect.isawaitable(sent):
            await sent   # faust: the broker's acknowledgement
