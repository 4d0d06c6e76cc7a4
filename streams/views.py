"""Per-partition views of the worker's state: the customers and who was notified.

A worker answers a round on partition p from partition p's customers only (docs/design.md). The
customers are kept per partition by ``streams.customers.CustomerStore`` (its index in memory, the
records on local disk); the "notified" view is built per partition, lazily, from that
partition's ledger store (``streams/state.py``) after (re)assignment, then kept up to date by the
sender.

Model objects are built only for the customers a round or a ticket touches.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from domain import ledger as L
from domain.affected import CustomerIndex
from schemas import Customer


@dataclass(frozen=True, slots=True)
class StoredContact:
    email: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class StoredService:
    component: str
    region: str


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    """A customer read back from the table: what the domain reads of a ``Customer``
    (``domain.audience.CustomerLike``), without validating again (it was validated on the way
    in) and without building pydantic models (a visible share of a fan-out's CPU)."""

    customer_id: str
    name: str
    locale: str = "en"
    timezone: str = "UTC"
    tier: str | None = None
    contacts: tuple[StoredContact, ...] = ()
    services: tuple[StoredService, ...] = ()


def customer_of_json(text: str | bytes) -> StoredCustomer:
    """A customer from the compact JSON of its validated record."""
    data = json.loads(text)
    return StoredCustomer(
        customer_id=data["customer_id"], name=data["name"], locale=data.get("locale", "en"),
        timezone=data.get("timezone", "UTC"), tier=data.get("tier"),
        contacts=tuple(StoredContact(c["email"], c.get("name")) for c in data.get("contacts", ())),
        services=tuple(StoredService(s["component"], s["region"]) for s in data.get("services", ())))


class PartitionViews:
    def __init__(self, customers, ledger_table) -> None:
        self._customers = customers          # a streams.customers.CustomerStore
        self._ledger_table = ledger_table
        self._notified: dict[int, dict[str, set[str]]] = {}

    # -- life cycle ------------------------------------------------------------------------
    def drop(self, partitions: Iterable[int] | None = None) -> None:
        """Forget the ledger views of partitions (all when None): rebuilt from the table on next
        use. The customers follow the assignment themselves (``CustomerStore.rebalance``)."""
        if partitions is None:
            self._notified.clear()
        else:
            for p in partitions:
                self._notified.pop(p, None)

    def _ensure(self, p: int) -> dict[str, set[str]]:
        notified = self._notified.get(p)
        if notified is None:
            notified = defaultdict(set)
            for cid, entry in self._ledger_table.partition(p).items():
                if entry:
                    for incident in L.incidents_in(entry):
                        notified[incident].add(cid)
            self._notified[p] = notified
        return notified

    # -- customers -------------------------------------------------------------------------
    def index(self, p: int) -> CustomerIndex:
        return self._customers.index(p)

    def customer_lookup(self, p: int) -> Callable[[str], StoredCustomer | None]:
        """Customers of partition p by id (None for another partition's or an unknown one)."""
        store = self._customers

        def lookup(customer_id: str) -> StoredCustomer | None:
            return store.lookup(p, customer_id)

        return lookup

    def customer_count(self) -> int:
        return self._customers.count()

    # -- ledger ----------------------------------------------------------------------------
    def notified(self, p: int, incident_id: str) -> set[str]:
        return set(self._ensure(p).get(incident_id, ()))

    def mark_notified(self, p: int, incident_id: str, customer_id: str) -> None:
        self._ensure(p)[incident_id].add(customer_id)
