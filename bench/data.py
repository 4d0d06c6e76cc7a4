"""Customers with an exactly known affected set, and the incident events of the bench.

``devtools.sample.generate_customers`` gives realistic customers, but it de-duplicates company
names with a loop that grows with the count, so large sets are built from a pool of its
customers: customer ``i`` copies pool entry ``i % pool`` under a new id, with ONE contact (a
unique address under the same reserved domain) and with the incident's scope
(``api`` in ``ap-northeast-1``) added to exactly the chosen customers and removed from all
others. ``probes`` further customers (never affected by the main scope) are alone in a
private region each, so a probe incident on that region reaches exactly one contact.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone
from typing import Any, Iterator

from devtools import records
from devtools.sample import generate_customers

COMPONENT, REGION = "api", "ap-northeast-1"
POOL = 5000


def probe_region(j: int) -> str:
    return f"bench-probe-{j}"


class CustomerSet:
    """``count`` customers of which exactly ``affected`` have the main scope; deterministic."""

    def __init__(self, count: int, affected: int, *, seed: int = 20261125, probes: int = 0) -> None:
        if not 0 <= affected <= count or probes > count - affected:
            raise ValueError("need 0 <= affected <= count and probes <= count - affected")
        self.count, self.affected, self.seed, self.probes = count, affected, seed, probes
        self.width = max(6, len(str(count)))
        rng = random.Random(seed ^ 0x5EED)
        chosen = rng.sample(range(count), affected + probes)
        self.affected_ids = set(chosen[:affected])
        self.probe_index = {i: j for j, i in enumerate(chosen[affected:])}
        self._pool = generate_customers(min(count, POOL), seed)

    def customer_id(self, i: int) -> str:
        return f"b-{i:0{self.width}d}"

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        pool, n = self._pool, len(self._pool)
        for i in range(self.count):
            base = pool[i % n]
            contact = base["contacts"][0]
            local, _, domain = contact["email"].partition("@")
            services = [s for s in base["services"] if not (s["component"] == COMPONENT and s["region"] == REGION)]
            if i in self.affected_ids:
                services.append({"component": COMPONENT, "region": REGION})
            elif i in self.probe_index:
                services = [{"component": COMPONENT, "region": probe_region(self.probe_index[i])}]
            if not services:
                services = [{"component": "dashboard", "region": "eu-west-1"}]
            yield records.customer(self.customer_id(i), name=base["name"] if i < n else f"{base['name']} #{i // n}",
                                   locale=base["locale"], timezone=base["timezone"], tier=base["tier"],
                                   contacts=[records.contact(f"{local}.{i}@{domain}", contact["name"])],
                                   services=services)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def declared(incident_id: str, *, at: float, interval: int, components=(COMPONENT,), regions=(REGION,),
             severity: str = "major") -> dict[str, Any]:
    """A ``declared`` record of ``outage.incident-events`` (CONTRACT format)."""
    return records.declared(
        incident_id, list(components), event_id=f"e-{uuid.uuid4().hex[:12]}", at=rfc3339(at), severity=severity,
        title={"en": "API errors", "ja": "APIのエラー"},
        message={"en": "We are investigating elevated error rates.", "ja": "エラー率の上昇を調査しています。"},
        regions=list(regions), eta=None, next_update_at=None, update_interval_seconds=interval)
