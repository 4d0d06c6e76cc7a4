"""Topic names, declared once. Every name is ``OUTAGE_TOPIC_PREFIX`` + the base below."""

from __future__ import annotations

from dataclasses import dataclass

# contract topics
CUSTOMERS = "customers"
INCIDENT_EVENTS = "incident-events"
TICKET_EVENTS = "ticket-events"
NOTICES = "notices"
TICKET_UPDATES = "ticket-updates"
DEAD_LETTERS = "dead-letters"
FEEDBACK = "feedback"                 # answers to the resolved notices' question, keyed by feedback_id
SUPPRESSIONS = "suppressions"         # addresses refused for good (SMTP 5xx), keyed by the address; a tombstone lifts
SIGNALS = "signals"                   # possible incidents (ticket surges), keyed by component
MAINTENANCE_EVENTS = "maintenance-events"   # planned maintenance, keyed by maintenance_id
# internal topics (co-partitioned with customers)
ROUNDS = "rounds"
TICKS = "ticks"
TICKET_REQUESTS = "ticket-requests"   # ticket events re-keyed by customer_id
PREFERENCES = "preferences"           # contacts' choices and unsubscribes, keyed by customer_id; kept whole
MENTIONS = "component-mentions"       # opened tickets' components, keyed by component (streams/surge.py)
MAINTENANCE_ROUNDS = "maintenance-rounds"   # a maintenance's state, sent to every partition when it changes

# topics that must share the customers topic's partition count
CO_PARTITIONED = (CUSTOMERS, INCIDENT_EVENTS, TICKET_EVENTS, NOTICES, TICKET_UPDATES, ROUNDS, TICKS,
                  TICKET_REQUESTS, PREFERENCES, MENTIONS, MAINTENANCE_EVENTS, MAINTENANCE_ROUNDS)
# the feedback topic has the same count but is read whole (streams/feedback_view.py): no need to share it
# so is the suppressions topic (streams/suppressions.py)
ALL = CO_PARTITIONED + (FEEDBACK, SIGNALS, SUPPRESSIONS, DEAD_LETTERS)
COMPACTED = (CUSTOMERS, FEEDBACK, SUPPRESSIONS)
# kept whole (retention.ms=-1): the view of the preferences (streams/preferences_view.py) reads it from the start
RETAINED = (PREFERENCES,)

# what a worker's agents read and write: attribute -> the topics it reads (the incident agent
# reads two); ``streams.faust_app.Topics`` and the in-memory test broker build their topics from it
WORKER_TOPICS = {
    "customers": (CUSTOMERS,),
    "incident": (INCIDENT_EVENTS, TICKS),
    "events": (INCIDENT_EVENTS,),
    "ticks": (TICKS,),
    "rounds": (ROUNDS,),
    "tickets": (TICKET_EVENTS,),
    "ticket_requests": (TICKET_REQUESTS,),
    "preferences": (PREFERENCES,),
    "ticket_updates": (TICKET_UPDATES,),
    "dead_letters": (DEAD_LETTERS,),
    "feedback": (FEEDBACK,),             # written by the web's feedback page (streams/feedback.py)
    "mentions": (MENTIONS,),
    "signals": (SIGNALS,),
    "maintenance": (MAINTENANCE_EVENTS,),
    "maintenance_rounds": (MAINTENANCE_ROUNDS,),
    "suppressions": (SUPPRESSIONS,),     # written by the sender on a 5xx, and by the ops API (lifting)
}

# faust tables (changelog topics are "<app id>-<table>-changelog")
CUSTOMERS_TABLE = "customers"
INCIDENTS_TABLE = "incidents"
LEDGER_TABLE = "ledger"
TICKETS_TABLE = "tickets"
LATEST_TABLE = "latest-rounds"   # per partition: incident -> the newest round seen on that partition
SURGES_TABLE = "surges"          # per mentions partition: component -> the tickets counted (domain/surge.py)
MAINTENANCE_TABLE = "maintenance"              # maintenance_id -> its state, on its partition
MAINTENANCE_PLANS_TABLE = "maintenance-plans"  # per partition: maintenance_id -> the newest state seen there
TABLES = (CUSTOMERS_TABLE, INCIDENTS_TABLE, LEDGER_TABLE, TICKETS_TABLE, LATEST_TABLE, SURGES_TABLE, MAINTENANCE_TABLE,
          MAINTENANCE_PLANS_TABLE)


@dataclass(frozen=True)
class TopicNames:
    prefix: str

    def name(self, base: str) -> str:
        return self.prefix + base

    def base(self, name: str) -> str:
        """A topic's name without the prefix: the ``topic`` label of every metric (streams/metrics.py)."""
        return name[len(self.prefix):] if self.prefix and name.startswith(self.prefix) else name

    @property
    def app_id(self) -> str:
        """Consumer group id and changelog prefix of the workers."""
        return self.prefix + "worker"

    def changelog(self, table: str) -> str:
        return f"{self.app_id}-{table}-changelog"
