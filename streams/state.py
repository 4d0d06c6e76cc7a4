"""The worker's local state, one partition at a time (quix-streams' ``StorePartition`` is the model).

Every table of the pipeline (``streams/topics.py``: incidents, ledger, tickets, latest rounds) is
partitioned like the topics it serves: a value lives in the store of its partition, and that is
the only place its partition is written down — no partition field inside values, no partition
prefix in keys. A reader asks ``table.partition(p)`` for partition p's store and reads and writes
there; a worker holds the stores of the partitions assigned to it.

A ``StorePartition``:

- ``get(key, default=None)``, ``items()``, ``keys()``, ``values()``, ``len()``, ``key in``:
  reads, from memory (the fan-out reads the ledger several times a notice);
- ``set(key, value)``: a write, applied at once, its changelog record queued (for agents that
  write while they process a record: the record's acknowledgement follows the changelog's);
- ``await put(key, value)``: a write, applied at once, its changelog record handed to the
  producer before it returns (for tasks that write outside stream iteration, e.g. the sender);
- ``delete(key)``: a deletion, changelogged as a tombstone;
- ``changelog_offset``: the offset of the last changelog record this partition's local copy
  holds (None: none yet); at start, recovery reads only what was written after it;
- ``recover(changes)``: applies changelog records (key, value or None) read from the broker,
  in offset order, with the offset of the last one — what recovery and a standby call.

Implementations: ``streams/kafka/tables.py`` (memory, written through to RocksDB, changelogged to
Kafka through faust), ``tests/inmemory/__init__.py`` (a dict and a list of changelog records) and
``tests/inmemory/broker.py`` (a worker's copy of a partition, its changelog shared by the workers).

The customers are read-only here (``ReadablePartition``): ``outage.customers`` is compacted and
keyed by customer, so it is its own changelog, and a worker only reads it
(``streams/customers.py``: one ``Partition`` per customers partition, with its services index).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol, runtime_checkable


@runtime_checkable
class ReadablePartition(Protocol):
    partition: int

    def get(self, key: str, default: Any = None) -> Any: ...

    def keys(self) -> Iterator[str]: ...

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...

    @property
    def changelog_offset(self) -> int | None: ...


@runtime_checkable
class StorePartition(ReadablePartition, Protocol):
    def items(self) -> Iterator[tuple[str, Any]]: ...

    def values(self) -> Iterator[Any]: ...

    def set(self, key: str, value: Any) -> None: ...

    async def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def recover(self, changes: Iterable[tuple[str, Any]], offset: int) -> None: ...


class PartitionedTable(Protocol):
    """A table: one ``StorePartition`` per partition."""

    name: str

    def partition(self, p: int) -> StorePartition: ...

    def held(self) -> set[int]: ...
