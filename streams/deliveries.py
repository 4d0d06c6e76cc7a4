"""What the sender calls around each notice: compose it (stating the contact's next deadline),
check it is still owed, record it once the SMTP server accepted it, and dead-letter what cannot
be planned or delivered.

Runtime contract:
- ``compose``/``deliver_elsewhere``: the notice's bytes, stating the next-update time the
  promise book works out for that contact now (``domain.promises``); the book remembers it until
  the notice is recorded or dead-lettered.
- ``refresh``: the notice still owed according to the customer's ledger entry on its partition, or None (sent
  meanwhile, by this worker or another): checked before each send, so a retry or a takeover
  never sends a Message-ID twice.
- ``record_sent``: right after the SMTP acceptance, the ledger entry (on the customer's
  partition, changelogged) gets the Message-ID, the contact's new deadline and when it was
  accepted; then the ``notices`` record is produced on the same partition. The holding updates
  and the notified view are told; the promise margin is observed (late ones counted).
- ``unplannable``/``undeliverable``: the dead-letter topic gets the round's or the notice's ids
  and the reason; the worker goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Awaitable, Callable

from core.vocabulary import RESOLVED, UNAFFECTED
from domain import ledger as L
from domain.audience import NoticeJob, refresh
from domain.incident import Round
from domain.promises import PromiseBook, interval_of
from schemas import NoticeRecord
from streams import metrics as M
from streams import topics as T
from streams.state import PartitionedTable


class Deliveries:
    def __init__(self, *, ledger: PartitionedTable, promises: PromiseBook, views, dlq, names: T.TopicNames,
                 mail_domain: str, compose: Callable[[NoticeJob, datetime], bytes], delivery=None,
                 produce: Callable[..., Awaitable], noted: Callable[..., None]) -> None:
        self.ledger = ledger
        self.promises = promises
        self.views = views
        self.dlq = dlq
        self.names = names
        self.mail_domain = mail_domain
        self._compose_bytes = compose
        self.delivery = delivery       # a ProcessDelivery: compose and send in helper processes
        self.produce = produce         # (topic, key, value, partition, timestamp, headers) to the producer
        self.noted = noted             # the holding updates are told of each notice recorded
        self._notices_name = names.name(T.NOTICES)

    def compose(self, job: NoticeJob, now: datetime) -> bytes:
        return self._compose_bytes(self.promises.as_composed(job, now), now)

    async def deliver_elsewhere(self, job: NoticeJob, now: datetime):
        started = time.perf_counter()
        try:
            return await self.delivery.deliver(self.promises.as_composed(job, now), now)
        finally:
            M.SMTP_SECONDS.observe(time.perf_counter() - started)

    def ledger_entries(self, p: int) -> Callable[[str], dict | None]:
        """Partition p's ledger entries by customer id (what was sent to each customer)."""
        ledger = self.ledger

        def entry(customer_id: str) -> dict | None:
            return ledger.partition(p).get(customer_id)

        return entry

    def refresh(self, job: NoticeJob, p: int) -> NoticeJob | None:
        return refresh(job, self.ledger.partition(p).get(job.customer_id), self.mail_domain)

    async def record_sent(self, job: NoticeJob, p: int, sent_at: datetime) -> None:
        final = job.kind in (RESOLVED, UNAFFECTED)
        stated = None if final else self.promises.stated(job)
        due = stated.timestamp() if stated is not None else None
        every = interval_of(job.round).total_seconds()
        ledger = self.ledger.partition(p)
        entry = L.record_sent(ledger.get(job.customer_id), incident_id=job.incident_id,
                              recipient=job.recipient, email=job.email, message_id=job.message_id,
                              kind=job.kind, seq=job.seq, due=due, every=every, sent=sent_at.timestamp())
        await ledger.put(job.customer_id, entry)
        self.views.mark_notified(p, job.incident_id, job.customer_id)
        self.noted(p, job, due, every, sent_at.timestamp())
        if stated is not None and self.promises.factor > 1.0:
            M.PROMISES_STRETCHED.inc()
        if job.due is not None:   # the recipient's own promise, kept (or not) by this notice
            margin = job.due - sent_at.timestamp()
            M.PROMISE_MARGIN.observe(margin)
            if margin < 0:
                M.NOTICES_LATE.inc()
        # built without validation: every field was validated on the way in (an address check per
        # notice was a visible share of the worker's time in the benchmark's profile)
        record = NoticeRecord.model_construct(
            notice_id=job.message_id, incident_id=job.incident_id, ticket_id=job.ticket_id,
            customer_id=job.customer_id, email=job.email, kind=job.kind, seq=job.seq, sent_at=sent_at,
            eta=job.round.eta, next_update_at=stated)
        # straight to the producer: faust's Topic.send wraps each record in futures and callbacks
        # for nothing we use here (measured: a tenth of a notice's CPU with the ledger's changelog)
        await self.produce(self._notices_name, job.customer_id.encode(), record.model_dump_json().encode(),
                           p, None, None)

    def unplannable(self, rnd: Round, customer_id: str, exc: Exception) -> None:
        """A customer whose notices of a round could not be worked out: dead-lettered, skipped."""
        M.NOTICE_FAILURES.labels("error").inc()
        value = json.dumps({"incident_id": rnd.incident_id, "seq": rnd.seq, "customer_id": customer_id})
        asyncio.get_running_loop().create_task(self.dlq.send_raw(
            topic=self.names.name(T.ROUNDS), key=customer_id, value=value,
            error=f"could not plan this customer's notices: {type(exc).__name__}: {exc}"))

    async def undeliverable(self, job: NoticeJob, reason: str) -> None:
        self.promises.forget(job)
        value = json.dumps({"notice_id": job.message_id, "incident_id": job.incident_id, "kind": job.kind,
                            "customer_id": job.customer_id, "seq": job.seq})
        await self.dlq.send_raw(topic=self.names.name(T.NOTICES), key=job.customer_id, value=value, error=reason)
