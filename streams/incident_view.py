"""Every incident of the pipeline, for the HTTP reads of any worker.

A worker's faust ``incidents`` table holds only the partitions that worker owns, so with several
workers each would answer for part of the incidents. This view reads the table's changelog topic
(``<app id>-incidents-changelog``) whole (``streams/topic_view.py``: a plain consumer with no
group, every partition, from the beginning, then following), keeping incident_id -> latest state
(a tombstone deletes): a ``ChangelogView``, whose docstring says what a changelog record holds
(here the key is the incident id as a JSON string, ``"inc-7"``, and the value an ``IncidentState``
dumped in JSON mode). Reads are eventually consistent: a change shows up here
when the owning worker's changelog write arrives, typically within a fetch wait.
"""

from __future__ import annotations

from domain.incident import IncidentState
from streams import topics as T
from streams.topic_view import ChangelogView, decode_key, decode_model

__all__ = ["IncidentView", "decode_key", "decode_state"]


def decode_state(raw: bytes) -> IncidentState | None:
    """A changelog value as the incident's state; None for anything that is not one."""
    return decode_model(IncidentState, raw)


class IncidentView(ChangelogView):
    """incident_id -> latest ``IncidentState``, over every partition; follows the changelog."""

    label = "incident view"
    default_client_id = "outage-incident-view"
    source = T.INCIDENTS_TABLE
    state_type = IncidentState
    state_what = "an incident state"
