"""Every contact's choice, read by every worker: what the preferences page and the ops API show.

A ``TopicView`` (``streams/topic_view.py``) of the preferences topic, which is kept whole
(``retention.ms=-1``, ``streams/topics.py`` ``RETAINED``): its requests, folded in offset order by
``domain.preferences.PreferenceBook`` exactly as the agent folds them into the ledger entries
(``streams/preferences.py``), give each customer's ``receive``/``unsubscribed`` parts on any
worker. Reads are eventually consistent; ``sync`` waits until what the topic holds now has been
read (the ops API reads after it).
"""

from __future__ import annotations

import logging
from typing import Iterable

from core.settings import Settings
from domain.preferences import PreferenceBook
from streams import topics as T
from streams.kafka.broker import KAFKA, BrokerProfile, aiokafka_options, bootstrap
from streams.topic_view import TopicView

log = logging.getLogger(__name__)


class PreferencesView(TopicView):
    label = "preferences view"

    def __init__(self, *, bootstrap_servers: list[str], topic: str, partitions: int,
                 profile: BrokerProfile = KAFKA, client_id: str = "outage-preferences-view",
                 security: dict | None = None, **kwargs) -> None:
        super().__init__(bootstrap_servers=bootstrap_servers, topic=topic, partitions=partitions, profile=profile,
                         client_id=client_id, security=security, **kwargs)
        self.book = PreferenceBook()

    @classmethod
    def of(cls, settings: Settings, *, names: T.TopicNames, partitions: int, profile: BrokerProfile,
           **kwargs) -> "PreferencesView":
        return cls(bootstrap_servers=bootstrap(settings), topic=names.name(T.PREFERENCES), partitions=partitions,
                   profile=profile, security=aiokafka_options(settings), **kwargs)

    def size(self) -> int:
        return len(self.book)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        skipped = self.book.skipped
        self.book.apply(records)
        if self.book.skipped > skipped:
            log.warning("preferences view: skipped %d records that are not requests", self.book.skipped - skipped)
