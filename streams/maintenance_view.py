"""Every planned maintenance of the pipeline, for the HTTP reads and 404/409 of any worker and the
status page: the ``maintenance`` table's changelog read whole (``streams/topic_view.py``), keeping
maintenance_id -> latest ``MaintenanceState`` (as ``streams/incident_view.py`` does for incidents;
the same encoding: a JSON string key, the state as JSON). Eventually consistent; ``sync`` waits
until what the changelog holds now has been read.
"""

from __future__ import annotations

import json
import logging
from typing import Iterable

from pydantic import ValidationError

from core.settings import Settings
from domain.maintenance import MaintenanceState
from streams import topics as T
from streams.incident_view import decode_key
from streams.kafka.broker import KAFKA, BrokerProfile, aiokafka_options, bootstrap
from streams.topic_view import TopicView

log = logging.getLogger(__name__)


class MaintenanceView(TopicView):
    """maintenance_id -> latest ``MaintenanceState``, over every partition; follows the changelog."""

    label = "maintenance view"

    def __init__(self, *, bootstrap_servers: list[str], topic: str, partitions: int,
                 profile: BrokerProfile = KAFKA, client_id: str = "outage-maintenance-view",
                 security: dict | None = None, **kwargs) -> None:
        super().__init__(bootstrap_servers=bootstrap_servers, topic=topic, partitions=partitions, profile=profile,
                         client_id=client_id, security=security, **kwargs)
        self._states: dict[str, MaintenanceState] = {}

    @classmethod
    def of(cls, settings: Settings, *, names: T.TopicNames, partitions: int, profile: BrokerProfile,
           **kwargs) -> "MaintenanceView":
        return cls(bootstrap_servers=bootstrap(settings), topic=names.changelog(T.MAINTENANCE_TABLE),
                   partitions=partitions, profile=profile, security=aiokafka_options(settings), **kwargs)

    def get(self, maintenance_id: str) -> MaintenanceState | None:
        return self._states.get(maintenance_id)

    def states(self) -> list[MaintenanceState]:
        return list(self._states.values())

    def size(self) -> int:
        return len(self._states)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        for raw_key, raw_value in records:
            key = decode_key(raw_key)
            if key is None:
                continue
            if raw_value is None:
                self._states.pop(key, None)
                continue
            try:
                data = json.loads(raw_value)
                self._states[key] = MaintenanceState.model_validate(data)
            except (ValueError, ValidationError, RecursionError):
                log.warning("maintenance view: a changelog value that is not a maintenance state was skipped")
