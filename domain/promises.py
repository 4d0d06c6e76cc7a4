"""Promise bookkeeping: which next-update time each notice states.

A round promises the next update (``Round.next_update_at``). A notice composed when that time is
gone, or about to go, states the incident's newest promise instead (``content.promise_shown``):
that happens when a round takes longer to reach everyone than the update interval. The book
remembers each incident's newest promise, and what a notice stated when it differs from its
round's, until the notice is recorded (the ``notices`` record states what the email said).
Pure: no I/O, the time is passed in.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from domain.content import promise_shown


class PromiseBook:
    def __init__(self, margin: timedelta) -> None:
        self.margin = margin
        self._newest: dict[str, tuple[int, datetime]] = {}   # incident -> (seq, promise) of its newest round
        self._stated: dict[str, datetime] = {}               # Message-ID -> promise stated instead of its round's

    def note(self, rnd) -> None:
        """A round of ``rnd.incident_id`` is known here (decided, received or taken up)."""
        known = self._newest.get(rnd.incident_id)
        if rnd.next_update_at is None:
            self._newest.pop(rnd.incident_id, None)   # resolved: nothing more is promised
        elif known is None or known[0] <= rnd.seq:
            self._newest[rnd.incident_id] = (rnd.seq, rnd.next_update_at)

    def as_composed(self, job, now: datetime):
        """``job`` as composed at ``now``: stating the promise it can still keep."""
        newest = self._newest.get(job.incident_id)
        shown = promise_shown(job.round.next_update_at, newest[1] if newest else None, now, margin=self.margin)
        if shown == job.round.next_update_at:
            return job
        self._stated[job.message_id] = shown
        return dataclasses.replace(job, round=job.round.model_copy(update={"next_update_at": shown}))

    def stated(self, job) -> datetime | None:
        """What the sent notice ``job`` stated as its next update (and forget it)."""
        return self._stated.pop(job.message_id, job.round.next_update_at)

    def forget(self, job) -> None:
        """``job`` will not be sent (dead-lettered)."""
        self._stated.pop(job.message_id, None)
