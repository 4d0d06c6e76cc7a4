"""Prometheus metrics, declared once. Base units, ``_total`` counters, explicit buckets.

No label ever carries a customer, an incident, a ticket or an address. A ``topic`` label is the
topic's contract name without ``OUTAGE_TOPIC_PREFIX`` (``customers``, ``incident-events``:
``TopicNames.base``), the same whatever the prefix, so the alerts and the dashboard
(``deploy/prometheus/``, ``deploy/grafana/``) need no prefix.

``REGISTRY`` is what ``GET /metrics`` serves (``streams/web.py``): the metrics below, and the
standard ``process_*``, ``python_gc_*`` and ``python_info`` of prometheus_client's collectors.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

from core.vocabulary import NOTICE_KINDS
from streams import topics as T

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)    # process_cpu_seconds_total, process_resident_memory_bytes, ...
GCCollector(registry=REGISTRY)         # python_gc_objects_collected_total, python_gc_collections_total, ...
PlatformCollector(registry=REGISTRY)   # python_info{implementation,version,...}


def _version() -> str:
    try:
        return version("outage-pipeline")
    except PackageNotFoundError:   # run from a checkout that was never installed
        return "unknown"


BUILD_INFO = Gauge("outage_build_info", "Always 1; the version label is the running package's version",
                   ["version"], registry=REGISTRY)
BUILD_INFO.labels(_version()).set(1)

SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LEAD_BUCKETS = (-60, -10, -1, 0, 1, 5, 10, 30, 60, 300, 900, 3600)
SCORE_BUCKETS = (1, 2, 3, 4, 5)

EVENTS = Counter("outage_events_total", "Input records processed, by topic and result",
                 ["topic", "result"], registry=REGISTRY)
DEAD_LETTERS = Counter("outage_dead_letters_total", "Records sent to the dead-letter topic, by source topic",
                       ["topic"], registry=REGISTRY)
ROUNDS = Counter("outage_rounds_total", "Rounds of notices decided, by trigger", ["trigger"], registry=REGISTRY)
NOTICES_SENT = Counter("outage_notices_sent_total", "Emails accepted by the SMTP server, by kind",
                       ["kind"], registry=REGISTRY)
NOTICES_SKIPPED = Counter("outage_notices_skipped_total",
                          "Notices not sent because the ledger shows them sent already", registry=REGISTRY)
NOTICE_FAILURES = Counter("outage_notice_failures_total", "Notices that could not be delivered, by reason",
                          ["reason"], registry=REGISTRY)
SMTP_SECONDS = Histogram("outage_smtp_send_seconds", "Time to hand one email to the SMTP server",
                         buckets=SEND_BUCKETS, registry=REGISTRY)
SEND_QUEUE = Gauge("outage_send_queue_depth", "Notices waiting to be sent on this worker", registry=REGISTRY)
PROMISE_MARGIN = Histogram("outage_promise_margin_seconds",
                           "Seconds between sending a notice and the time the previous notice promised "
                           "(negative: the promise was missed)", buckets=LEAD_BUCKETS, registry=REGISTRY)
ETA_PASSED = Counter("outage_eta_passed_notices_total",
                     "Notices saying recovery takes longer than the estimate stated earlier (it went by unresolved)",
                     registry=REGISTRY)
ACTIVE_INCIDENTS = Gauge("outage_active_incidents", "Unresolved incidents held by this worker", registry=REGISTRY)
CUSTOMERS = Gauge("outage_customers", "Customers held by this worker", registry=REGISTRY)
PROMISES_STRETCHED = Counter("outage_promises_stretched_total",
                             "Notices whose promise is later than one update interval, because this worker's "
                             "measured send rate cannot carry its contacts once per interval", registry=REGISTRY)
PROMISES_LATE = Counter("outage_promises_late_total",
                        "Promised updates whose scheduled round was decided after the promised time (the brokers or "
                        "the workers were down when it fell due)", registry=REGISTRY)
ROUNDS_RESUMED = Counter("outage_rounds_resumed_total",
                         "Rounds still owed on a partition that this worker took up after a rebalance or restart",
                         registry=REGISTRY)
SEND_RATE = Gauge("outage_send_rate", "Emails per second this worker sends while it has work (steady measure)",
                  registry=REGISTRY)
DUE_SOON = Gauge("outage_contacts_due_soon", "Contacts of this worker whose next notice is due within the next minute",
                 registry=REGISTRY)
CAPACITY_RATIO = Gauge("outage_capacity_ratio",
                       "How many times per update interval this worker's send rate carries its audience "
                       "(send rate x interval / contacts; below 1 promises are stretched; 0 while unmeasured)",
                       registry=REGISTRY)
# the missed promises: counted where the promise margin is observed (streams/deliveries.py), margin < 0
NOTICES_LATE = Counter("outage_notices_late_total",
                       "Notices sent after the time the contact's previous notice promised (a promise missed)",
                       registry=REGISTRY)
# set at each scrape from the worker consumer's assignment (streams/kafka/lag.py): the records of the
# partitions this worker holds that its agents have not yet handled and committed, summed per topic
CONSUMER_LAG = Gauge("outage_consumer_lag_records",
                     "Records not yet handled (high watermark minus committed offset) on the partitions this "
                     "worker's agents read, by topic", ["topic"], registry=REGISTRY)
# feedback: observed once, by the worker whose web page recorded the answer (the broker took it),
# never by the views that every worker keeps, so the workers' sums count each answer once
FEEDBACK_SCORE = Histogram("outage_feedback_score",
                           "Answers to the resolved notices' question (1 = very hard to stay informed, 5 = very "
                           "easy), by the incident's severity; a contact's later answer is counted again",
                           ["severity"], buckets=SCORE_BUCKETS, registry=REGISTRY)
FEEDBACK_ANSWERS = Counter("outage_feedback_answers_total",
                           "Feedback answers posted, by result: recorded, refused (a forged or altered link), "
                           "invalid (a bad score or comment, a body too large), unavailable (the broker did not "
                           "take it)", ["result"], registry=REGISTRY)
# ticket surges: counted by the worker that holds the component's mentions partition, once per signal
POSSIBLE_INCIDENTS = Counter("outage_possible_incidents_total",
                             "Possible incidents signalled on outage.signals: a surge of tickets about one component "
                             "that no active incident covers", registry=REGISTRY)

FAILURE_REASONS = ("permanent", "temporary", "error")   # outage_notice_failures_total{reason}

# every label value an alert or the dashboard reads is exported (as 0) from the start: a series that
# appears at its first increment shows no increase() in Prometheus, so that first one would be missed
for _reason in FAILURE_REASONS:
    NOTICE_FAILURES.labels(_reason)
for _kind in NOTICE_KINDS:
    NOTICES_SENT.labels(_kind)
for _topic in T.ALL:
    if _topic != T.DEAD_LETTERS:
        DEAD_LETTERS.labels(_topic)
