"""Per-partition views of the worker's tables: the customer index and who was notified.

Faust's in-memory table holds every partition the worker has (and has had); a round on
partition p must be answered from partition p's customers only (NOTES.md). So every table
value carries its partition, and these views are built per partition, lazily, from the
table after (re)assignment, then kept up to date by the agents and the sender.

Memory: a customer is held once, as the compact JSON text of its validated record prefixed
by its partition (``"3:{...}"``); ids are interned so the table and the index share them;
model objects are built only for the customers a round or a ticket touches.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, MutableMapping

from domain import ledger as L
from domain.affected import CustomerIndex
from schemas import Customer


def stored(p: int, customer: Customer) -> str:
    """A customer as kept in the customers table."""
    return f"{p}:{customer.model_dump_json()}"


def _split(value: str) -> tuple[int, str]:
    p, _, text = value.partition(":")
    return int(p), text


def _services(data: dict) -> list[tuple[str, str]]:
    return [(s["component"], s["region"]) for s in data.get("services", ())]


def services_of_stored(value: str | None) -> list[tuple[str, str]]:
    return _services(json.loads(_split(value)[1])) if value else []


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


def customer_of_stored(value: str) -> StoredCustomer:
    data = json.loads(_split(value)[1])
    return StoredCustomer(
        customer_id=data["customer_id"], name=data["name"], locale=data.get("locale", "en"),
        timezone=data.get("timezone", "UTC"), tier=data.get("tier"),
        contacts=tuple(StoredContact(c["email"], c.get("name")) for c in data.get("contacts", ())),
        services=tuple(StoredService(s["component"], s["region"]) for s in data.get("services", ())))


class PartitionViews:
    def __init__(self, customers_table: MutableMapping, ledger_table: MutableMapping) -> None:
        self._customers_table = customers_table
        self._ledger_table = ledger_table
        self._index: dict[int, CustomerIndex] = {}
        self._notified: dict[int, dict[str, set[str]]] = {}

    # -- life cycle ------------------------------------------------------------------------
    def drop(self, partitions: Iterable[int] | None = None) -> None:
        """Forget partitions (all when None): they are rebuilt from the tables on next use."""
        for store in (self._index, self._notified):
            if partitions is None:
                store.clear()
            else:
                for p in partitions:
                    store.pop(p, None)

    def _ensure(self, p: int) -> None:
        if p in self._index:
            return
        index = CustomerIndex()
        for cid, value in list(self._customers_table.items()):
            if value and _split(value)[0] == p:
                index.put(sys.intern(cid), services_of_stored(value))
        notified: dict[str, set[str]] = defaultdict(set)
        for cid, entry in list(self._ledger_table.items()):
            if entry and entry.get("p") == p:
                for incident in L.incidents_in(entry):
                    notified[incident].add(cid)
        self._index[p], self._notified[p] = index, notified

    # -- customers -------------------------------------------------------------------------
    def index(self, p: int) -> CustomerIndex:
        self._ensure(p)
        return self._index[p]

    def customer_lookup(self, p: int) -> Callable[[str], StoredCustomer | None]:
        """Customers of partition p by id (None for another partition's or an unknown one)."""
        self._ensure(p)
        index, table = self._index[p], self._customers_table

        def lookup(customer_id: str) -> StoredCustomer | None:
            if customer_id not in index:
                return None
            value = table.get(customer_id)
            return customer_of_stored(value) if value else None

        return lookup

    def put_customer(self, p: int, customer_id: str, services: list[tuple[str, str]],
                     previous: str | None) -> None:
        """Index a customer just stored; ``previous``: its former stored value, if any."""
        self._ensure(p)
        self._index[p].put(customer_id, services, services_of_stored(previous))

    def remove_customer(self, p: int, customer_id: str, previous: str | None) -> None:
        self._ensure(p)
        self._index[p].remove(customer_id, services_of_stored(previous))

    def customer_count(self) -> int:
        return sum(len(i) for i in self._index.values())

    # -- ledger ----------------------------------------------------------------------------
    def notified(self, p: int, incident_id: str) -> set[str]:
        self._ensure(p)
        return set(self._notified[p].get(incident_id, ()))

    def mark_notified(self, p: int, incident_id: str, customer_id: str) -> None:
        self._ensure(p)
        self._notified[p][incident_id].add(customer_id)
