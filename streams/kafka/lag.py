"""The consumer lag of a worker's agents, per topic, read from faust's consumer at each scrape.

For each partition of the worker consumer's active assignment whose topic an agent reads: the
partition's high watermark (the offset the next record written will get, as the last fetch
response reported it) minus the offset faust last committed for it (the next record to handle;
faust commits what its agents have handled every ``broker_commit_interval``), or, with nothing
committed there yet, minus the consumer's position (the next record to fetch). Summed per topic
and labelled with the topic's name without ``OUTAGE_TOPIC_PREFIX`` (``TopicNames.base``), as every
``topic`` label is (streams/metrics.py). No I/O: a partition not fetched yet counts 0, and so does
everything while the consumer is not running.

The customers topic is not here: the customers reader (streams/customers.py) is its own consumer,
and the readiness (``GET /readyz``) waits until it has caught up. Table changelogs are not here
either: they are not the agents' input.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

log = logging.getLogger(__name__)


def partition_lag(highwater: int | None, committed: int | None, position: int | None) -> int:
    """Records of one partition not yet handled: ``highwater - committed`` (else ``- position``), >= 0."""
    done = committed if committed is not None else position
    if highwater is None or done is None:
        return 0
    return max(0, highwater - done)


def _states(app) -> Iterable[tuple[str, int | None, int | None, int | None]]:
    """(topic, high watermark, committed, position) of each partition the worker's agents hold now."""
    consumer = app._consumer             # not app.consumer: that property creates one
    if consumer is None:
        return
    aio = consumer._thread._consumer     # the aiokafka consumer faust's consumer thread runs
    if aio is None:
        return
    subscription = aio._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:                # between two rebalances
        return
    committed = consumer._committed_offset
    for tp in app.assignor.assigned_actives():
        state = assignment.state_value(tp)
        if state is None:
            continue
        position = state.position if state.has_valid_position else None
        yield tp.topic, state.highwater, committed.get(tp), position


def lag_by_topic(app, base: Callable[[str], str], read: set[str]) -> dict[str, int]:
    """Per topic an agent reads (``read``: names without the prefix), the records not yet handled."""
    found = dict.fromkeys(read, 0)
    try:
        for topic, highwater, committed, position in _states(app):
            name = base(topic)
            if name in found:
                found[name] += partition_lag(highwater, committed, position)
    except Exception as exc:  # noqa: BLE001 - a scrape never fails; faust may be mid-rebalance
        log.debug("consumer lag not read: %s: %s", type(exc).__name__, exc)
    return found


def expose(gauge, app, base: Callable[[str], str], read: Iterable[str]) -> None:
    """Set ``gauge{topic}`` for each topic of ``read`` to be computed at each scrape."""
    read = set(read)
    for name in sorted(read):
        gauge.labels(name).set_function(lambda name=name: lag_by_topic(app, base, read)[name])
