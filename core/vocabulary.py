"""The pipeline's vocabulary, declared once: notice kinds, incident event types, statuses,
severities, locales and the default cadence. The records (``schemas``), the rules (``domain``),
the CLI's choices, the notices and the web pages all take their words from here."""

from __future__ import annotations

from typing import Final, Literal, get_args

# Notice kinds (header X-Outage-Notice): an incident's, then a planned maintenance's
IncidentNoticeKind = Literal["acknowledged", "progress", "scheduled", "resolved", "unaffected", "ticket-ack"]
NOTICE_KINDS: Final = get_args(IncidentNoticeKind)
ACKNOWLEDGED, PROGRESS, SCHEDULED, RESOLVED, UNAFFECTED, TICKET_ACK = NOTICE_KINDS
MaintenanceNoticeKind = Literal["maintenance-scheduled", "maintenance-changed", "maintenance-reminder",
                                "maintenance-started", "maintenance-completed", "maintenance-cancelled"]
MAINTENANCE_KINDS: Final = get_args(MaintenanceNoticeKind)
(M_SCHEDULED, M_CHANGED, M_REMINDER, M_STARTED, M_COMPLETED, M_CANCELLED) = MAINTENANCE_KINDS
NoticeKind = Literal[IncidentNoticeKind, MaintenanceNoticeKind]

# Maintenance event types (topic maintenance-events)
MaintenanceEventType = Literal["scheduled", "updated", "cancelled", "completed"]
MAINTENANCE_EVENT_TYPES: Final = get_args(MaintenanceEventType)
# how long before its start a maintenance's reminder is sent, unless the event says otherwise
DEFAULT_REMINDER_SECONDS: Final = 3600

# Incident event types (RESOLVED doubles as one)
EventType = Literal["declared", "updated", "resolved"]
EVENT_TYPES: Final = get_args(EventType)
DECLARED, UPDATED, _ = EVENT_TYPES

# What starts a round of notices: an incident event, or a promise coming due (``scheduled``)
Trigger = Literal["declared", "updated", "scheduled", "resolved"]

# Ticket event types, and what an update to a ticket says (topic ticket-updates)
TicketEventType = Literal["opened", "closed"]
TicketAction = Literal["linked", "incident-updated", "incident-resolved"]
LINKED, INCIDENT_UPDATED, INCIDENT_RESOLVED = get_args(TicketAction)

# Where an incident stands: the first is a declared incident's status unless it says otherwise,
# the last one only a resolution sets
Status = Literal["investigating", "identified", "monitoring", "resolved"]
STATUSES: Final = get_args(Status)
INVESTIGATING: Final = STATUSES[0]
OPEN_STATUSES: Final = STATUSES[:-1]

# Severities, the most severe first
Severity = Literal["critical", "major", "minor"]
SEVERITIES: Final = get_args(Severity)

# Default cadence of updates by severity, in seconds (docs/contract.md: critical 30 min, major 60, minor 120)
SEVERITY_CADENCE_SECONDS: Final = {"critical": 30 * 60, "major": 60 * 60, "minor": 120 * 60}

# What a contact chose to receive (the preferences page, the ops API; domain/preferences.py):
# every notice, only the start and the end of an incident, or nothing
Receive = Literal["all", "start-and-end", "none"]
RECEIVE_CHOICES: Final = get_args(Receive)
RECEIVE_ALL, RECEIVE_START_AND_END, RECEIVE_NONE = RECEIVE_CHOICES
# the kinds a start-and-end contact gets: the start, the end, and maintenance notices (any kind
# named maintenance-*); a ticket-ack answers the contact's own ticket, so it is kept too
START_AND_END_KINDS: Final = ("acknowledged", "resolved", "unaffected", "ticket-ack")
MAINTENANCE_KIND_PREFIX: Final = "maintenance-"

Locale = Literal["en", "ja"]
LOCALES: Final = get_args(Locale)
DEFAULT_LOCALE: Final = "en"
