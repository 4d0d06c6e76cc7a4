"""The customers of the partitions a worker holds: read from their topic, validated once, kept on
local disk and indexed in memory.

``outage.customers`` is compacted and keyed by ``customer_id`` (a tombstone deletes), so it is
its own changelog: there is no second copy. A plain aiokafka consumer (no consumer group)
``assign()``s the customers partitions that faust assigned to this worker (co-partitioned with
``outage.rounds``) and reads them in bulk, far faster than a faust agent handles events one by
one. Each partition has a RocksDB database (``rocksdict``) under the worker's state directory
holding its validated customers and, written in the same atomic batch, the next offset to read.
So:

- a cold start (empty state) reads each partition from the beginning;
- a restart, or a partition coming back, reads only what was written since its last batch (also
  after a ``kill -9``: RocksDB's write-ahead log is in the OS's page cache by then);
- in memory there is only the per-partition (component, region) index; a customer's record is
  read from the database when a round or a ticket needs it.

Faust's rebalance waits for the load (``RebalanceHook``): the streams resume, and owed rounds are
taken up, only once the customers of the partitions held are all there. Bad records are
dead-lettered with the reason when first read (not again after a restart) and never stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pydantic import ValidationError

from domain.affected import CustomerIndex
from schemas import RecordError, describe_validation_error
from schemas.customer import parse_customer
from streams import metrics as M
from streams import topics as T
# s:<customer_id> -> its services (SERVICES), encoded and read back there: the index is rebuilt from them
from streams.customers_index import SERVICES, IndexChildren, decode_services, encode_services, read_groups

if TYPE_CHECKING:
    from streams.views import StoredCustomer

# streams.kafka.tables (faust) and streams.views are imported where used: a helper process imports
# this module for ``check_many`` and needs neither

log = logging.getLogger(__name__)

OFFSET_KEY = b"\x00next-offset"   # sorts before every customer key
CUSTOMER = b"c:"                  # c:<customer_id> -> the validated record, compact JSON
MAX_RECORDS = 5000                # per fetch; one RocksDB batch per partition each time
MAX_DEAD_LETTER_CHARS = 100_000
HELPER_CHUNK = 1000               # records per job of a helper process
HELPERS_FROM = 20_000             # records to read before helper processes are worth starting
MAX_INFLIGHT = 8                  # fetches being judged at once during a load


def check(key: bytes | None, value: bytes | None) -> tuple:
    """One customers record, judged: ``("put", customer_id, record JSON, encoded services)``,
    ``("del", customer_id)`` for a tombstone, or ``("bad", reason)``. A pure function of the
    record, so helper processes can run it (``check_many``) during a big load; only bytes and
    strings, which cost little to pass between processes (a list of services pairs tripled it)."""
    if key is None:
        # the key decides the partition, and so the worker (streams/deadletter.py, record_key)
        what = "tombstone" if value is None else "record"
        return ("bad", str(RecordError(f"the {what} has no key; the key must be the customer_id", field="key")))
    try:
        cid = key.decode()
    except UnicodeDecodeError:
        return ("bad", str(RecordError("the record key is not valid UTF-8", field="key")))
    if value is None:
        return ("del", cid) if cid else ("bad", str(RecordError("a tombstone needs the customer_id as key",
                                                                field="key")))
    try:
        customer_id, record, services = parse_customer(value)   # parse_record(Customer, value), faster
        if cid != customer_id:
            raise RecordError(f"record key {cid!r} differs from customer_id", field="customer_id")
    except RecordError as exc:
        return ("bad", str(exc))
    except ValidationError as exc:
        return ("bad", describe_validation_error(exc))
    return ("put", customer_id, record, encode_services(services))


def check_many(items: list[tuple[bytes | None, bytes | None]]) -> list[tuple]:
    return [check(k, v) for k, v in items]


class Partition:
    """One customers partition: its database, its index and how far it has been read. Its reads
    are those of ``streams.state.ReadablePartition`` (a customer by id, from disk; the ids held,
    from the index; the offset of the last customers record read)."""

    def __init__(self, p: int, path: Path) -> None:
        self.p = self.partition = p
        from streams.kafka.tables import open_db

        self.db = open_db(path)
        raw = self.db.get(OFFSET_KEY)
        self.position = int(raw) if raw else 0   # next offset to read
        self.target: int | None = None           # the topic's end when assigned: loaded once reached
        self.loaded = asyncio.Event()
        self.index = CustomerIndex()

    def get(self, customer_id: str, default=None) -> "StoredCustomer | None":
        if customer_id not in self.index:
            return default
        raw = self.db.get(CUSTOMER + customer_id.encode())
        from streams.views import customer_of_json

        return customer_of_json(raw) if raw else default

    def keys(self):
        return iter(self.index.ids())

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self.index

    @property
    def changelog_offset(self) -> int | None:
        return self.position - 1 if self.position else None

    async def build_index(self) -> int:
        """The index from what the database holds (a restart reads nothing else for it). The
        database is read in a thread (the partition is not in use yet), so the worker's other
        tasks go on meanwhile."""
        return await self.add_groups(await asyncio.to_thread(read_groups, self.db))

    async def add_groups(self, groups: dict[tuple[tuple[str, str], ...], list[str]]) -> int:
        """Index customers grouped by their services (the index is empty); how many."""
        n = 0
        for services, ids in groups.items():
            for at in range(0, len(ids), 50_000):
                self.index.add_new({services: ids[at:at + 50_000]})
                await asyncio.sleep(0)
            n += len(ids)
        return n

    def close(self) -> None:
        try:
            self.db.close()
        except Exception:  # noqa: BLE001 - closing what we are giving up anyway
            log.debug("closing customers partition %d", self.p, exc_info=True)


class CustomerStore:
    """The customers, per partition. Reads (``index``, ``lookup``) are synchronous and local."""

    def __init__(self, *, bootstrap_servers: list[str], topic: str, state_dir: Path, dead_letter: Callable,
                 end_offsets: Callable, consumer_options: dict | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.state_dir = state_dir
        self._dead_letter = dead_letter          # async (topic, partition, offset, key, value, error)
        self._end_offsets = end_offsets          # async (consumer, [TopicPartition]) -> {tp: end}
        self._consumer_options = consumer_options or {}
        self._parts: dict[int, Partition] = {}
        self._consumer = None
        self._started = asyncio.Event()
        self._lock = asyncio.Lock()              # one of: a fetch and its writes, or an assignment
        self._wanted: set[int] | None = None     # partitions faust assigned us (None: not yet)
        self.loaded_customers = 0                # read from the topic since start (bench, logs)
        self._task: asyncio.Task | None = None
        self._pool = None                        # helper processes that validate during a big load
        self._preloaded: dict[int, int] = {}     # partitions indexed before the assignment: customers
        self._children: IndexChildren | None = None   # rebuilding the index of those on disk (begin_preload)
        self.helpers = min(4, os.cpu_count() or 1)
        self._decoded: dict[bytes, tuple[tuple[str, str], ...]] = {}   # encoded services -> pairs

    def _services_of(self, raw: bytes) -> tuple[tuple[str, str], ...]:
        """Decoded services, shared: customers have few different sets of services."""
        services = self._decoded.get(raw)
        if services is None:
            if len(self._decoded) >= 1 << 16:
                self._decoded.clear()
            services = self._decoded[raw] = tuple(decode_services(raw))
        return services

    # -- reads ------------------------------------------------------------------------------
    def index(self, p: int) -> CustomerIndex:
        part = self._parts.get(p)
        return part.index if part is not None else CustomerIndex()

    def lookup(self, p: int, customer_id: str) -> StoredCustomer | None:
        """A customer of partition p (None for another partition's or an unknown one)."""
        part = self._parts.get(p)
        return part.get(customer_id) if part is not None else None

    def services(self, p: int, customer_id: str) -> list[tuple[str, str]]:
        part = self._parts.get(p)
        return decode_services(part.db.get(SERVICES + customer_id.encode())) if part is not None else []

    def count(self) -> int:
        return sum(len(part.index) for part in self._parts.values())

    def readiness(self) -> tuple[bool, str]:
        """Ready once every assigned partition has been read to the end it had when assigned."""
        if self._wanted is None:
            return False, "waiting for the customers partitions"
        behind = 0
        for p in self._wanted:
            part = self._parts.get(p)
            if part is None or part.target is None:
                return False, "opening the customers partitions"
            if not part.loaded.is_set():
                behind += max(0, part.target - part.position)
        if behind:
            return False, f"loading customers ({behind} records behind)"
        return True, "ok"

    async def caught_up(self, p: int, timeout: float) -> bool:
        """Wait until partition p has been read up to the end the topic has now (at most
        ``timeout`` seconds): a round planned then sees every customer produced before it was
        decided, although the customers and the rounds are read by different consumers."""
        part, consumer = self._parts.get(p), self._consumer
        if part is None or consumer is None:
            return False
        from aiokafka import TopicPartition

        tp = TopicPartition(self.topic, p)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            end = (await asyncio.wait_for(self._end_offsets(consumer, [tp]), timeout))[tp]
        except Exception:  # noqa: BLE001 - not known now: plan with what is there
            return False
        while part.position < end:
            if loop.time() > deadline or self._parts.get(p) is not part:
                return False
            await asyncio.sleep(0.01)
        return True

    # -- assignment (awaited inside faust's rebalance: streams resume once this returns) ------
    async def rebalance(self, partitions: set[int]) -> None:
        """Hold exactly ``partitions``: keep what stays (nothing is re-read), close what went,
        open what came and read it up to the topic's current end before returning."""
        self.start()
        await self._started.wait()
        from aiokafka import TopicPartition

        started = time.monotonic()
        async with self._lock:
            self._wanted = set(partitions)
            for p in set(self._parts) - partitions:
                self._parts.pop(p).close()
            built = 0
            for p in sorted(partitions - set(self._parts)):
                part = Partition(p, self._path(p))
                built += await part.build_index()
                self._parts[p] = part
            new = sorted(p for p in partitions if self._parts[p].target is None)
            built += sum(self._preloaded.pop(p, 0) for p in new)
            consumer = self._consumer
            tps = {p: TopicPartition(self.topic, p) for p in sorted(self._parts)}
            consumer.assign(list(tps.values()))
            for p, tp in tps.items():
                consumer.seek(tp, self._parts[p].position)
            ends = await self._end_offsets(consumer, [tps[p] for p in new]) if new else {}
            for p in new:
                part = self._parts[p]
                part.target = ends.get(tps[p], 0)
                if part.position >= part.target:
                    part.loaded.set()
            backlog = sum(max(0, self._parts[p].target - self._parts[p].position) for p in new)
            if backlog >= HELPERS_FROM and self.helpers > 1:
                self._start_helpers()
            M.CUSTOMERS.set(self.count())
        if new:
            log.info("customers partitions %s: %d customers from local state in %.1fs; reading %d records "
                     "written since", new, built, time.monotonic() - started,
                     sum(max(0, self._parts[p].target - self._parts[p].position) for p in new if p in self._parts))
        for p in new:
            part = self._parts.get(p)
            while part is not None and not part.loaded.is_set() and self._parts.get(p) is part:
                try:
                    await asyncio.wait_for(part.loaded.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        if new:
            log.info("customers partitions %s loaded in %.1fs (%d customers held)", new,
                     time.monotonic() - started, self.count())

    # -- the reader -------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        """The reader's task (started once; faust's first rebalance may come before its tasks)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="customers-reader")
        return self._task

    async def serve(self) -> None:
        """Run the reader until cancelled (then it closes the databases): a faust task of the
        worker (``streams/app.py``), not a faust agent, which handles one event at a time; it reads
        the customers partitions this worker holds in bulk, validates each record (a bad one is
        dead-lettered with the reason), keeps them on local disk and indexes them. Faust's
        rebalance waits for it, so rounds see every customer."""
        task = self.start()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            raise

    def _path(self, p: int) -> Path:
        return self.state_dir / f"customers-{p}.db"

    def _on_disk(self) -> list[int]:
        return sorted(int(path.name[len("customers-"):-len(".db")]) for path in self.state_dir.glob("customers-*.db")
                      if path.name[len("customers-"):-len(".db")].isdigit())

    def begin_preload(self) -> None:
        """Start rebuilding the index of the partitions kept on disk, in child processes, now:
        before faust starts, so that it is done while faust starts and joins its group rather
        than on the event loop meanwhile (streams/customers_index.py). ``_preload`` collects it."""
        found = self._on_disk()
        if not found or self._children is not None:
            return
        try:
            self._children = IndexChildren({p: self._path(p) for p in found},
                                           processes=max(1, (os.cpu_count() or 2) - 1))
        except OSError as exc:
            log.warning("customers: could not start a process to rebuild the index (%s); rebuilding it here", exc)

    async def _preload(self) -> None:
        """Open the partitions kept on disk and index them while the worker joins its group
        (which takes seconds): a restarted worker usually gets the same partitions back."""
        found = self._on_disk()
        started = time.monotonic()
        groups: dict = {}
        children, self._children = self._children, None
        if children is not None:
            try:
                groups, problems = await asyncio.to_thread(children.collect)
            finally:
                children.stop()
            for problem in problems:
                log.warning("customers: a process rebuilding the index failed (%s); rebuilding the rest here",
                            problem)
        for p in found:
            if p in self._parts or (self._wanted is not None and p not in self._wanted):
                continue
            part = Partition(p, self._path(p))
            part_groups = groups.pop(p, None)
            self._preloaded[p] = await (part.add_groups(part_groups) if part_groups is not None
                                        else part.build_index())
            if p in self._parts or (self._wanted is not None and p not in self._wanted):
                part.close()
                self._preloaded.pop(p, None)
                continue
            self._parts[p] = part
        if self._preloaded:
            log.info("customers: %d partitions, %d customers indexed from local state in %.1fs while joining",
                     len(self._preloaded), sum(self._preloaded.values()), time.monotonic() - started)

    async def _serve(self) -> None:
        delay = 1.0
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await self._preload()
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - e.g. the broker went away: read again, from where it was
                log.exception("the customers' reader stopped; starting it again in %.0fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _start_helpers(self) -> None:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawned, not forked: the worker runs threads (faust's consumer) that a fork would copy
            self._pool = ProcessPoolExecutor(self.helpers, mp_context=multiprocessing.get_context("spawn"))
            log.info("validating customers in %d helper processes while loading", self.helpers)

    async def _warm_helpers(self, consumer) -> None:
        """A cold start (nothing on disk) of a worker whose topic holds enough customers for its
        load to want the helper processes: start them while the worker joins its group, as each
        takes about a second to start (importing pydantic and the schemas)."""
        from aiokafka import TopicPartition

        from streams.kafka.transport import wait_on_metadata

        try:
            # a consumer's metadata holds only the topics it asked for (Apache Kafka answers with
            # those alone; topics() does not fill them in): ask for this one
            await asyncio.wait_for(wait_on_metadata(consumer, self.topic), 10)
            tps = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
            ends = await asyncio.wait_for(consumer.end_offsets(tps), 10) if tps else {}
        except Exception:  # noqa: BLE001 - only a head start: the assignment decides again
            log.debug("customers: not known how many records the topic holds", exc_info=True)
            return
        if sum(ends.values()) >= HELPERS_FROM and self._wanted is None and self._pool is None:
            self._start_helpers()
            for _ in range(self.helpers):   # each job started one more process (they start on demand)
                self._pool.submit(check_many, [])

    def _stop_helpers(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def run(self) -> None:
        """Read the assigned partitions for as long as the worker runs."""
        from aiokafka import AIOKafkaConsumer

        self.state_dir.mkdir(parents=True, exist_ok=True)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    client_id="outage-customers", max_partition_fetch_bytes=4 << 20,
                                    fetch_max_bytes=16 << 20, **self._consumer_options)
        await consumer.start()
        from aiokafka import TopicPartition

        async with self._lock:
            self._consumer = consumer
            if self._parts and self._wanted is not None:  # read again after a failure: from where each was
                consumer.assign([TopicPartition(self.topic, p) for p in sorted(self._parts)])
                for p, part in self._parts.items():
                    consumer.seek(TopicPartition(self.topic, p), part.position)
        self._started.set()
        warming = None
        if self._pool is None and self._wanted is None and not self._parts and self.helpers > 1:
            warming = asyncio.get_running_loop().create_task(self._warm_helpers(consumer), name="customers-helpers")
        closing = False
        inflight: deque = deque()   # (partition, records, their judgement under way), in fetch order
        try:
            while True:
                if not self._parts or not consumer.assignment():
                    if self._pool is not None and self._wanted == set() and not inflight:
                        self._stop_helpers()   # started ahead for a load that did not come
                    await asyncio.sleep(0.1)   # (aiokafka's getmany waits for an assignment)
                    continue
                async with self._lock:
                    # keep the helpers busy: fetch (and hand out) more while earlier records are judged
                    fetched = False
                    if len(inflight) < MAX_INFLIGHT:
                        batches = await consumer.getmany(timeout_ms=0 if inflight else 200, max_records=MAX_RECORDS)
                        for tp, records in batches.items():
                            part = self._parts.get(tp.partition)
                            if part is not None and records:
                                inflight.append((part, records, self._check(records)))
                                fetched = True
                    while inflight and (inflight[0][2].done() or not fetched or len(inflight) >= MAX_INFLIGHT):
                        part, records, judging = inflight.popleft()
                        results = await judging
                        if self._parts.get(part.p) is part:   # still ours
                            await self._apply(part, records, results)
                        fetched = True   # one applied per pass when the queue is not full
                    for part in self._parts.values():
                        if part.target is not None and not part.loaded.is_set() and part.position >= part.target:
                            part.loaded.set()
                    if (self._pool is not None and not inflight
                            and all(part.loaded.is_set() for part in self._parts.values())):
                        self._stop_helpers()
                M.CUSTOMERS.set(self.count())
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            closing = True
            raise
        finally:
            self._started.clear()
            if warming is not None:
                warming.cancel()
            await consumer.stop()
            self._stop_helpers()
            if closing:  # the worker stops
                for part in self._parts.values():
                    part.close()
                self._parts.clear()

    def _check(self, records: list) -> asyncio.Future:
        """Judge the records: in helper processes during a load, else here at once."""
        items = [(r.key, r.value) for r in records]
        pool = self._pool
        loop = asyncio.get_running_loop()
        if pool is None:
            done = loop.create_future()
            done.set_result(check_many(items))
            return done
        size = min(HELPER_CHUNK, max(100, -(-len(items) // self.helpers)))   # every helper gets a share
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        jobs = [loop.run_in_executor(pool, check_many, c) for c in chunks]

        async def joined() -> list[tuple]:
            return [r for chunk in await asyncio.gather(*jobs) for r in chunk]

        return asyncio.ensure_future(joined())

    async def _apply(self, part: Partition, records: list, results: list[tuple]) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        index, p = part.index, part.p
        pending: dict[str, tuple[tuple[str, str], ...] | None] = {}   # this batch's writes, for "previous"
        new: dict[tuple[tuple[str, str], ...], list[str]] = {}   # customers new to the index, by services
        bad = []
        ok = 0
        for record, result in zip(records, results):
            if record.offset < part.position:
                continue  # already applied (a fetch from before a seek)
            what = result[0]
            if what == "bad":
                bad.append((record, result[1]))
                continue
            cid = sys.intern(result[1])
            ok += 1
            if what == "put" and cid not in index and cid not in pending:
                # a customer not held yet (all of them at a cold start): indexed in bulk below
                services = self._services_of(result[3])
                cid_bytes = cid.encode()
                batch.put(CUSTOMER + cid_bytes, result[2])
                batch.put(SERVICES + cid_bytes, result[3])
                group = new.get(services)
                if group is None:
                    group = new[services] = []
                group.append(cid)
                pending[cid] = services
                continue
            if new:   # the index first holds what came before this record in the batch
                index.add_new(new)
                new.clear()
            previous = (pending[cid] if cid in pending else self.services(p, cid)) if cid in index else None
            cid_bytes = cid.encode()
            if what == "del":
                if previous is not None:
                    batch.delete(CUSTOMER + cid_bytes)
                    batch.delete(SERVICES + cid_bytes)
                    index.remove(cid, previous)
                    pending[cid] = None
                continue
            services = self._services_of(result[3])
            batch.put(CUSTOMER + cid_bytes, result[2])
            batch.put(SERVICES + cid_bytes, result[3])
            index.put(cid, services, previous or ())
            pending[cid] = services
        index.add_new(new)
        last = records[-1].offset + 1
        if last > part.position:
            batch.put(OFFSET_KEY, str(last).encode())
            part.db.write(batch)
            part.position = last
        self.loaded_customers += ok
        if ok:
            M.EVENTS.labels(T.CUSTOMERS, "ok").inc(ok)
        for record, reason in bad:
            # dead-lettered once: the offset above is stored, a restart does not read it again
            M.EVENTS.labels(T.CUSTOMERS, "dead-letter").inc()
            await self._dead_letter(topic=self.topic, partition=record.partition, offset=record.offset,
                                    key=_text(record.key), value=_text(record.value), error=reason)

    def reset_state(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")[:MAX_DEAD_LETTER_CHARS]


def customers_of(app, *, settings, names: T.TopicNames, profile, partitions: int, dlq) -> CustomerStore:
    """The customer store of the faust ``app``, and the hook that ties its loading into faust's
    rebalance: the customers topic (named by ``names``) on the brokers of ``settings``, read with the
    broker ``profile``'s end offsets; a bad record goes to the dead letters ``dlq``."""
    from streams.kafka.broker import FETCH_MAX_WAIT_MS, aiokafka_options, bootstrap
    from streams.kafka.tables import RebalanceHook, state_dir

    async def dead_letter(**kwargs) -> None:
        await dlq.send_raw(**kwargs)

    store = CustomerStore(bootstrap_servers=bootstrap(settings), topic=names.name(T.CUSTOMERS),
                          state_dir=state_dir(app) / "customers", dead_letter=dead_letter,
                          end_offsets=profile.end_offsets,
                          # a short fetch wait on every broker: Kafka answers one connection's requests
                          # in order, so the ListOffsets of ``caught_up`` waited behind a waiting fetch
                          # (aiokafka's 500 ms): a round reached its partitions one after another, 0.5 s
                          # apart, and a scheduled update missed its promise (test_schedule on Kafka)
                          consumer_options={**aiokafka_options(settings),
                                            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS})
    hook = RebalanceHook(app, name=T.CUSTOMERS_TABLE, beacon=app.tables.beacon, default=None,
                         partitions=partitions, key_type=str, value_type=None)
    hook.on_assigned = store.rebalance
    hook.when_started = store.start    # with the tables, before the group is joined
    app.tables.add(hook)
    return store
