"""The suppressed addresses, read whole by every worker: the book ``streams/suppressions.py`` checks.

A ``TopicView`` (``streams/topic_view.py``: a plain consumer with no group, every partition, from
the beginning, then following) of the compacted ``outage.suppressions`` topic, folded by
``domain.suppression.SuppressionBook``: a record suppresses its address, a tombstone lifts it, a
record that is not a suppression (or whose key is not its address) is skipped with a warning.
Reads are eventually consistent; ``sync`` waits until what the topic holds now has been read.
"""

from __future__ import annotations

import logging
from typing import Iterable

from core.settings import Settings
from domain.suppression import SuppressionBook
from streams import topics as T
from streams.kafka.broker import KAFKA, BrokerProfile, aiokafka_options, bootstrap
from streams.topic_view import TopicView

log = logging.getLogger(__name__)


class SuppressionView(TopicView):
    """Every suppression on ``outage.suppressions``, followed."""

    label = "suppressions view"

    def __init__(self, *, bootstrap_servers: list[str], topic: str, partitions: int,
                 profile: BrokerProfile = KAFKA, client_id: str = "outage-suppressions-view",
                 security: dict | None = None, **kwargs) -> None:
        super().__init__(bootstrap_servers=bootstrap_servers, topic=topic, partitions=partitions, profile=profile,
                         client_id=client_id, security=security, **kwargs)
        self.book = SuppressionBook()

    @classmethod
    def of(cls, settings: Settings, *, names: T.TopicNames, partitions: int, profile: BrokerProfile,
           **kwargs) -> "SuppressionView":
        return cls(bootstrap_servers=bootstrap(settings), topic=names.name(T.SUPPRESSIONS), partitions=partitions,
                   profile=profile, security=aiokafka_options(settings), **kwargs)

    def size(self) -> int:
        return len(self.book)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        skipped = self.book.skipped
        self.book.apply(records)
        if self.book.skipped > skipped:
            log.warning("suppressions view: skipped %d records that are not suppressions",
                        self.book.skipped - skipped)
