"""What a ``kill -9`` in the middle of a fan-out did, from the ``notices`` topic (row 7). Pure code,
unit-tested in tests/unit/test_bench_report.py.

A notice is written to the partition of its customer, i.e. by the worker holding that partition.
Which partitions the survivor held: as the group's coordinator assigned them, when the broker
tells (Apache Kafka's DescribeGroups; Tansu does not); else those whose customers add up to its ``outage_customers``
before the kill (every customer here is affected and gets one notice, so the notices count
each partition's customers), when exactly one set of partitions does. Otherwise by the gap: a
worker killed with ``kill -9`` writes nothing after the kill, so its partitions go silent until
the survivor takes them over (but a survivor may also leave one of its own partitions waiting
while it sends another: measured, 28 s; hence the count first).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Iterable, Protocol

from bench.report import rate


class NoticeLike(Protocol):
    customer_id: str
    notice_id: str
    partition: int
    sent_at: float


def split_partitions(notices: Iterable[NoticeLike], killed_at: float, min_gap: float = 1.0
                     ) -> tuple[set[int], set[int], dict[int, float | None]]:
    """(survivor's partitions, dead worker's partitions, seconds from the kill to each
    partition's first notice after it). The partitions are split at the largest jump between
    those delays; the dead worker's are the later ones, if that jump is at least ``min_gap``
    seconds (else nothing tells them apart: all are called the survivor's). A partition with no
    notice after the kill (finished before it) is the survivor's only if nothing else says."""
    after: dict[int, float | None] = {}
    for n in notices:
        after.setdefault(n.partition, None)
        if n.sent_at > killed_at:
            d = n.sent_at - killed_at
            if after[n.partition] is None or d < after[n.partition]:
                after[n.partition] = d
    resumed = sorted((d, p) for p, d in after.items() if d is not None)
    best, cut = 0.0, None
    for i in range(len(resumed) - 1):
        jump = resumed[i + 1][0] - resumed[i][0]
        if jump > best:
            best, cut = jump, i + 1
    if cut is None or best < min_gap:
        return set(after), set(), after
    dead = {p for _, p in resumed[cut:]}
    return set(after) - dead, dead, after


def split_by_customers(held: dict[int, int], survivor_customers: float) -> tuple[set[int], set[int]] | None:
    """(survivor's partitions, dead worker's) when exactly one proper, non-empty set of
    partitions holds ``survivor_customers`` customers (``held``: customers per partition)."""
    parts = sorted(held)
    found = [set(c) for k in range(1, len(parts)) for c in combinations(parts, k)
             if sum(held[p] for p in c) == round(survivor_customers)]
    return (found[0], set(parts) - found[0]) if len(found) == 1 else None


def analyse(notices: list[NoticeLike], *, killed_at: float, declared_at: float, expected: int,
            sink_delivered: int | None = None, survivor_customers: float | None = None,
            dead_partitions: set[int] | None = None) -> dict:
    """The takeover's figures (times in seconds; ``*_at`` epoch seconds, like ``sent_at``).

    ``dead_partitions``: the killed worker's partitions as its consumer group's coordinator
    assigned them just before the kill, when the broker tells (Apache Kafka does); they decide
    the split, before the customers count and the gap."""
    first: dict[str, NoticeLike] = {}
    ids_of: dict[str, set[str]] = {}
    for n in sorted(notices, key=lambda n: n.sent_at):
        first.setdefault(n.customer_id, n)
        ids_of.setdefault(n.customer_id, set()).add(n.notice_id)
    survivor_parts, dead_parts, resume = split_partitions(notices, killed_at)
    held = Counter(n.partition for n in first.values())
    by_count = split_by_customers(held, survivor_customers) if survivor_customers is not None else None
    seen = set(resume)
    told = set(dead_partitions or ()) & seen
    if told and seen - told:
        split = "group" if told == dead_parts else "group (not the gap)"
        survivor_parts, dead_parts = seen - told, told
    elif by_count is not None:
        split = "customers" if by_count == (survivor_parts, dead_parts) else "customers (not the gap)"
        survivor_parts, dead_parts = by_count
    elif dead_parts:
        split = "gap" if survivor_customers is None else "gap (NOT matching the survivor's customers)"
    else:
        split = None

    def share(parts: set[int]) -> dict:
        before = sorted(n.sent_at for n in first.values() if n.partition in parts and n.sent_at <= killed_at)
        after = sorted(n.sent_at for n in first.values() if n.partition in parts and n.sent_at > killed_at)
        return {"partitions": sorted(parts), "customers": len(before) + len(after), "sent_before_kill": len(before),
                "remaining_at_kill": len(after), "rate_before_kill": rate(before),
                "done_s": after[-1] - killed_at if after else None,
                "resumed_s": after[0] - killed_at if after else None}

    own, dead = share(survivor_parts), share(dead_parts)
    resumed_at = killed_at + dead["resumed_s"] if dead["resumed_s"] is not None else None
    after_takeover = sorted(n.sent_at for n in first.values() if resumed_at is not None and n.sent_at >= resumed_at)
    remaining = dead["remaining_at_kill"]
    rate_before = own["rate_before_kill"]
    counts = Counter(n.notice_id for n in notices)
    reached = len(first)
    return {
        "expected": expected, "reached": reached, "missing": max(0, expected - reached),
        "sent_before_kill": own["sent_before_kill"] + dead["sent_before_kill"],
        "survivor": own, "dead": dead, "partition_resumed_s": resume,
        "split": split, "survivor_customers_before_kill": survivor_customers,
        # the measurement and its reference
        "dead_share_done_s": dead["done_s"],
        "dead_share_at_survivor_rate_s": remaining / rate_before if remaining and rate_before else None,
        "survivor_rate_before_kill": rate_before,
        "survivor_rate_after_takeover": rate(after_takeover),
        "dead_share_at_survivor_rate_after_takeover_s":
            remaining / rate(after_takeover) if remaining and rate(after_takeover) else None,
        "round_done_s": max(n.sent_at for n in first.values()) - declared_at if first else None,
        "killed_after_s": killed_at - declared_at,
        # repeats: emails beyond one per contact (the sink counts every email it accepted; one
        # contact per customer here), and Message-IDs recorded more than once on the notices topic
        "repeats_sink": sink_delivered - reached if sink_delivered is not None else None,
        "repeats_notices": sum(c - 1 for c in counts.values() if c > 1),
        "customers_with_several_message_ids": sum(1 for ids in ids_of.values() if len(ids) > 1),
    }
