"""The worker's faust tables and their store: the one place that reads faust's table internals.

Tables (``PartitionedTable``) are read and written one partition at a time, through the
interface of ``streams/state.py``: ``table.partition(p)`` is a ``Partition``, whose values are
kept in memory (the fan-out reads the ledger several times a notice) and written through to
RocksDB (``rocksdict``, store ``outage-rocksdb://``, ``PersistedStore``), one database per table
partition, which also keeps the offset of the last changelog record it holds (faust's
"persisted offset"). At start a partition is loaded from its database and faust's recovery reads
only the changelog records written after that offset. A write's changelog record goes to the
partition it was written to, from any task.

The state lives under the worker's data dir (``OUTAGE_DATA_DIR/faust/state/<slot>``). A worker
process claims a slot with a lock that the kernel releases when it ends (even on ``kill -9``),
so several workers started with one data dir each get their own state, and a restarted worker
takes a free one back.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator

import faust
import faust.tables
from faust.stores import STORES
from faust.stores import memory
from faust.types import TP

from core.locks import hold

log = logging.getLogger(__name__)

STORE_URL = "outage-rocksdb://"
OFFSET_KEY = b"\x00persisted-offset"   # never a changelog key: those are JSON texts
_claimed: dict[str, Path] = {}


def state_dir(app: faust.App) -> Path:
    """This process's state directory under the app's datadir (claimed on first use)."""
    base = Path(str(app.conf.datadir)) / "state"
    known = _claimed.get(str(base))
    if known is not None:
        return known
    base.mkdir(parents=True, exist_ok=True)
    slot = 0
    while not hold(base / f"{slot}.lock"):
        slot += 1
    path = _claimed[str(base)] = base / str(slot)
    path.mkdir(exist_ok=True)
    log.info("local state in %s", path)
    return path


def open_db(path: Path):
    from rocksdict import Options, Rdict

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_max_open_files(64)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Rdict(str(path), options=options)


class Partition:
    """One partition of a table (``streams.state.StorePartition``): its values in memory, written
    through to its own RocksDB database, changelogged to the same partition of the table's
    changelog topic."""

    def __init__(self, store: "PersistedStore", p: int) -> None:
        self.partition = p
        self._store = store
        self.data: dict[str, Any] = {}

    # -- reads -------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.data.items()))   # a snapshot: callers write while they iterate

    def keys(self) -> Iterator[str]:
        return iter(list(self.data))

    def values(self) -> Iterator[Any]:
        return iter(list(self.data.values()))

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    # -- writes ------------------------------------------------------------------------------
    def set(self, key: str, value: Any) -> None:
        """Applied now; the changelog record is queued on faust's buffered producer path."""
        table = self._store.table
        self._store.write(self.partition, key, value)
        table.send_changelog(self.partition, key, value)

    def delete(self, key: str) -> None:
        table = self._store.table
        self._store.write(self.partition, key, None)
        table.send_changelog(self.partition, key, None, value_serializer="raw")

    async def put(self, key: str, value: Any) -> None:
        """Applied now, the changelog record handed straight to the producer (serialised as faust
        would: faust's buffered ``send_soon`` costs futures and callbacks for nothing we use),
        with the same bytes in the local database. Returns once the record is queued; its offset
        is recorded as persisted when the broker acknowledges it."""
        store = self._store
        table = store.table
        topic = table.changelog_topic
        key_bytes, _ = topic.prepare_key(key, table.key_serializer)
        value_bytes, _ = topic.prepare_value(value, table.value_serializer)
        store.persist(self.partition, key, key_bytes, value, value_bytes)
        fut = await table.app.producer.send(topic.get_topic_name(), key_bytes, value_bytes, self.partition,
                                            None, None)
        fut.add_done_callback(store.on_put_sent)

    # -- the changelog -----------------------------------------------------------------------
    @property
    def changelog_offset(self) -> int | None:
        return self._store.offset_of(self.partition)

    def recover(self, changes: Iterable[tuple[str, Any]], offset: int) -> None:
        """Changelog records read from the broker (value None: deleted), up to ``offset``."""
        store = self._store
        for key, value in changes:
            store.write(self.partition, key, value)
        store.set_persisted_offset(TP(store.table.changelog_topic_name, self.partition), offset)


class PersistedStore(memory.Store):
    """The store of a ``PartitionedTable``: one ``Partition`` per table partition, each kept in
    memory and written through to its own RocksDB database, which also keeps the offset of the
    last changelog record it holds (faust's "persisted offset"). faust's own flat ``data`` dict
    stays empty: a value's partition is the partition it is stored in."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._dbs: dict[int, Any] = {}
        self._parts: dict[int, Partition] = {}
        self._loaded: set[int] = set()     # partitions whose database is in memory
        self._offsets: dict[int, int] = {}  # persisted offsets written by this process

    @property
    def _dir(self) -> Path:
        return state_dir(self.app) / "tables"

    def _db(self, p: int):
        db = self._dbs.get(p)
        if db is None:
            db = self._dbs[p] = open_db(self._dir / f"{self.table_name}-{p}.db")
        return db

    def partition(self, p: int) -> Partition:
        part = self._parts.get(p)
        if part is None:
            part = self._parts[p] = Partition(self, p)
        return part

    # -- writes -----------------------------------------------------------------------------
    def write(self, p: int, key: str, value: Any) -> None:
        """``key`` set to ``value`` (None: deleted) on partition p, encoded as the changelog is."""
        self.persist(p, key, self._encode_key(key), value, None if value is None else self._encode_value(value))

    def persist(self, p: int, key: Any, key_bytes: bytes, value: Any, value_bytes: bytes | None) -> None:
        """``key`` set to ``value`` (None: deleted) on partition p: in memory and on disk.
        The bytes are the changelog record's, so recovery and a live write store the same."""
        data = self.partition(p).data
        if value_bytes is None:
            data.pop(key, None)
            self._db(p).delete(key_bytes)
        else:
            data[key] = value
            self._db(p).put(key_bytes, value_bytes)

    def on_put_sent(self, fut) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        md = fut.result()
        self.set_persisted_offset(TP(md.topic, md.partition), md.offset)

    def offset_of(self, p: int) -> int | None:
        raw = self._db(p).get(OFFSET_KEY)
        return int(raw) if raw is not None else None

    def persisted_offset(self, tp: TP) -> int | None:
        return self.offset_of(tp.partition)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        p = tp.partition
        known = self._offsets.get(p)
        if known is None:
            known = self.offset_of(p)
        if known is None or known < offset:
            self._db(p).put(OFFSET_KEY, str(offset).encode())
            self._offsets[p] = offset

    def apply_changelog_batch(self, batch: Iterable, to_key: Callable, to_value: Callable) -> None:
        """Recovery: each record into its partition, in memory and on disk, with the offset."""
        from rocksdict import WriteBatch

        batches: dict[int, Any] = {}
        offsets: dict[int, int] = {}
        for event in batch:
            msg = event.message
            p = msg.partition
            wb = batches.get(p)
            if wb is None:
                wb = batches[p] = WriteBatch(raw_mode=True)
            key = to_key(event.key)
            data = self.partition(p).data
            if msg.value is None:
                wb.delete(msg.key)
                data.pop(key, None)
            else:
                wb.put(msg.key, msg.value)
                data[key] = to_value(event.value)
            offsets[p] = max(offsets.get(p, -1), msg.offset)
        for p, wb in batches.items():
            db = self._db(p)
            raw = db.get(OFFSET_KEY)
            if raw is None or int(raw) < offsets[p]:
                wb.put(OFFSET_KEY, str(offsets[p]).encode())
                self._offsets[p] = offsets[p]
            db.write(wb)

    # -- partitions -------------------------------------------------------------------------
    async def on_rebalance(self, assigned, revoked, newly_assigned, generation_id: int = 0) -> None:
        topic = self.table.changelog_topic_name
        for tp in assigned:
            if tp.topic == topic and tp.partition not in self._loaded:
                self._load(tp.partition)

    def _load(self, p: int) -> None:
        data = self.partition(p).data
        n = 0
        for key_bytes, value_bytes in self._db(p).items():
            if key_bytes == OFFSET_KEY:
                continue
            data[json.loads(key_bytes)] = json.loads(value_bytes)
            n += 1
        self._loaded.add(p)
        if n:
            log.info("table %s partition %d: %d keys from local state", self.table_name, p, n)

    async def on_recovery_completed(self, active_tps, standby_tps) -> None:
        """The partitions not held any more are dropped from memory (read from disk again if
        they come back)."""
        await super().on_recovery_completed(active_tps, standby_tps)
        held = {tp.partition for tp in active_tps}
        for p in (self._loaded | set(self._parts)) - held:
            self._loaded.discard(p)
            self._offsets.pop(p, None)
            self._parts.pop(p, None)
            db = self._dbs.pop(p, None)
            if db is not None:
                db.close()

    def reset_state(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
        self._parts.clear()
        self._loaded.clear()
        self._offsets.clear()
        self.data.clear()
        for path in self._dir.glob(f"{self.table_name}-*.db"):
            shutil.rmtree(path, ignore_errors=True)

    async def stop(self) -> None:
        for db in self._dbs.values():
            try:
                db.close()
            except Exception:  # noqa: BLE001
                log.debug("closing %s", self.table_name, exc_info=True)
        self._dbs.clear()
        await super().stop()


STORES.aliases[STORE_URL.split(":")[0]] = f"{__name__}:PersistedStore"


class TableManager(faust.tables.TableManager):
    """faust's table manager, without the second it sleeps before it starts the tables (for
    tables an app declares once it runs; the pipeline declares all of its own when it is built).
    That second was part of every worker's start and of every restart until ready."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class Table(faust.Table):
    """A faust table (the base of the two below)."""


class PartitionedTable(Table):
    """A table read and written one partition at a time (``streams.state.PartitionedTable``):
    ``table.partition(p)`` is partition p's ``Partition``. Writes go to that partition's
    changelog, from any task (the sender writes the ledger outside stream iteration), so a
    customer's ledger entry lives on the customer's partition whatever partitioner produced the
    customer record. faust's mapping interface (``table[key]``) is not used: it would place a
    value by the current event's partition, and look it up without one."""

    def partition(self, p: int) -> Partition:
        return self.data.partition(p)

    def on_key_set(self, key, value) -> None:
        raise TypeError(f"table {self.name}: write through table.partition(p)")

    def on_key_del(self, key) -> None:
        raise TypeError(f"table {self.name}: delete through table.partition(p)")


class RebalanceHook(Table):
    """A table that holds nothing of its own: faust awaits every table's ``on_rebalance`` before
    it recovers the tables and resumes the streams, so ``on_assigned`` (given this worker's
    partitions, co-partitioned with every topic) has finished by the time anything reads."""

    on_assigned: Callable[[set[int]], Awaitable[None]] | None = None
    when_started: Callable[[], Any] | None = None   # (mode.Service has its own on_started)

    async def on_start(self) -> None:
        await super().on_start()
        if self.when_started is not None:
            self.when_started()

    def apply_changelog_batch(self, batch) -> None:
        """Nothing is kept: its changelog may still hold what an older version stored there."""

    async def on_rebalance(self, assigned, revoked, newly_assigned, generation_id: int = 0) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if self.on_assigned is not None:
            name = self.changelog_topic_name
            await self.on_assigned({tp.partition for tp in assigned if tp.topic == name})
