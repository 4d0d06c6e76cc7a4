"""Per-partition views of the worker's tables: the customer index and who was notified.

Faust's in-memory table holds every partition the worker has (and has had); a round on
partition p must be answered from partition p's customers only (NOTES.md). So every table
value carries its partition (``"p"``), and these views are built per partition, lazily, from
the table after (re)assignment, then kept up to date by the agents and the sender.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable, MutableMapping

from domain import ledger as L
from domain.affected import CustomerIndex
from domain.audience import services_of
from schemas import Customer


class PartitionViews:
    def __init__(self, customers_table: MutableMapping, ledger_table: MutableMapping) -> None:
        self._customers_table = customers_table
        self._ledger_table = ledger_table
        self._index: dict[int, CustomerIndex] = {}
        self._customers: dict[int, dict[str, Customer]] = {}
        self._notified: dict[int, dict[str, set[str]]] = {}

    # -- life cycle ------------------------------------------------------------------------
    def drop(self, partitions: Iterable[int] | None = None) -> None:
        """Forget partitions (all when None): they are rebuilt from the tables on next use."""
        for store in (self._index, self._customers, self._notified):
            if partitions is None:
                store.clear()
            else:
                for p in partitions:
                    store.pop(p, None)

    def _ensure(self, p: int) -> None:
        if p in self._index:
            return
        index, customers = CustomerIndex(), {}
        for cid, value in list(self._customers_table.items()):
            if value and value.get("p") == p:
                customer = Customer.model_validate(value["c"])
                customers[cid] = customer
                index.put(cid, services_of(customer))
        notified: dict[str, set[str]] = defaultdict(set)
        for cid, entry in list(self._ledger_table.items()):
            if entry and entry.get("p") == p:
                for incident in L.incidents_in(entry):
                    notified[incident].add(cid)
        self._index[p], self._customers[p], self._notified[p] = index, customers, notified

    # -- customers -------------------------------------------------------------------------
    def index(self, p: int) -> CustomerIndex:
        self._ensure(p)
        return self._index[p]

    def customer_lookup(self, p: int) -> Callable[[str], Customer | None]:
        self._ensure(p)
        return self._customers[p].get

    def put_customer(self, p: int, customer: Customer) -> None:
        self._ensure(p)
        self._customers[p][customer.customer_id] = customer
        self._index[p].put(customer.customer_id, services_of(customer))

    def remove_customer(self, p: int, customer_id: str) -> None:
        self._ensure(p)
        self._customers[p].pop(customer_id, None)
        self._index[p].remove(customer_id)

    def customer_count(self) -> int:
        return sum(len(c) for c in self._customers.values())

    # -- ledger ----------------------------------------------------------------------------
    def notified(self, p: int, incident_id: str) -> set[str]:
        self._ensure(p)
        return set(self._notified[p].get(incident_id, ()))

    def mark_notified(self, p: int, incident_id: str, customer_id: str) -> None:
        self._ensure(p)
        self._notified[p][incident_id].add(customer_id)
