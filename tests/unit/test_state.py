"""The per-partition state interface (streams/state.py): what implements it, and what the
in-memory implementation that the in-process tests run on guarantees."""

from __future__ import annotations

from streams.state import ReadablePartition, StorePartition
from tests.inmemory import Partition, Table


def test_the_implementations_have_the_interface():
    from streams.customers import Partition as CustomersPartition
    from streams.kafka.tables import Partition as KafkaPartition

    for cls in (KafkaPartition, Partition):
        missing = [name for name in ("get", "items", "keys", "values", "set", "put", "delete", "recover",
                                     "changelog_offset", "__len__", "__contains__") if not hasattr(cls, name)]
        assert missing == [], cls
    assert [name for name in ("get", "keys", "changelog_offset", "__len__", "__contains__")
            if not hasattr(CustomersPartition, name)] == []
    assert isinstance(Table().partition(0), StorePartition) and isinstance(Table().partition(0), ReadablePartition)


async def test_a_value_lives_in_its_partition_and_a_takeover_recovers_it_from_the_changelog():
    table = Table("ledger")
    table.partition(1).set("c-1", {"n": 1})
    await table.partition(2).put("c-1", {"n": 2})        # the same key on another partition is another value
    table.partition(1).set("c-2", {"n": 3})
    table.partition(1).delete("c-2")
    assert table.partition(1).get("c-1") == {"n": 1} and table.partition(2).get("c-1") == {"n": 2}
    assert "c-2" not in table.partition(1) and len(table.partition(1)) == 1
    assert table.partition(1).changelog_offset == 2 and table.partition(3).changelog_offset is None
    taken_over = table.recovered(1)
    assert dict(taken_over.items()) == {"c-1": {"n": 1}} and taken_over.changelog_offset == 2


def test_iterating_is_a_snapshot_that_a_write_does_not_disturb():
    part = Partition(0)
    for k in range(3):
        part.set(f"k{k}", k)
    for key, value in part.items():
        part.set(key + "x", value)                        # an agent writes while it iterates
    assert len(part) == 6
