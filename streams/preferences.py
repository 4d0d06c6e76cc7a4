"""The preferences agent: a contact's choice (all, start-and-end, none) or one-click unsubscribe,
applied on the customer's partition.

Runtime contract:
- Input: the ``preferences`` topic, keyed by ``customer_id``; a value is ``{"customer_id",
  "recipient", "action": "unsubscribe"|"receive", "receive": "all"|"start-and-end"|"none" (with
  receive), "at"}`` (``domain/preferences.py``), written by :meth:`Preferences.request` (the
  preferences page, the ops API, undo) and :meth:`Preferences.request_unsubscribe` (the one-click
  link). Records written before choices existed (``action: unsubscribe``) read as they did.
  Being keyed by the customer, a request lands on the customer's partition, where the
  customer's ledger entry lives.
- Effect: the entry's ``receive``/``unsubscribed`` parts change (``domain.preferences``), which every
  plan reads before it composes a notice; nothing else changes. Every request names its outcome
  (undo is a request back to the earlier choice), so applying one twice (a replay after a
  rebalance or a crash) changes nothing more.
- The topic is kept whole (created with ``retention.ms=-1``: requests are few and small), so the
  view every worker keeps of it (``streams/preferences_view.py``) folds the same requests the
  ledger did.
- Bad input (not JSON, a field missing or unknown) goes to the dead-letter topic with the reason;
  the stream goes on. The event is acknowledged when the ledger write is queued.
"""

from __future__ import annotations

import inspect
import json
from datetime import datetime
from typing import Callable

from domain import preferences as P
from streams import topics as T
from streams.state import PartitionedTable


def apply(entry: dict | None, request: dict) -> dict:
    """The customer's ledger entry with ``request`` applied (a plain function: no I/O); raises
    ``domain.preferences.BadRequest`` for a request that cannot be applied."""
    return P.apply_request(entry, P.check_request(request))


class Preferences:
    def __init__(self, *, topic, ledger: PartitionedTable, dlq, clock: Callable[[], datetime]) -> None:
        self.topic = topic
        self.ledger = ledger
        self.dlq = dlq
        self.clock = clock

    async def request(self, customer_id: str, recipient: str, receive: str) -> dict:
        """From the web (the page, the ops API, undo): routed onto the customer's partition,
        applied by the agent; the request sent, once the broker took it."""
        return await self._send({"customer_id": customer_id, "recipient": recipient, "action": P.RECEIVE,
                                 "receive": receive, "at": self.clock().isoformat()})

    async def request_unsubscribe(self, customer_id: str, recipient: str) -> dict:
        """From the web's one-click unsubscribe link."""
        return await self._send({"customer_id": customer_id, "recipient": recipient, "action": P.UNSUBSCRIBE,
                                 "at": self.clock().isoformat()})

    async def _send(self, request: dict) -> dict:
        P.check_request(request)
        sent = await self.topic.send(key=request["customer_id"].encode(), value=json.dumps(request).encode())
        if inspect.isawaitable(sent):
            await sent   # faust: the broker's acknowledgement
        return request

    async def agent(self, stream) -> None:
        async for event in stream.events():
            async with self.dlq.guard(event, T.PREFERENCES):
                request = json.loads(event.value)
                entries = self.ledger.partition(event.message.partition)
                customer_id = P.check_request(request)["customer_id"]
                entries.set(customer_id, apply(entries.get(customer_id), request))
