"""Every incident of the pipeline, for the HTTP reads of any worker.

A worker's faust ``incidents`` table holds only the partitions that worker owns, so with several
workers each would answer for part of the incidents. This view reads the table's changelog topic
(``<app id>-incidents-changelog``) whole (``streams/topic_view.py``: a plain consumer with no
group, every partition, from the beginning, then following), keeping incident_id -> latest state
(a tombstone deletes).

What the changelog holds: faust serialises a table whose ``key_type`` is ``str`` and whose
``value_type`` is None with its ``json`` codec on both sides, so a record's key is a JSON string
(``"inc-7"``, quotes included) and its value the JSON object the incident agent stored (an
``IncidentState`` dumped in JSON mode). Reads are eventually consistent: a change shows up here
when the owning worker's changelog write arrives, typically within a fetch wait.
"""

from __future__ import annotations

import json
import logging
from typing import Iterable

from pydantic import ValidationError

from core.settings import Settings
from domain.incident import IncidentState
from streams import topics as T
from streams.kafka.broker import KAFKA, BrokerProfile, aiokafka_options, bootstrap
from streams.topic_view import TopicView

log = logging.getLogger(__name__)


def decode_key(raw: bytes | None) -> str | None:
    """A changelog key (faust's json codec of a str) as the incident id."""
    if raw is None:
        return None
    try:
        key = json.loads(raw)
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def decode_state(raw: bytes) -> IncidentState | None:
    """A changelog value as the incident's state; None for anything that is not one."""
    try:
        data = json.loads(raw)
        return IncidentState.model_validate(data) if isinstance(data, dict) else None
    except (ValueError, ValidationError, RecursionError):
        return None


class IncidentView(TopicView):
    """incident_id -> latest ``IncidentState``, over every partition; follows the changelog."""

    label = "incident view"

    def __init__(self, *, bootstrap_servers: list[str], topic: str, partitions: int,
                 profile: BrokerProfile = KAFKA, client_id: str = "outage-incident-view",
                 security: dict | None = None, **kwargs) -> None:
        super().__init__(bootstrap_servers=bootstrap_servers, topic=topic, partitions=partitions, profile=profile,
                         client_id=client_id, security=security, **kwargs)
        self._states: dict[str, IncidentState] = {}
        self._skipped = 0

    @classmethod
    def of(cls, settings: Settings, *, names: T.TopicNames, partitions: int, profile: BrokerProfile,
           **kwargs) -> "IncidentView":
        """The view of the incidents table's changelog (named by ``names``) on the brokers of ``settings``."""
        return cls(bootstrap_servers=bootstrap(settings), topic=names.changelog(T.INCIDENTS_TABLE),
                   partitions=partitions, profile=profile, security=aiokafka_options(settings), **kwargs)

    # -- reads -------------------------------------------------------------------------------
    def get(self, incident_id: str) -> IncidentState | None:
        return self._states.get(incident_id)

    def states(self) -> list[IncidentState]:
        return list(self._states.values())

    def size(self) -> int:
        return len(self._states)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Apply changelog records (raw key, raw value) in offset order."""
        for raw_key, raw_value in records:
            incident_id = decode_key(raw_key)
            if incident_id is None:
                self._skipped += 1
                continue
            if raw_value is None:
                self._states.pop(incident_id, None)
                continue
            state = decode_state(raw_value)
            if state is None:
                self._skipped += 1
                log.warning("incident view: a changelog value that is not an incident state was skipped "
                            "(%d so far)", self._skipped)
                continue
            self._states[incident_id] = state
