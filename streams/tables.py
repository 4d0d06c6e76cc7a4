"""The worker's faust tables: the one place that reads faust's table internals.

``Table.get`` reads the store directly; ``PlacedTable`` writes each value's changelog record to
the partition the value names (``"p"``), from any task.
"""

from __future__ import annotations

import faust


class Table(faust.Table):
    """A faust table (in the memory store) whose ``get`` reads the store's dict directly:
    the fan-out reads the ledger and the customers several times a notice, and faust's path
    (sensors, then ``__missing__`` for the default) was a visible share of its CPU."""

    def get(self, key, default=None):
        return self.data.data.get(key, default)


class PlacedTable(Table):
    """A table whose values carry their partition as ``"p"``.

    Changelog writes go to that partition, from any task (the sender writes the ledger outside
    stream iteration), so the ledger entry of a customer lives on the customer's partition
    whatever partitioner produced the customer record.
    """

    def on_key_set(self, key, value) -> None:
        partition = value["p"]
        self.send_changelog(partition, key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    async def put(self, key, value) -> None:
        """``table[key] = value``, with the changelog record handed straight to the producer
        (serialised as faust would: faust's buffered ``send_soon`` costs futures and callbacks
        that only a persistent store's offsets use). Returns once the record is queued."""
        topic = self.changelog_topic
        key_bytes, _ = topic.prepare_key(key, self.key_serializer)
        value_bytes, _ = topic.prepare_value(value, self.value_serializer)
        self.data[key] = value
        await self.app.producer.send(topic.get_topic_name(), key_bytes, value_bytes, value["p"], None, None)
