"""Promise bookkeeping: which next-update time each notice states.

A promised time belongs to the contact it was stated to (``domain/deadlines.py``): a notice
states one interval after it is sent (a holding update: one interval after the deadline it
keeps), the
operator's explicit time when given, stretched when this worker's send rate cannot
carry its audience once per interval. The book works that out when a notice is composed and
remembers it until the notice is recorded (the ``notices`` record and the ledger's deadline
state what the email said). A notice to a recipient who chose start-and-end states no next update
at all (``domain/preferences.py``). Pure: no I/O, the time is passed in.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from domain.deadlines import stated_promise
from core.vocabulary import RESOLVED, SEVERITY_CADENCE_SECONDS, UNAFFECTED


def interval_of(rnd) -> timedelta:
    """The update interval a round's notices count with."""
    return timedelta(seconds=rnd.interval_seconds or SEVERITY_CADENCE_SECONDS.get(rnd.severity, 3600))


class PromiseBook:
    def __init__(self, margin: timedelta) -> None:
        self.margin = margin
        self.factor = 1.0                                    # the stretch of this worker's promises now
        self._stated: dict[str, datetime] = {}               # Message-ID -> promise its notice states

    def as_composed(self, job, now: datetime):
        """``job`` as composed at ``now``: stating the recipient's next deadline."""
        rnd = job.round
        if job.kind in (RESOLVED, UNAFFECTED) or rnd.next_update_at is None:
            return job
        if getattr(job, "start_and_end", False):
            # the recipient chose only the start and the end: this notice promises no update (the
            # next email comes with the resolution), and it leaves no deadline in the ledger
            self._stated[job.message_id] = None
            return dataclasses.replace(job, round=rnd.model_copy(update={"next_update_at": None}))
        keeps = datetime.fromtimestamp(job.due, timezone.utc) if job.due is not None else None
        shown = stated_promise(job.kind, now=now, interval=interval_of(rnd), keeps=keeps,
                               explicit=rnd.next_update_at if rnd.explicit else None, factor=self.factor,
                               margin=self.margin)
        self._stated[job.message_id] = shown
        if shown == rnd.next_update_at:
            return job
        return dataclasses.replace(job, round=rnd.model_copy(update={"next_update_at": shown}))

    def stated(self, job) -> datetime | None:
        """What the sent notice ``job`` stated as its next update, None for none (and forget it)."""
        return self._stated.pop(job.message_id, job.round.next_update_at)

    def forget(self, job) -> None:
        """``job`` will not be sent (dead-lettered)."""
        self._stated.pop(job.message_id, None)
