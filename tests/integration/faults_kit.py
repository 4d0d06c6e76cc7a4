"""Shared kit of the fault tests: an SMTP server with faults to order (``FaultySmtp``, a real
aiosmtpd ``Controller`` on its own thread and loop, recording what it accepted), the ``faulty``
fixture, and small helpers to declare incidents and wait for workers; and the waits of the
whole integration suite on the pipeline's state (``settled``: nothing left to do; ``passed``: a
promised time gone by; ``ledger_sent``: what the ledger's changelog holds), so that no test waits a
fixed number of seconds for something to have happened.

Used by test_faults.py, test_failover.py and test_cadence.py, and for its waits by the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest
from aiosmtpd.controller import Controller

from devtools.embedded import free_port
from streams import topics as T
from tests.conftest import API_TOKEN, http

CONCURRENCY = 8  # OUTAGE_SMTP_CONCURRENCY of every worker here (the default, made explicit)


# --------------------------------------------------------------------------- helpers


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class Mail:
    rcpt: str
    message_id: str
    kind: str
    incident: str
    seq: int
    next_update: datetime | None
    in_reply_to: str | None
    received: datetime
    server: str


class FaultySmtp:
    """An SMTP server with faults to order, recording what it accepted (thread-safe).

    ``delay``: seconds every DATA takes; ``rate``: messages a second it accepts in all (each
    DATA answered no sooner than 1/rate after the one before, like a throttling relay); ``slow``: {domain: seconds} for recipients of a domain;
    ``refuse``: addresses answered 550 at RCPT; ``defer``: {address: n} answers 451 to the first
    n DATA attempts for that address. ``serve(port, name)`` adds a listener sharing the record.
    """

    def __init__(self, *, delay: float = 0.0, slow: dict[str, float] | None = None,
                 refuse: tuple[str, ...] = (), defer: dict[str, int] | None = None,
                 rate: float | None = None) -> None:
        self.delay = delay
        self.rate = rate                 # messages a second accepted in all (a throttling relay)
        self._next_slot = 0.0            # (monotonic) when the next message may be accepted
        self.slow = dict(slow or {})
        self.refuse = {a.lower() for a in refuse}
        self.defer = {a.lower(): n for a, n in (defer or {}).items()}
        self.mails: list[Mail] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.data_attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._controllers: list[Controller] = []

    # -- servers ------------------------------------------------------------------------
    def serve(self, port: int | None = None, name: str = "smtp") -> int:
        port = port or free_port()
        controller = Controller(_Listener(self, name), hostname="127.0.0.1", port=port, ready_timeout=10)
        controller.start()
        self._controllers.append(controller)
        return port

    def stop(self) -> None:
        for controller in self._controllers:
            try:
                controller.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass
        self._controllers = []

    # -- reading ------------------------------------------------------------------------
    def received(self, incident: str | None = None) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if incident is None or m.incident == incident]

    def by_recipient(self, incident: str | None = None) -> dict[str, list[Mail]]:
        out: dict[str, list[Mail]] = {}
        for m in self.received(incident):
            out.setdefault(m.rcpt, []).append(m)
        return out

    def duplicates(self, incident: str | None = None) -> int:
        """Messages received again under a Message-ID already received."""
        ids = [m.message_id for m in self.received(incident)]
        return len(ids) - len(set(ids))

    async def wait(self, predicate, timeout: float, what: str, poll: float = 0.1, quiet: float | None = None):
        """Wait until ``predicate(self)``; give up after ``timeout`` s, or after ``quiet`` s with
        nothing new arriving (when given)."""
        deadline = time.monotonic() + timeout
        seen, changed = -1, time.monotonic()
        while True:
            if predicate(self):
                return
            count = len(self.received())
            if count != seen:
                seen, changed = count, time.monotonic()
            now = time.monotonic()
            if now > deadline or (quiet is not None and now - changed > quiet):
                raise AssertionError(f"gave up after {timeout if now > deadline else quiet:.0f}s waiting for "
                                     f"{what}; {count} messages received")
            await asyncio.sleep(poll)


class _Listener:
    def __init__(self, server: FaultySmtp, name: str) -> None:
        self.server, self.name = server, name

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        s = self.server
        with s._lock:
            s.rcpt_attempts[address.lower()] += 1
        if address.lower() in s.refuse:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        s = self.server
        rcpt = envelope.rcpt_tos[0].lower()
        with s._lock:
            s.data_attempts[rcpt] += 1
            attempt = s.data_attempts[rcpt]
        if attempt <= s.defer.get(rcpt, 0):
            return "451 4.3.0 Temporary local problem, try again later"
        delay = s.slow.get(rcpt.rpartition("@")[2], s.delay)
        if s.rate:   # a relay that accepts one message every 1/rate s, across all its listeners
            with s._lock:
                slot = max(time.monotonic(), s._next_slot)
                s._next_slot = slot + 1.0 / s.rate
            delay = max(delay, slot - time.monotonic())
        if delay:
            await asyncio.sleep(delay)
        h = BytesHeaderParser(policy=compat32).parsebytes(envelope.content)
        fields = dict(rcpt=rcpt, message_id=str(h["Message-ID"]).strip(), kind=str(h["X-Outage-Notice"]),
                      incident=str(h["X-Outage-Incident"]), seq=int(h["X-Outage-Seq"]),
                      next_update=parse_time(h["X-Outage-Next-Update"]),
                      in_reply_to=str(h["In-Reply-To"]).strip() if h["In-Reply-To"] else None, server=self.name)
        with s._lock:   # stamped as it is recorded: whoever reads the record at a moment has every
            # message stamped before that moment (promises_kept judges up to the moment it reads)
            s.mails.append(Mail(**fields, received=utc_now()))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def faulty():
    """Factory of ``FaultySmtp`` servers; all stopped at the end of the test."""
    made: list[FaultySmtp] = []

    def make(**kwargs) -> FaultySmtp:
        server = FaultySmtp(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def emails_of(customers: list[dict]) -> set[str]:
    return {c["email"].lower() for cust in customers for c in cust["contacts"]}


def declare(worker, **fields) -> str:
    return declare_event(worker, **fields)["incident_id"]


async def ready(*procs, timeout: float = 90.0) -> None:
    """Wait (off the loop) until every worker process answers /readyz with 200."""
    await asyncio.gather(*(asyncio.to_thread(p.wait_ready, timeout) for p in procs))


def smtp_env(port: int) -> dict:
    return {"OUTAGE_SMTP_PORT": str(port), "OUTAGE_SMTP_CONCURRENCY": str(CONCURRENCY)}


def every_one_once(server: FaultySmtp, incident: str, expected: set[str]) -> None:
    got = server.by_recipient(incident)
    missing = expected - set(got)
    assert not missing, f"{len(missing)} of {len(expected)} contacts got nothing, e.g. {sorted(missing)[:5]}"
    assert set(got) <= expected, f"unexpected recipients: {sorted(set(got) - expected)[:5]}"
    twice = {r: [m.message_id for m in ms] for r, ms in got.items() if len(ms) > 1}
    assert not twice, f"{len(twice)} contacts got the notice more than once, e.g. {list(twice.items())[:3]}"


# --------------------------------------------------------------------------- for failover and cadence

CLOCK_SLACK = 1.0  # seconds: the worker's clock and the SMTP server's (the same machine) read apart


def declare_event(worker, **fields) -> dict:
    """Declare through the worker's API; the 201 body (the ``declared`` event, with its ``at``)."""
    body = {"severity": "major", "status": "investigating", "title": {"en": "API errors", "ja": "APIのエラー"},
            "message": {"en": "We are investigating.", "ja": "調査しております。"},
            "components": ["api"], "regions": ["ap-northeast-1"], "update_interval_seconds": 3600, **fields}
    status, out = http("POST", worker.url + "/api/incidents", body, token=API_TOKEN)
    assert status == 201, out
    return out


def metric(worker, name: str, **labels: str) -> float | None:
    """One sample of the worker's ``/metrics`` (None when absent or the worker does not answer)."""
    try:
        status, text = http("GET", worker.url + "/metrics")
    except OSError:
        return None
    if status != 200 or not isinstance(text, str):
        return None
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{want}}}" if want else name):
            return float(value)
    return None


def round_owner(procs, incident: str) -> int | None:
    """Index of the worker that decided the incident's first round (it holds the incident's
    partition and its schedule): by its ``outage_rounds_total{trigger="declared"}``, else by its
    log; None when neither tells."""
    for i, p in enumerate(procs):
        if (metric(p, "outage_rounds_total", trigger="declared") or 0) >= 1:
            return i
    for i, p in enumerate(procs):
        if f"round {incident} #1 " in p.log_path.read_text(errors="replace"):
            return i
    return None


async def until(predicate, timeout: float, poll: float = 0.1) -> bool:
    """Poll ``predicate()`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)


async def settle(server: FaultySmtp, quiet: float = 3.0, limit: float = 30.0) -> None:
    """Wait until nothing new has arrived for ``quiet`` seconds (at most ``limit``): a notice
    still owed, or one sent twice, shows up by then."""
    deadline = time.monotonic() + limit
    seen, changed = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(server.received())
        if count != seen:
            seen, changed = count, time.monotonic()
        elif time.monotonic() - changed >= quiet:
            return
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- waits on the pipeline's state

# The topics the workers' consumer group reads (the agents of streams/app.py). The customers topic
# is read without a group (streams/customers.py), and the tables' changelogs are faust's own
# (recovery reads them, nobody commits offsets on them): both are watched for writes only.
GROUP_INPUTS = (T.INCIDENT_EVENTS, T.TICKS, T.ROUNDS, T.TICKET_EVENTS, T.TICKET_REQUESTS, T.PREFERENCES,
                T.MENTIONS)


async def settled(bootstrap: str, prefix: str, procs, *, timeout: float = 90.0, steady: float = 1.0,
                  poll: float = 0.25, since: dict | None = None) -> dict[tuple[str, int], int]:
    """Wait until the pipeline of ``prefix`` has nothing left to do, and return the end offsets of
    its topics then ({(topic, partition): end}).

    Quiescent: every live worker of ``procs`` (objects with ``url``, and ``alive()`` when they have
    it) shows ``outage_send_queue_depth`` 0 on its /metrics (nothing queued, waiting for a retry or
    under way: a send is finished once it is recorded); the consumer group (the app id) has
    committed every record of its input topics (faust commits only what its agents handled, and
    flushes what they produced first); and no topic of the pipeline, outputs and changelogs
    included, has grown — all of it on end for ``steady`` seconds. What the pipeline still owes,
    or would send twice, is sent by then; a promised time still ahead is not (``passed``).

    ``since``: the end offsets an earlier call returned; when no topic has grown since then and
    nothing is queued or uncommitted now, the pipeline is still settled (nothing was written,
    so nothing was handled, sent or dead-lettered meanwhile): no new ``steady`` period is waited.

    Raises AssertionError after ``timeout`` seconds (a failure: the deadline never decides a pass),
    saying what was still under way. The end offsets are the true ones on both brokers (a fetch's
    high watermark: the embedded broker's ListOffsets answer may be short, streams/kafka/transport.py).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.kafka.transport import end_offsets, wait_on_metadata

    names = T.TopicNames(prefix)
    inputs = {names.name(t) for t in GROUP_INPUTS}
    watched = [names.name(t) for t in T.ALL] + [names.changelog(t) for t in T.TABLES]
    servers = bootstrap.split(",")
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await consumer.start()
    try:
        await admin.start()
        for topic in watched:
            await asyncio.wait_for(wait_on_metadata(consumer, topic), 30)
        tps = [TopicPartition(t, p) for t in watched for p in sorted(consumer.partitions_for_topic(t) or ())]
        group_tps = [tp for tp in tps if tp.topic in inputs]
        deadline = time.monotonic() + timeout
        last: dict | None = since
        quiet_from: float | None = None if since is None else float("-inf")   # quiet since then
        under_way = "nothing read yet"
        while True:
            problems = []
            try:
                ends = {(tp.topic, tp.partition): end for tp, end in (await end_offsets(consumer, tps)).items()}
                committed = await admin.list_consumer_group_offsets(names.app_id, partitions=group_tps)
            except Exception as exc:  # noqa: BLE001 - a broker that does not answer now: not settled
                ends, problems = None, [f"the broker: {type(exc).__name__}: {exc}"]
            if ends is not None:
                for tp in group_tps:
                    done = committed.get(tp)
                    done = done.offset if done is not None and done.offset >= 0 else 0
                    if ends[(tp.topic, tp.partition)] > done:
                        problems.append(f"{tp.topic}:{tp.partition} committed {done} of {ends[(tp.topic, tp.partition)]}")
                live = [w for w in procs if getattr(w, "alive", lambda: True)()]
                depths = await asyncio.gather(*(asyncio.to_thread(metric, w, "outage_send_queue_depth") for w in live))
                problems += [f"{w.url} send queue {d}" for w, d in zip(live, depths) if d != 0]
                if ends != last:
                    problems.append("the topics grew")
                    last = ends
            now = time.monotonic()
            if problems:
                quiet_from, under_way = None, "; ".join(problems[:8])
            elif quiet_from is None:
                quiet_from = now
            if quiet_from is not None and now - quiet_from >= steady:
                return last
            if now > deadline:
                raise AssertionError(f"the pipeline {prefix} did not settle in {timeout:.0f}s: {under_way}")
            await asyncio.sleep(poll)
    finally:
        await admin.close()
        await consumer.stop()


async def passed(moment: datetime) -> None:
    """Wait until the wall clock is past ``moment`` (a promised time, the end of a watch)."""
    while (left := (moment - utc_now()).total_seconds()) > 0:
        await asyncio.sleep(min(left, 0.5))


def ledger_sent(read_topic, prefix: str, incident: str) -> set[str]:
    """The Message-IDs of ``incident`` that the ledger's changelog on the broker records as sent
    (``read_topic``: conftest's fixture; each record is a customer's whole ledger entry)."""
    topic = T.TopicNames(prefix).changelog(T.LEDGER_TABLE)[len(prefix):]   # read_topic adds the prefix
    return {message_id for entry in read_topic(topic) if isinstance(entry, dict)
            for message_id in ((entry.get("incidents") or {}).get(incident) or {}).get("sent", ())}


def reached(server: FaultySmtp, incident: str) -> int:
    """How many distinct contacts have received something about the incident."""
    return len({m.rcpt for m in server.received(incident)})


@dataclass
class Audit:
    """What each contact received about one incident, against what it was owed: one
    ``acknowledged`` notice, then (when a scheduled round is owed) a ``scheduled`` notice by the
    time that contact's previous notice promised, itself promising one interval later."""

    contacts: int = 0
    messages: int = 0
    repeats: int = 0                                               # copies of a Message-ID already received
    no_ack: list[str] = field(default_factory=list)                # contacts never acknowledged
    ack_ids: dict[str, int] = field(default_factory=dict)          # contacts with > 1 acknowledged Message-ID
    ack_copies: dict[str, int] = field(default_factory=dict)       # contacts with > 1 acknowledged email
    no_scheduled: list[str] = field(default_factory=list)          # owed a scheduled notice, got none
    late: dict[str, float] = field(default_factory=dict)           # s past the promise (beyond CLOCK_SLACK)
    tightest: float | None = None                                  # s past the promise, the latest one (< 0: early)
    cadence: dict[str, float] = field(default_factory=dict)        # s off "kept promise + interval" (> 2 s)
    scheduled_ids: dict[str, int] = field(default_factory=dict)    # contacts with > 1 scheduled Message-ID
    out_of_order: list[str] = field(default_factory=list)          # a scheduled notice before any other
    first_missed: list[str] = field(default_factory=list)          # no scheduled notice by the FIRST promise
    strangers: list[str] = field(default_factory=list)             # recipients not among the affected
    kinds: Counter = field(default_factory=Counter)                # distinct notices by kind
    rounds: Counter = field(default_factory=Counter)               # distinct notices by "kind#seq"

    def summary(self) -> str:
        worst = max(self.late.values(), default=0.0)
        off = max(self.cadence.values(), key=abs, default=0.0)
        return (f"{self.contacts} contacts, {self.messages} emails ({dict(sorted(self.rounds.items()))} distinct), "
                f"{self.repeats} repeats; no acknowledgement: {len(self.no_ack)}; several acknowledgement "
                f"ids: {len(self.ack_ids)}; several acknowledgement emails: {len(self.ack_copies)}; "
                f"no scheduled: {len(self.no_scheduled)}; late scheduled: {len(self.late)} (worst "
                f"{worst:.1f}s; the latest {self.tightest if self.tightest is not None else float('nan'):+.1f}s past its promise); no scheduled by the first notice's promise: {len(self.first_missed)}; next promise off by > 2s: {len(self.cadence)} (worst {off:+.1f}s); "
                f"several scheduled ids: {len(self.scheduled_ids)}; strangers: {len(self.strangers)}")


def audit(server: FaultySmtp, incident: str, expected: set[str], *, interval: float | None = None,
          scheduled: bool = False) -> Audit:
    """Judge what ``server`` received about ``incident``; ``scheduled``: a scheduled round is owed
    to every contact; ``interval``: the scheduled notice must promise the next update
    ``interval`` seconds after the promise it keeps (±2 s)."""
    a = Audit(contacts=len(expected))
    mails = server.received(incident)
    a.messages = len(mails)
    a.repeats = len(mails) - len({m.message_id for m in mails})
    distinct = {m.message_id: m for m in mails}.values()
    a.kinds = Counter(m.kind for m in distinct)
    a.rounds = Counter(f"{m.kind}#{m.seq}" for m in distinct)
    got = server.by_recipient(incident)
    a.strangers = sorted(set(got) - expected)
    for rcpt in sorted(expected):
        ms = sorted(got.get(rcpt, []), key=lambda m: m.received)
        acks = [m for m in ms if m.kind == "acknowledged"]
        if not acks:
            a.no_ack.append(rcpt)
        if len({m.message_id for m in acks}) > 1:
            a.ack_ids[rcpt] = len({m.message_id for m in acks})
        if len(acks) > 1:
            a.ack_copies[rcpt] = len(acks)
        if not scheduled:
            continue
        sched = [m for m in ms if m.kind == "scheduled"]
        if not sched:
            a.no_scheduled.append(rcpt)
            a.first_missed.append(rcpt)
            continue
        if len({m.message_id for m in sched}) > 1:
            a.scheduled_ids[rcpt] = len({m.message_id for m in sched})
        first = sched[0]
        opening = [m.next_update for m in ms if m.message_id == ms[0].message_id and m.next_update]
        if opening and (first.received - min(opening)).total_seconds() > CLOCK_SLACK:
            a.first_missed.append(rcpt)
        before = [m for m in ms if m.received <= first.received and m.message_id != first.message_id]
        if not before:
            a.out_of_order.append(rcpt)
            continue
        previous = before[-1].message_id  # the last notice the contact had before the scheduled one
        promises = [m.next_update for m in before if m.message_id == previous and m.next_update]
        if not promises:
            a.out_of_order.append(rcpt)
            continue
        # the copies of that notice received before it: the latest one's promise is in force
        promised = in_force([m for m in before if m.message_id == previous], first.received)
        past = (first.received - promised).total_seconds()
        a.tightest = past if a.tightest is None else max(a.tightest, past)
        if past > CLOCK_SLACK:
            a.late[rcpt] = past
        if interval is not None:
            off = (first.next_update - promised).total_seconds() - interval if first.next_update else float("inf")
            if abs(off) > 2.0:
                a.cadence[rcpt] = off
    return a


def latest_promise(server: FaultySmtp, incident: str) -> datetime | None:
    """The latest next-update time any notice of the incident stated: by then (plus slack) every
    contact is owed the notice that keeps its own promise."""
    return max((m.next_update for m in server.received(incident) if m.next_update), default=None)


def not_one_interval_after(server: FaultySmtp, incident: str, kind: str, interval: float,
                           slack: float = 2.0) -> list:
    """Notices of ``kind`` whose promise is not one interval after they arrived (±``slack``): a
    promised time belongs to the contact it was stated to, one interval after that notice."""
    return [m for m in server.received(incident) if m.kind == kind
            and (m.next_update is None
                 or abs((m.next_update - m.received).total_seconds() - interval) > slack)]


@dataclass
class Promises:
    """Every notice of an incident against the one before it to the same contact."""

    notices: int = 0
    kept: int = 0
    missed: list[tuple[str, float]] = field(default_factory=list)    # (contact, s past the promise)
    close: list[tuple[str, float]] = field(default_factory=list)     # a holding update too soon after
    repeats: int = 0

    def summary(self) -> str:
        worst = max((s for _, s in self.missed), default=0.0)
        nearest = min((s for _, s in self.close), default=0.0)
        return (f"{self.notices} notices, {self.kept} promises kept, {len(self.missed)} missed (worst {worst:.1f}s), "
                f"{len(self.close)} holding updates less than 2/3 interval after the previous notice "
                f"(nearest {nearest:.1f}s), {self.repeats} repeats")


def in_force(copies: list, before: datetime | None) -> datetime | None:
    """The next-update time a contact holds from the copies of one notice received before
    ``before`` (None: all): the latest copy's. A copy sent again after a ``kill -9`` (the sends
    in flight, at most) carries the same Message-ID but was composed later and states a later
    time, and the pipeline keeps that one; judging the first copy's would call those few late."""
    held = [m for m in copies if before is None or m.received < before]
    return (held[-1] if held else copies[0]).next_update


def promises_kept(server: FaultySmtp, incident: str, interval: float, until_: datetime | None = None) -> Promises:
    """Judge every pair of consecutive notices to each contact: the later one arrives by the time
    the earlier one stated (``CLOCK_SLACK``), and a holding update (``scheduled``) comes no sooner
    than two thirds of an interval after the notice before it. A promise falling after
    ``until_`` (when watching stopped) is not judged."""
    out = Promises()
    for rcpt, mails in server.by_recipient(incident).items():
        seen: set[str] = set()
        ms = []
        copies: dict[str, list] = {}
        for m in sorted(mails, key=lambda m: m.received):
            copies.setdefault(m.message_id, []).append(m)
            if m.message_id in seen:
                out.repeats += 1
                continue
            seen.add(m.message_id)
            ms.append(m)
        out.notices += len(ms)
        for before, after in zip(ms, ms[1:]):
            promise = in_force(copies[before.message_id], after.received)
            if promise is not None:
                past = (after.received - promise).total_seconds()
                if past > CLOCK_SLACK:
                    out.missed.append((rcpt, past))
                else:
                    out.kept += 1
            gap = (after.received - before.received).total_seconds()
            if after.kind == "scheduled" and gap < interval * 2 / 3 - CLOCK_SLACK:
                out.close.append((rcpt, gap))
        last = in_force(copies[ms[-1].message_id], None) if ms else None
        if (last is not None and until_ is not None and (until_ - last).total_seconds() > CLOCK_SLACK):
            out.missed.append((rcpt, (until_ - last).total_seconds()))   # nothing came by it
    return out


def busiest_second(server: FaultySmtp, incident: str) -> int:
    """The most messages the server received within one calendar second."""
    per: Counter = Counter(m.received.replace(microsecond=0) for m in server.received(incident))
    return max(per.values(), default=0)


def busiest_window(server: FaultySmtp, incident: str, seconds: float) -> int:
    """The most messages the server received within any ``seconds`` (a sliding window)."""
    times = sorted(m.received.timestamp() for m in server.received(incident))
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def spans(server: FaultySmtp, incident: str, since: datetime) -> str:
    """When each round's emails arrived, in seconds after ``since``: "kind#seq a..b s (n)"."""
    out: dict[str, list[float]] = {}
    for m in server.received(incident):
        out.setdefault(f"{m.kind}#{m.seq}", []).append((m.received - since).total_seconds())
    return ", ".join(f"{k} {min(v):.1f}..{max(v):.1f}s ({len(v)})" for k, v in sorted(out.items()))
