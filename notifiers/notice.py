"""Compose one notice job into the bytes handed to SMTP: content -> words -> MIME, once."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, timezone

from core.vocabulary import RESOLVED
from domain.audience import services_of
from domain.content import notice_content
from domain.links import feedback_token, status_token, unsubscribe_token
from notifiers.message import build_message
from notifiers.render import RenderCache
from schemas.common import normalize_locale


def utc_rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class NoticeComposer:
    """``composer(job, now) -> bytes``; ``on_content`` sees every composed ``NoticeContent``
    (the shell counts estimates that went by unresolved). ``reply_to`` (``OUTAGE_REPLY_TO``):
    every notice's ``Reply-To``, and only then do the notices invite a reply; None: neither."""

    def __init__(self, *, public_url: str, mail_from: str, signing_key: bytes, on_content=None,
                 reply_to: str | None = None) -> None:
        self.public_url = public_url.rstrip("/")
        self.mail_from = mail_from
        self.reply_to = reply_to.strip() if reply_to and reply_to.strip() else None
        self.key = signing_key
        self.on_content = on_content
        self.renderer = RenderCache()

    def __call__(self, job, now: datetime) -> bytes:
        token = unsubscribe_token(self.key, job.customer_id, job.recipient)
        unsubscribe_url = f"{self.public_url}/unsubscribe/{token}"
        content = notice_content(job, now, status_url=f"{self.public_url}/status",
                                 unsubscribe_url=unsubscribe_url, replies=self.reply_to is not None,
                                 customer_status_url=self.customer_status_url(job))
        if job.kind == RESOLVED:
            content = dataclasses.replace(content, feedback_url=self.feedback_url(job, content))
        if self.on_content is not None:
            self.on_content(content)
        headers = {
            "X-Outage-Incident": job.incident_id,
            "X-Outage-Notice": job.kind,
            "X-Outage-Seq": str(job.seq),
            "X-Outage-ETA": utc_rfc3339(content.eta) or "unknown",
        }
        if content.next_update_at is not None:
            headers["X-Outage-Next-Update"] = utc_rfc3339(content.next_update_at)
        return build_message(
            rendered=self.renderer.render(content), mail_from=self.mail_from, to_email=job.email, to_name=job.contact_name,
            message_id=job.message_id, in_reply_to=job.in_reply_to, headers=headers,
            list_unsubscribe_url=unsubscribe_url, reply_to=self.reply_to, date=now,
        )

    def customer_status_url(self, job) -> str:
        """The signed link to the customer's own status page (``GET /status/customer/{token}``):
        its locale, zone and services ride in the token; none when they do not fit in a link."""
        customer = job.customer
        return self._customer_status_url(customer.customer_id, normalize_locale(customer.locale),
                                         customer.timezone, tuple(services_of(customer)))

    @functools.lru_cache(maxsize=4096)   # a round's notices: one link per customer, made once
    def _customer_status_url(self, customer_id: str, locale: str, zone: str,
                             services: tuple[tuple[str, str], ...]) -> str:
        try:
            token = status_token(self.key, customer_id, locale, zone, services)
        except ValueError:
            return ""
        return f"{self.public_url}/status/customer/{token}"

    def feedback_url(self, job, content) -> str:
        """The signed feedback link of a resolved notice (``?score=N`` is added per answer); none
        when the token cannot name what it must (the notice still goes, without the question)."""
        try:
            token = feedback_token(self.key, job.incident_id, job.customer_id, job.recipient, content.locale,
                                   content.severity)
        except ValueError:
            return ""
        return f"{self.public_url}/feedback/{token}"
