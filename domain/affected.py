"""Who is affected by an incident: the rule, and the index that answers it for many customers.

A customer is affected when one of its services has a listed component and (no regions are
listed, or the service's region is listed). The index maps component -> region -> customer
ids, so an incident's affected set costs a few dictionary lookups, never a scan of every
customer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Scope:
    """Which services an incident touches. Empty regions: every region."""

    components: tuple[str, ...]
    regions: tuple[str, ...] = ()

    @classmethod
    def of(cls, components: Iterable[str] | None, regions: Iterable[str] | None = None) -> "Scope":
        return cls(tuple(sorted(set(components or ()))), tuple(sorted(set(regions or ()))))

    def covers(self, component: str, region: str) -> bool:
        return component in self.components and (not self.regions or region in self.regions)


def affected_services(services: Iterable[tuple[str, str]], scope: Scope) -> tuple[tuple[str, str], ...]:
    """The customer's own services inside the scope, sorted: what its notice names."""
    return tuple(sorted({(c, r) for c, r in services if scope.covers(c, r)}))


def is_affected(services: Iterable[tuple[str, str]], scope: Scope) -> bool:
    return any(scope.covers(c, r) for c, r in services)


class CustomerIndex:
    """Inverted index (component, region) -> customer ids, for one partition's customers.

    It keeps no copy of anyone's services (memory: the customer records hold them once);
    whoever replaces or removes a customer passes the services it had.
    """

    __slots__ = ("_by_component", "_ids")

    def __init__(self) -> None:
        self._by_component: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, customer_id: str) -> bool:
        return customer_id in self._ids

    def ids(self) -> list[str]:
        return list(self._ids)

    def put(self, customer_id: str, services: Iterable[tuple[str, str]],
            previous: Iterable[tuple[str, str]] = ()) -> None:
        """Index ``customer_id`` under ``services``, replacing the ``previous`` ones."""
        self._unlink(customer_id, previous)
        self._ids.add(customer_id)
        for component, region in services:
            self._by_component[component][region].add(customer_id)

    def add_new(self, groups: dict[tuple[tuple[str, str], ...], list[str]]) -> None:
        """Index customers not in the index yet, grouped by their services: one set update per
        group and service instead of one per customer and service (a million customers are
        indexed at a worker's start). A customer already indexed would keep its old services."""
        for services, ids in groups.items():
            self._ids.update(ids)
            for component, region in services:
                self._by_component[component][region].update(ids)

    def remove(self, customer_id: str, services: Iterable[tuple[str, str]]) -> None:
        self._unlink(customer_id, services)
        self._ids.discard(customer_id)

    def _unlink(self, customer_id: str, services: Iterable[tuple[str, str]]) -> None:
        for component, region in services:
            regions = self._by_component.get(component)
            if regions is None:
                continue
            ids = regions.get(region)
            if ids is not None:
                ids.discard(customer_id)
                if not ids:
                    del regions[region]
            if not regions:
                del self._by_component[component]

    def affected(self, scope: Scope) -> set[str]:
        """Customer ids with at least one service inside ``scope``."""
        out: set[str] = set()
        for component in scope.components:
            regions = self._by_component.get(component)
            if not regions:
                continue
            if not scope.regions:
                for ids in regions.values():
                    out |= ids
            else:
                for region in scope.regions:
                    ids = regions.get(region)
                    if ids:
                        out |= ids
        return out
