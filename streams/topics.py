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
SIGNALS = "signals"                   # possible incidents (ticket surges), keyed by component
# internal topics (co-partitioned with customers)
ROUNDS = "rounds"
TICKS = "ticks"
TICKET_REQUESTS = "ticket-requests"   # ticket events re-keyed by customer_id
PREFERENCES = "preferences"           # unsubscribe requests, keyed by customer_id
MENTIONS = "component-mentions"       # opened tickets' components, keyed by component (streams/surge.py)

# topics that must share the customers topic's partition count
CO_PARTITIONED = (CUSTOMERS, INCIDENT_EVENTS, TICKET_EVENTS, NOTICES, TICKET_UPDATES, ROUNDS, TICKS,
                  TICKET_REQUESTS, PREFERENCES, MENTIONS)
# the feedback topic has the same count but is read whole (streams/feedback_view.py): no need to share it
ALL = CO_PARTITIONED + (FEEDBACK, SIGNALS, DEAD_LETTERS)
COMPACTED = (CUSTOMERS, FEEDBACK)

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
}

# faust tables (changelog topics are "<app id>-<table>-changelog")
CUSTOMERS_TABLE = "customers"
INCIDENTS_TABLE = "incidents"
LEDGER_TABLE = "ledger"
TICKETS_TABLE = "tickets"
LATEST_TABLE = "latest-rounds"   # per partition: incident -> the newest round seen on that partition
SURGES_TABLE = "surges"          # per mentions partition: component -> the tickets counted (domain/surge.py)
TABLES = (CUSTOMERS_TABLE, INCIDENTS_TABLE, LEDGER_TABLE, TICKETS_TABLE, LATEST_TABLE, SURGES_TABLE)


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
