"""Names declared once: notice kinds, incident event types, statuses, severities."""

from __future__ import annotations

from typing import Final, Literal

# Notice kinds (header X-Outage-Notice)
ACKNOWLEDGED: Final = "acknowledged"
PROGRESS: Final = "progress"
SCHEDULED: Final = "scheduled"
RESOLVED: Final = "resolved"
UNAFFECTED: Final = "unaffected"
TICKET_ACK: Final = "ticket-ack"
NOTICE_KINDS: Final = (ACKNOWLEDGED, PROGRESS, SCHEDULED, RESOLVED, UNAFFECTED, TICKET_ACK)
NoticeKind = Literal["acknowledged", "progress", "scheduled", "resolved", "unaffected", "ticket-ack"]

# Incident event types
DECLARED: Final = "declared"
UPDATED: Final = "updated"
# (RESOLVED doubles as the event type)

Status = Literal["investigating", "identified", "monitoring", "resolved"]
Severity = Literal["critical", "major", "minor"]

# Default cadence of updates by severity, in seconds (CONTRACT: critical 30 min, major 60, minor 120)
SEVERITY_CADENCE_SECONDS: Final = {"critical": 30 * 60, "major": 60 * 60, "minor": 120 * 60}

LOCALES: Final = ("en", "ja")
DEFAULT_LOCALE: Final = "en"
