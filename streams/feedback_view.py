"""The answers to the resolved notices' question, for every worker's ``GET /api/incidents/{id}``.

An answer is recorded by whichever worker's web page received it (``streams/feedback.py``), on
``outage.feedback``, keyed by its ``feedback_id`` (one per contact per incident). This view reads
that topic whole on every worker (``streams/topic_view.py``: a plain consumer with no group,
every partition, from the beginning, then following) and keeps the latest answer of each
``feedback_id`` (``domain.feedback.FeedbackTally``): per incident, how many answers there are and
their mean. A later answer replaces the earlier, on the compacted topic as here; a tombstone
removes one; a record that is not a valid answer, or whose key is not its ``feedback_id``, is
skipped with a warning. Reads are eventually consistent, like the incident view's.

It counts no metric: every worker keeps this view, so the metrics are observed once, where an
answer is recorded.
"""

from __future__ import annotations

from typing import Iterable

from domain.feedback import FeedbackTally, Summary
from domain.ids import utf8_key
from schemas import FeedbackRecord, RecordError, parse_record
from streams import topics as T
from streams.topic_view import TopicView


class FeedbackView(TopicView):
    """feedback_id -> the latest answer; per incident the number of answers and their mean."""

    label = "feedback view"
    default_client_id = "outage-feedback-view"
    source = T.FEEDBACK

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tally = FeedbackTally()

    def summary(self, incident_id: str) -> Summary:
        return self.tally.summary(incident_id)

    def size(self) -> int:
        return len(self.tally)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Apply records of ``outage.feedback`` (raw key, raw value) in offset order."""
        for raw_key, raw_value in records:
            key = utf8_key(raw_key)
            if key is None:
                self._skip("a record without a UTF-8 key")
                continue
            if raw_value is None:
                self.tally.remove(key)
                continue
            try:
                answer = parse_record(FeedbackRecord, raw_value)
            except RecordError as exc:
                self._skip(f"not an answer ({exc.field or 'record'})")
                continue
            if answer.feedback_id != key:
                self._skip("a key that is not the record's feedback_id")
                continue
            self.tally.put(answer.feedback_id, answer.incident_id, answer.score)
