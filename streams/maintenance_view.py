"""Every planned maintenance of the pipeline, for the HTTP reads and 404/409 of any worker and the
status page: the ``maintenance`` table's changelog read whole (``streams/topic_view.py``), keeping
maintenance_id -> latest ``MaintenanceState`` (as ``streams/incident_view.py`` does for incidents;
the same encoding: a JSON string key, the state as JSON). Eventually consistent; ``sync`` waits
until what the changelog holds now has been read.
"""

from __future__ import annotations

from domain.maintenance import MaintenanceState
from streams import topics as T
from streams.topic_view import ChangelogView


class MaintenanceView(ChangelogView):
    """maintenance_id -> latest ``MaintenanceState``, over every partition; follows the changelog."""

    label = "maintenance view"
    default_client_id = "outage-maintenance-view"
    source = T.MAINTENANCE_TABLE
    state_type = MaintenanceState
    state_what = "a maintenance state"
