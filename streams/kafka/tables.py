"""The worker's faust tables and their store: the one place that reads faust's table internals.

Store (``outage-rocksdb://``, ``PersistedStore``): faust's memory store — a dict of decoded
values that ``Table.get`` reads directly (the fan-out reads the ledger several times a notice) —
written through to RocksDB (``rocksdict``), one database per table partition, which also keeps
the offset of the last changelog record it holds (faust's "persisted offset"). At start a
partition is loaded from its database and faust's recovery reads only the changelog records
written after that offset. ``PlacedTable`` writes each value's changelog record to the partition
the value names (``"p"``), from any task.

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
from typing import Any, Awaitable, Callable, Iterable

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


class PersistedStore(memory.Store):
    """faust's memory store, written through to one RocksDB database per partition."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._dbs: dict[int, Any] = {}
        self._loaded: set[int] = set()     # partitions whose database is in ``data``
        self._offsets: dict[int, int] = {}  # persisted offsets written by this process

    @property
    def _dir(self) -> Path:
        return state_dir(self.app) / "tables"

    def _db(self, p: int):
        db = self._dbs.get(p)
        if db is None:
            db = self._dbs[p] = open_db(self._dir / f"{self.table_name}-{p}.db")
        return db

    # -- writes -----------------------------------------------------------------------------
    def persist(self, p: int, key: Any, key_bytes: bytes, value: Any, value_bytes: bytes | None) -> None:
        """``key`` set to ``value`` (None: deleted) on partition p: in memory and on disk.
        The bytes are the changelog record's, so recovery and a live write store the same."""
        if value_bytes is None:
            self.data.pop(key, None)
            self._key_partition.pop(key, None)
            self._db(p).delete(key_bytes)
        else:
            self.data[key] = value
            self._key_partition[key] = p
            self._db(p).put(key_bytes, value_bytes)

    def persisted_offset(self, tp: TP) -> int | None:
        raw = self._db(tp.partition).get(OFFSET_KEY)
        return int(raw) if raw is not None else None

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        p = tp.partition
        known = self._offsets.get(p)
        if known is None:
            known = self.persisted_offset(tp)
        if known is None or known < offset:
            self._db(p).put(OFFSET_KEY, str(offset).encode())
            self._offsets[p] = offset

    def apply_changelog_batch(self, batch: Iterable, to_key: Callable, to_value: Callable) -> None:
        """Recovery: each record into memory and into its partition's database, with the offset."""
        from rocksdict import WriteBatch

        batches: dict[int, Any] = {}
        offsets: dict[int, int] = {}
        data, partitions = self.data, self._key_partition
        for event in batch:
            msg = event.message
            p = msg.partition
            wb = batches.get(p)
            if wb is None:
                wb = batches[p] = WriteBatch(raw_mode=True)
            key = to_key(event.key)
            if msg.value is None:
                wb.delete(msg.key)
                data.pop(key, None)
                partitions.pop(key, None)
            else:
                wb.put(msg.key, msg.value)
                data[key] = to_value(event.value)
                partitions[key] = p
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
        db = self._db(p)
        data, partitions, n = self.data, self._key_partition, 0
        for key_bytes, value_bytes in db.items():
            if key_bytes == OFFSET_KEY:
                continue
            key = json.loads(key_bytes)
            data[key] = json.loads(value_bytes)
            partitions[key] = p
            n += 1
        self._loaded.add(p)
        if n:
            log.info("table %s partition %d: %d keys from local state", self.table_name, p, n)

    async def on_recovery_completed(self, active_tps, standby_tps) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)  # drops the partitions not held
        held = {tp.partition for tp in active_tps}
        for p in self._loaded - held:
            self._loaded.discard(p)           # read from disk again if it comes back
            self._offsets.pop(p, None)
            db = self._dbs.pop(p, None)
            if db is not None:
                db.close()

    def reset_state(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
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
    """A faust table whose ``get`` reads the store's dict directly: the fan-out reads the ledger
    and the customers several times a notice, and faust's path (sensors, then ``__missing__`` for
    the default) was a visible share of its CPU. Writes reach the local database too."""

    def get(self, key, default=None):
        return self.data.data.get(key, default)

    def _persist(self, partition: int, key, value) -> None:
        store = self.data
        if isinstance(store, PersistedStore):
            store.persist(partition, key, store._encode_key(key), value,
                          None if value is None else store._encode_value(value))

    def on_key_set(self, key, value) -> None:
        fut = self.send_changelog(self.partition_for_key(key), key, value)
        partition = fut.message.partition
        self._persist(partition, key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key) -> None:
        fut = self.send_changelog(self.partition_for_key(key), key, value=None, value_serializer="raw")
        partition = fut.message.partition
        self._persist(partition, key, None)
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)


class PlacedTable(Table):
    """A table whose values carry their partition as ``"p"``.

    Changelog writes go to that partition, from any task (the sender writes the ledger outside
    stream iteration), so the ledger entry of a customer lives on the customer's partition
    whatever partitioner produced the customer record.
    """

    def on_key_set(self, key, value) -> None:
        partition = value["p"]
        self.send_changelog(partition, key, value)
        self._persist(partition, key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    async def put(self, key, value) -> None:
        """``table[key] = value``, with the changelog record handed straight to the producer
        (serialised as faust would: faust's buffered ``send_soon`` costs futures and callbacks
        for nothing we use) and the same bytes written to the local database. Returns once the
        record is queued; its offset is recorded as persisted when the broker acknowledges it."""
        topic = self.changelog_topic
        key_bytes, _ = topic.prepare_key(key, self.key_serializer)
        value_bytes, _ = topic.prepare_value(value, self.value_serializer)
        p = value["p"]
        store = self.data
        if isinstance(store, PersistedStore):
            store.persist(p, key, key_bytes, value, value_bytes)
        else:
            store[key] = value
        fut = await self.app.producer.send(topic.get_topic_name(), key_bytes, value_bytes, p, None, None)
        if isinstance(store, PersistedStore):
            fut.add_done_callback(self._on_put_sent)

    def _on_put_sent(self, fut) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        md = fut.result()
        self.data.set_persisted_offset(TP(md.topic, md.partition), md.offset)


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
