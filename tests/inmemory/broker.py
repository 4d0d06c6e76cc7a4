"""The in-memory test broker: workers built as the faust worker builds them, run in process over
in-memory topics and tables, with a clock the test moves (issue 15; faststream's
``TestKafkaBroker`` and arroyo's ``LocalBroker`` are the models).

- ``Broker``: the topics, each with its partitions and offsets (a record without a partition goes
  to its key's murmur2 partition, as every client's producer and the workers' place it:
  ``partition_for``); the consumer group's committed offsets; the changelog of each table and
  partition, shared by the workers; the SMTP relay every worker hands its notices to (``Relay``);
  the clock. ``produce`` and ``read`` are the outside world's side of the topics.
- ``Worker`` (``Broker.worker()``): the components of ``streams/assembly.py``, as
  ``streams/app.py`` wires them for faust, over in-memory parts: its topics and tables write into
  its producer's buffer (delivered to the broker at each step of ``pump`` and by the producer's
  ``flush``); its tables hold the partitions it was assigned, each rebuilt from the shared changelog
  when assigned (``tests.inmemory.Table.recovered``); its customers store reads the customers
  partitions it holds (``streams.customers.check`` judges each record; a bad one is dead-lettered);
  its agents read the partitions of their topics it holds from the committed offsets, and an
  event counts as processed (committed at the next step) when its agent asks for the next one.
- The view of every incident (``Incidents``, what ``streams/incident_view.py`` gives the ticket
  surges): the incidents table's changelog as the workers' producers delivered it.
- ``pump()``: steps until nothing moves — deliver the producers' buffers, commit what was
  processed, read new customers, feed new records to the agents — the agents, the sender and
  the background tasks run between the steps; a send the relay holds (``WorkerMailer.stall``)
  stops nothing else.
- ``advance(seconds)``: moves the clock, running every worker's timers (the schedule timer, the
  holding updates' tick) at the times they fire, with a ``pump`` after each firing that did something.
- ``rebalance(assignment)``: the group's rebalance, eager as faust's: every worker's partitions
  revoked (``Rebalance.on_revoked``: the sends under way finish, the producer is flushed), the
  consumer offsets committed, then each worker assigned its share (the customers read, the tables
  rebuilt from the changelogs, ``on_assigned``) and the recovery complete (``on_rebalance_complete``).
- ``kill(worker)``: ``kill -9``: the worker's tasks end, what its producer had not delivered is
  lost, nothing is flushed or committed, and a send under way never hears back from the relay
  (the relay may have the message). It leaves the group; ``rebalance()`` moves its partitions.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, Iterable

from aiokafka.partitioner import murmur2
from faust.types import TP

from core.settings import Settings
from domain.affected import CustomerIndex
from domain.incident import IncidentState
from notifiers.smtp import ACCEPTED, PERMANENT, SendResult
from streams import topics as T
from streams.assembly import Components, assemble
from streams.customers import check
from streams.customers_index import decode_services
from streams.views import customer_of_json
from streams.worker import notice_makers
from tests.inmemory import Clock, Event, Message, Partition

PREFIX = "t."
QUIET_STEPS = 20   # loop turns without anything moving before pump() calls it quiet


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition a producer's default partitioner gives ``key`` (murmur2, as Kafka's Java
    client, kafka-python and aiokafka, the workers' producer, compute it)."""
    return 0 if key is None else (murmur2(key) & 0x7FFFFFFF) % partitions


def worker_settings(**overrides: Any) -> Settings:
    """The settings of the in-memory workers (what the integration tests' workers are given)."""
    values: dict[str, Any] = dict(
        topic_prefix=PREFIX, partitions=4, mail_from="status@example.com", secret="test-secret",
        public_url="http://status.example.com", schedule_lead_seconds=1.0, schedule_tick_seconds=0.5,
        smtp_concurrency=4, delivery_processes=0)
    values.update(overrides)
    return Settings(**values)


# -- the relay -------------------------------------------------------------------------------------


@dataclass
class Mail:
    """A message the relay received: from which worker, when (the clock), to whom, the bytes."""

    worker: str
    at: datetime
    rcpt: str
    data: bytes = field(repr=False)

    @cached_property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @cached_property
    def _headers(self) -> dict[str, str]:
        """The X-Outage-* headers and the Message-ID, read without parsing the whole message."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
        found = {}
        for line in re.split(r"\r\n(?![ \t])", head):
            name, _, value = line.partition(":")
            if name.startswith("X-Outage-") or name == "Message-ID":
                found[name] = re.sub(r"\r\n[ \t]", " ", value).strip()
        return found

    def header(self, name: str) -> str | None:
        if name.startswith("X-Outage-") or name == "Message-ID":
            return self._headers.get(name)
        value = self.message[name]
        return None if value is None else str(value)

    @property
    def kind(self) -> str | None:
        return self.header("X-Outage-Notice")

    @property
    def incident(self) -> str | None:
        return self.header("X-Outage-Incident")

    @property
    def seq(self) -> int:
        return int(self.header("X-Outage-Seq") or 0)

    @property
    def message_id(self) -> str | None:
        return self.header("Message-ID")

    @property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @property
    def next_update(self) -> datetime | None:
        value = self.header("X-Outage-Next-Update")
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    @property
    def date(self) -> datetime:
        return parsedate_to_datetime(self.header("Date"))


class Relay:
    """The SMTP server every worker hands its notices to: ``mails`` holds what it received, in
    order; ``refuse(address)`` answers 550 for an address (nothing is received)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mails: list[Mail] = []
        self.refused: dict[str, SendResult] = {}

    def refuse(self, address: str, code: int = 550, message: str = "5.1.1 Mailbox unavailable") -> None:
        self.refused[address.lower()] = SendResult(PERMANENT, code, message)

    def to(self, rcpt: str, *, incident: str | None = None) -> list[Mail]:
        return [m for m in self.mails if m.rcpt == rcpt and (incident is None or m.incident == incident)]

    def recipients(self, *, incident: str | None = None, kind: str | None = None) -> list[str]:
        """Who received which notice, one entry per message (repeats show as repeats)."""
        return [m.rcpt for m in self.mails
                if (incident is None or m.incident == incident) and (kind is None or m.kind == kind)]


class WorkerMailer:
    """One worker's connection to the relay (``streams.sender``'s ``Mailer``). ``stall(after=n)``:
    after n more sends, the relay receives each message but its reply does not come (the send
    stays under way) until ``release()``; a killed worker's sends never hear back."""

    def __init__(self, relay: Relay, worker: "Worker") -> None:
        self.relay = relay
        self.worker = worker
        self._stall_after: int | None = None
        self.stalled: list[tuple[Mail, asyncio.Future]] = []

    def stall(self, after: int = 0) -> None:
        self._stall_after = after

    def release(self) -> None:
        self._stall_after = None
        for _, waiter in self.stalled:
            if not waiter.done():
                waiter.set_result(None)
        self.stalled.clear()

    @property
    def in_flight(self) -> list[Mail]:
        """The messages the relay received whose reply has not reached the worker."""
        return [mail for mail, waiter in self.stalled if not waiter.done()]

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> SendResult:
        worker = self.worker
        if not worker.alive:
            await asyncio.Future()   # a killed worker sends nothing (its task is cancelled)
        worker.broker.moved()
        refused = self.relay.refused.get(rcpt.lower())
        if refused is not None:
            return refused
        mail = Mail(worker.name, self.relay.clock(), rcpt, bytes(data))
        self.relay.mails.append(mail)
        if self._stall_after is not None:
            if self._stall_after <= 0:
                waiter = asyncio.get_running_loop().create_future()
                self.stalled.append((mail, waiter))
                await waiter
            else:
                self._stall_after -= 1
        return SendResult(ACCEPTED, 250, "OK")


# -- a worker's parts ------------------------------------------------------------------------------


class WorkerTopic:
    """A topic (or, for the incident agent, two) as one worker writes to it: into its producer."""

    def __init__(self, worker: "Worker", *names: str) -> None:
        self.worker = worker
        self.names = names

    def get_topic_name(self) -> str:
        return self.names[0]

    async def send(self, *, key: bytes | None = None, value: bytes | None = None, partition: int | None = None,
                   **_: Any) -> None:
        self.worker.produce_now(self.names[0], key, value, partition)


class WorkerTopics:
    """The attributes of ``streams.faust_app.Topics``, for one worker."""

    def __init__(self, worker: "Worker", names: T.TopicNames) -> None:
        for attribute, bases in T.WORKER_TOPICS.items():
            setattr(self, attribute, WorkerTopic(worker, *(names.name(base) for base in bases)))


class WorkerPartition(Partition):
    """One partition of a table in one worker: its writes go to the worker's producer, towards
    the changelog the workers share."""

    def __init__(self, worker: "Worker", table: str, p: int) -> None:
        super().__init__(p)
        self.worker, self.table = worker, table
        self.offset: int | None = None   # of the last changelog record it was rebuilt from

    def log(self, key, value) -> None:
        self.worker.log_change(self.table, self.partition, key, value)

    def recover(self, changes, offset: int) -> None:
        for key, value in changes:
            self.apply(key, value)
        self.offset = offset if offset >= 0 else None

    @property
    def changelog_offset(self) -> int | None:
        """The offset of the last changelog record this copy was rebuilt from."""
        return self.offset


class WorkerTable:
    """A table as one worker holds it (``streams.state.PartitionedTable``)."""

    def __init__(self, worker: "Worker", name: str) -> None:
        self.worker, self.name = worker, name
        self.parts: dict[int, WorkerPartition] = {}

    def partition(self, p: int) -> WorkerPartition:
        part = self.parts.get(p)
        if part is None:
            part = self.parts[p] = self.worker.recovered(self.name, p)
        return part

    def held(self) -> set[int]:
        return set(self.parts)


class Customers:
    """The customers of the partitions a worker holds, read from the customers topic (what
    ``streams.customers.CustomerStore`` gives the views: ``index``, ``lookup``, ``count``,
    ``caught_up``, ``readiness``). A worker has no disk here: a partition assigned is read from
    the beginning, and its bad records are dead-lettered again."""

    def __init__(self, worker: "Worker", dlq) -> None:
        self.worker = worker
        self.dlq = dlq
        self.topic = worker.broker.names.name(T.CUSTOMERS)
        self.wanted: set[int] | None = None
        self.parts: dict[int, dict] = {}   # p -> index, records (JSON by id), services by id, position

    def index(self, p: int) -> CustomerIndex:
        part = self.parts.get(p)
        return part["index"] if part is not None else CustomerIndex()

    def lookup(self, p: int, customer_id: str):
        part = self.parts.get(p)
        raw = part["records"].get(customer_id) if part is not None else None
        return customer_of_json(raw) if raw is not None else None

    def count(self) -> int:
        return sum(len(part["index"]) for part in self.parts.values())

    def readiness(self) -> tuple[bool, str]:
        if self.wanted is None:
            return False, "waiting for the customers partitions"
        log = self.worker.broker.log(self.topic)
        behind = sum(len(log[p]) - self.parts[p]["position"] for p in self.wanted)
        return (True, "ok") if not behind else (False, f"loading customers ({behind} records behind)")

    async def caught_up(self, p: int, timeout: float) -> bool:
        if p not in self.parts:
            return False
        await self.read(p)
        return True

    async def rebalance(self, partitions: set[int]) -> None:
        self.wanted = set(partitions)
        for p in set(self.parts) - partitions:
            del self.parts[p]
        for p in partitions - set(self.parts):
            self.parts[p] = {"index": CustomerIndex(), "records": {}, "services": {}, "position": 0}
        for p in sorted(partitions):
            await self.read(p)

    async def read(self, p: int) -> bool:
        """Read partition p up to the topic's end; whether there was anything new."""
        part = self.parts[p]
        log = self.worker.broker.log(self.topic)[p]
        start = part["position"]
        while part["position"] < len(log):
            offset = part["position"]
            key, value = log[offset]
            part["position"] += 1
            judged = check(key, value)
            if judged[0] == "put":
                _, cid, record, services = judged
                pairs = tuple(decode_services(services))
                part["index"].put(cid, pairs, part["services"].get(cid, ()))
                part["records"][cid], part["services"][cid] = record, pairs
            elif judged[0] == "del":
                cid = judged[1]
                part["index"].remove(cid, part["services"].pop(cid, ()))
                part["records"].pop(cid, None)
            else:
                await self.dlq.send_raw(topic=self.topic, partition=p, offset=offset, key=_text(key),
                                        value=_text(value), error=judged[1])
        if part["position"] > start:
            self.worker.broker.moved()
        return part["position"] > start


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


class Reach:
    """The brokers always answer here."""

    def outage_within(self, seconds: float) -> bool:
        return False


class Incidents:
    """The view of every incident (``streams/incident_view.py``) over the shared changelog of the
    incidents table: what the workers' producers have delivered, whichever worker wrote it."""

    def __init__(self, broker: "Broker") -> None:
        self.broker = broker

    def states(self) -> list[IncidentState]:
        latest: dict[str, Any] = {}
        for p in range(self.broker.partitions):
            for key, value in self.broker.changelog(T.INCIDENTS_TABLE, p):
                latest[key] = value
        return [IncidentState.model_validate(value) for value in latest.values() if value is not None]

    async def sync(self, timeout: float = 1.0) -> bool:
        return True


class AgentStream:
    """What one agent reads: the records fed to it, as faust's stream gives them (``events()``);
    an event is processed when the agent asks for the next one."""

    def __init__(self, worker: "Worker", names: tuple[str, ...]) -> None:
        self.worker, self.names = worker, names
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    async def events(self):
        while True:
            event = await self.queue.get()
            yield event
            self.worker.processed(event)

    def clear(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class Worker:
    """One worker: the assembled components over this broker's in-memory parts."""

    def __init__(self, broker: "Broker", name: str, settings: Settings) -> None:
        self.broker, self.name, self.settings = broker, name, settings
        self.alive = True
        self.held: set[int] = set()
        self.outbox: list[tuple] = []                  # the producer's buffer
        self.positions: dict[tuple[str, int], int] = {}   # (topic, partition) -> next offset to feed
        self.done: dict[tuple[str, int], int] = {}        # (topic, partition) -> next offset not processed
        self.tasks: set[asyncio.Task] = set()
        self.tables: dict[str, WorkerTable] = {}
        self.mailer = WorkerMailer(broker.relay, self)
        compose, comment = notice_makers(settings)
        self.parts: Components = assemble(
            settings, topics=WorkerTopics(self, broker.names), names=broker.names, partitions=broker.partitions,
            table=self.table, customers=lambda dlq: Customers(self, dlq), mailer=self.mailer,
            compose=compose, comment=comment, clock=broker.clock, spawn=self.spawn, produce=self.produce,
            flush=self.flush, owned=lambda: set(self.held), reach=Reach(), incident_view=Incidents(broker))
        self.streams = [(AgentStream(self, topic.names), agent) for topic, _, agent in self.parts.agents]
        for stream, agent in self.streams:
            self.spawn(agent(stream))
        start = broker.clock()
        self.timers = [[start + timedelta(seconds=seconds), seconds, timer] for seconds, _, timer in self.parts.timers]

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, held={sorted(self.held)}, alive={self.alive})"

    # -- what assemble is handed ------------------------------------------------------------
    def table(self, name: str) -> WorkerTable:
        table = self.tables[name] = WorkerTable(self, name)
        return table

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.broker.moved()

    async def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
                      timestamp=None, headers=None) -> None:
        self.produce_now(topic, key, value, partition)

    def produce_now(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> None:
        if self.alive:
            self.outbox.append(("topic", topic, key, value, partition))
            self.broker.moved()

    def log_change(self, table: str, p: int, key, value) -> None:
        if self.alive:
            self.outbox.append(("changelog", table, p, key, value))
            self.broker.moved()

    async def flush(self) -> None:
        self.deliver()

    # -- the producer and the consumer -------------------------------------------------------
    def deliver(self) -> bool:
        """Hand what the producer holds to the broker."""
        if not self.alive or not self.outbox:
            return False
        out, self.outbox = self.outbox, []
        for entry in out:
            if entry[0] == "topic":
                self.broker.append(*entry[1:])
            else:
                self.broker.changelog(entry[1], entry[2]).append((entry[3], entry[4]))
        return True

    def processed(self, event: Event) -> None:
        msg = event.message
        self.done[(msg.topic, msg.partition)] = msg.offset + 1
        self.broker.moved()

    def commit(self) -> None:
        if self.alive:
            for (topic, p), offset in self.done.items():
                if p in self.held:
                    self.broker.committed[(topic, p)] = offset

    def feed(self) -> bool:
        """Give each agent the records of its topics' held partitions it has not been given."""
        fed = False
        for stream, _ in self.streams:
            for name in stream.names:
                log = self.broker.log(name)
                for p in sorted(self.held):
                    records = log[p]
                    at = self.positions.get((name, p), 0)
                    for offset in range(at, len(records)):
                        key, value = records[offset]
                        stream.queue.put_nowait(Event(key, value, Message(name, p, offset)))
                        fed = True
                    self.positions[(name, p)] = len(records)
        return fed

    def recovered(self, table: str, p: int) -> WorkerPartition:
        part = WorkerPartition(self, table, p)
        log = self.broker.changelog(table, p)
        part.recover(log, len(log) - 1)
        return part

    # -- the group's callbacks -----------------------------------------------------------------
    def tps(self, partitions: Iterable[int]) -> set[TP]:
        return {TP(self.broker.names.name(base), p) for base in T.CO_PARTITIONED for p in partitions}

    async def revoke(self) -> None:
        await self.parts.rebalance.on_revoked(None, revoked=self.tps(self.held))
        self.commit()
        for stream, _ in self.streams:
            stream.clear()

    async def assign(self, partitions: set[int]) -> None:
        await self.parts.customers.rebalance(partitions)
        for table in self.tables.values():
            table.parts = {p: self.recovered(table.name, p) for p in partitions}
        self.positions = {}
        for stream, _ in self.streams:
            for name in stream.names:
                for p in partitions:
                    self.positions[(name, p)] = self.done[(name, p)] = self.broker.committed.get((name, p), 0)
        await self.parts.rebalance.on_assigned(None, assigned=self.tps(partitions))
        self.held = set(partitions)

    async def recovery_complete(self) -> None:
        await self.parts.rebalance.on_rebalance_complete(None)

    async def fire_timers(self, now: datetime) -> bool:
        """Run every timer due by ``now`` (each once per period, as a faust timer fires)."""
        fired = False
        for timer in self.timers:
            while timer[0] <= now:
                timer[0] += timedelta(seconds=timer[1])
                await timer[2]()
                fired = True
        return fired

    async def stop_tasks(self) -> None:
        await self.parts.sender.stop(timeout=0)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# -- the broker ------------------------------------------------------------------------------------


class Broker:
    """Topics, the group, the changelogs, the relay and the clock; ``worker()`` starts a worker."""

    def __init__(self, partitions: int = 4, clock: Clock | None = None, **settings: Any) -> None:
        self.partitions = partitions
        self.names = T.TopicNames(PREFIX)
        self.clock = clock or Clock()
        self.settings = worker_settings(partitions=partitions, **settings)
        self.topics: dict[str, list[list[tuple[bytes | None, bytes | None]]]] = {}
        self.changelogs: dict[tuple[str, int], list[tuple[str, Any]]] = defaultdict(list)
        self.committed: dict[tuple[str, int], int] = {}
        self.relay = Relay(self.clock)
        self.workers: list[Worker] = []      # the group's members
        self.activity = 0                    # anything moved (pump waits until nothing does)

    def moved(self) -> None:
        self.activity += 1

    # -- topics --------------------------------------------------------------------------------
    def log(self, name: str) -> list[list[tuple[bytes | None, bytes | None]]]:
        """A topic's partitions, each a list of (key, value) by offset."""
        log = self.topics.get(name)
        if log is None:
            count = 1 if name == self.names.name(T.DEAD_LETTERS) else self.partitions
            log = self.topics[name] = [[] for _ in range(count)]
        return log

    def append(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> int:
        log = self.log(topic)
        p = partition if partition is not None else partition_for(key, len(log))
        log[p].append((key, value))
        self.moved()
        return p

    def changelog(self, table: str, p: int) -> list[tuple[str, Any]]:
        return self.changelogs[(table, p)]

    def produce(self, base: str, key: str | None, value: Any) -> int:
        """A record from outside (a dict is sent as JSON, bytes as they are) to topic ``base``;
        the partition its key's."""
        if isinstance(value, (dict, list)):
            value = json.dumps(value).encode()
        elif isinstance(value, str):
            value = value.encode()
        return self.append(self.names.name(base), key.encode() if key is not None else None, value)

    def read(self, base: str) -> list[dict]:
        """Every record's JSON value on topic ``base``, partition by partition in offset order."""
        return [json.loads(value) for part in self.log(self.names.name(base)) for _, value in part
                if value is not None]

    def at(self, seconds: float = 0.0) -> str:
        """The clock's time (plus ``seconds``), as a record's ``at``."""
        return (self.clock() + timedelta(seconds=seconds)).isoformat()

    # -- workers -------------------------------------------------------------------------------
    def worker(self, name: str | None = None) -> Worker:
        """A worker joining the group (it holds nothing until the next ``rebalance``)."""
        worker = Worker(self, name or f"w{len(self.workers)}", self.settings)
        self.workers.append(worker)
        return worker

    async def rebalance(self, assignment: dict[Worker, set[int]] | None = None) -> None:
        """The group's rebalance (every live worker's partitions revoked, then assigned: partition
        p to the (p mod n)-th worker unless ``assignment`` says), then the tables' recovery complete."""
        if assignment is None:
            assignment = {w: {p for p in range(self.partitions) if p % len(self.workers) == i}
                          for i, w in enumerate(self.workers)}
        # what a producer holds reaches the broker before the partitions move only if flushed
        await asyncio.gather(*(w.revoke() for w in self.workers))
        for w in self.workers:
            await w.assign(assignment.get(w, set()))
        for w in self.workers:
            await w.recovery_complete()

    async def kill(self, worker: Worker) -> None:
        """``kill -9``: nothing flushed, committed nor finished; the worker leaves the group."""
        worker.alive = False
        worker.outbox.clear()
        self.workers.remove(worker)
        await worker.stop_tasks()

    # -- running -------------------------------------------------------------------------------
    def _step(self) -> bool:
        moved = False
        for w in self.workers:
            moved |= w.deliver()
        for w in self.workers:
            w.commit()
            moved |= w.feed()
        return moved

    async def pump(self) -> None:
        """Run until nothing moves: the producers' records delivered, what was processed
        committed, new customers read, new records fed to the agents, and the agents, the senders
        and the background tasks idle (or waiting for a reply the relay holds back)."""
        quiet = 0
        while quiet < QUIET_STEPS:
            before = self.activity
            moved = self._step()
            for w in self.workers:
                for p in sorted(w.parts.customers.parts):
                    moved |= await w.parts.customers.read(p)
            await asyncio.sleep(0)
            quiet = 0 if moved or self.activity != before else quiet + 1

    async def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds``, firing every worker's timers when they are due."""
        end = self.clock() + timedelta(seconds=seconds)
        while True:
            due = min((t[0] for w in self.workers for t in w.timers), default=None)
            if due is None or due > end:
                break
            self.clock.at = max(self.clock.at, due)
            before = self.activity
            for w in list(self.workers):
                await w.fire_timers(self.clock.at)
            if self.activity != before or any(w.parts.sender.depth for w in self.workers):
                await self.pump()
        self.clock.at = end
        await self.pump()

    async def close(self) -> None:
        """Stop every worker's tasks (the test's end)."""
        for w in self.workers:
            await w.stop_tasks()
        self.workers.clear()

    async def __aenter__(self) -> "Broker":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
