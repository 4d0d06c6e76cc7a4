"""The preferences agent: a contact's one-click unsubscribe, applied on the customer's partition.

Runtime contract:
- Input: the ``preferences`` topic, keyed by ``customer_id``; a value is
  ``{"customer_id", "recipient", "action": "unsubscribe", "at"}`` (written by
  :meth:`Preferences.request_unsubscribe`, from the web's unsubscribe link). Being keyed by the
  customer, it lands on the customer's partition, where the customer's ledger entry lives.
- Effect: the recipient is added to the entry's ``unsubscribed`` set (``domain.ledger``), which
  every plan reads before it composes a notice; nothing else changes. Applying a request twice
  (a replay after a rebalance or a crash) changes nothing more.
- Bad input (not JSON, a field missing) goes to the dead-letter topic with the reason; the stream
  goes on. The event is acknowledged when the ledger write is queued.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Callable

from domain import ledger as L
from streams import topics as T
from streams.state import PartitionedTable


def apply(entry: dict | None, request: dict) -> dict:
    """The customer's ledger entry with ``request`` applied (a plain function: no I/O)."""
    return L.record_unsubscribe(entry, request["recipient"])


class Preferences:
    def __init__(self, *, topic, ledger: PartitionedTable, dlq, clock: Callable[[], datetime]) -> None:
        self.topic = topic
        self.ledger = ledger
        self.dlq = dlq
        self.clock = clock

    async def request_unsubscribe(self, customer_id: str, recipient: str) -> None:
        """From the web: routed onto the customer's partition, applied by the agent."""
        value = json.dumps({"customer_id": customer_id, "recipient": recipient, "action": "unsubscribe",
                            "at": self.clock().isoformat()}).encode()
        await self.topic.send(key=customer_id.encode(), value=value)

    async def agent(self, stream) -> None:
        async for event in stream.events():
            async with self.dlq.guard(event, T.PREFERENCES):
                request = json.loads(event.value)
                customer_id = request["customer_id"]
                entries = self.ledger.partition(event.message.partition)
                entries.set(customer_id, apply(entries.get(customer_id), request))
