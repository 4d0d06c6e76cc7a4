"""The suppressed addresses, read whole by every worker: the book ``streams/suppressions.py`` checks.

A ``TopicView`` (``streams/topic_view.py``: a plain consumer with no group, every partition, from
the beginning, then following) of the compacted ``outage.suppressions`` topic, folded by
``domain.suppression.SuppressionBook``: a record suppresses its address, a tombstone lifts it, a
record that is not a suppression (or whose key is not its address) is skipped with a warning.
Reads are eventually consistent; ``sync`` waits until what the topic holds now has been read.
"""

from __future__ import annotations

from domain.suppression import SuppressionBook
from streams import topics as T
from streams.topic_view import BookView


class SuppressionView(BookView):
    """Every suppression on ``outage.suppressions``, followed."""

    label = "suppressions view"
    default_client_id = "outage-suppressions-view"
    source = T.SUPPRESSIONS
    book_type = SuppressionBook
    skipped_what = "records that are not suppressions"
