"""Run one stream-processing worker: ``outage worker``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

from domain.audience import NoticeJob
from domain.content import notice_content
from notifiers.notice import NoticeComposer
from notifiers.render import render_ticket_comment
from core.logs import configure
from core.settings import Settings
from streams import metrics as M
from streams.app import Pipeline
from streams.kafka.broker import admin, detect_profile, ensure_topics

log = logging.getLogger(__name__)


def notice_makers(settings: Settings) -> tuple[Callable[[NoticeJob, datetime], bytes],
                                                Callable[[NoticeJob, datetime], str]]:
    """What composes a notice's bytes, and what renders a ticket comment (the in-memory test
    broker, tests/inmemory/, uses these too)."""

    def count_passed(content) -> None:
        if content.eta_state == "passed":
            M.ETA_PASSED.inc()

    composer = NoticeComposer(public_url=settings.public_url, mail_from=settings.mail_from,
                              signing_key=settings.signing_key(), on_content=count_passed,
                              reply_to=settings.reply_to)

    def comment(job, now) -> str:
        return render_ticket_comment(notice_content(job, now))

    return composer, comment


def build_pipeline(settings: Settings, *, mailer=None, clock=None) -> Pipeline:
    """Connect to the broker (waiting while it is unreachable), create missing topics, build the app."""
    client = admin(settings)
    try:
        profile = detect_profile(settings, client)
        partitions = ensure_topics(settings, client)
    finally:
        client.close()
    log.info("broker profile %s, %d partitions", profile.name, partitions)
    smtp = dict(host=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                tls=settings.smtp_tls.value, concurrency=settings.smtp_concurrency, timeout=settings.smtp_timeout)
    delivery = None
    if mailer is None and settings.delivery_helpers:
        from notifiers.delivery import DeliveryConfig, ProcessDelivery

        delivery = ProcessDelivery(DeliveryConfig(public_url=settings.public_url, mail_from=settings.mail_from,
                                                  signing_key=settings.signing_key(), smtp=smtp,
                                                  reply_to=settings.reply_to, log_format=settings.log_format),
                                   processes=settings.delivery_helpers, on_eta_passed=M.ETA_PASSED.inc)
    if mailer is None:
        from notifiers.smtp import SmtpPool

        mailer = SmtpPool(**smtp)  # not used when helpers deliver (it connects only when used)

    composer, comment = notice_makers(settings)
    kwargs = {} if clock is None else {"clock": clock}
    return Pipeline(settings, profile=profile, partitions=partitions, mailer=mailer, compose=composer,
                    comment=comment, delivery=delivery, **kwargs)


def worker_logging(settings: Settings, loglevel: str = "info") -> dict:
    """The worker's logging (``OUTAGE_LOG_FORMAT``, core/logs.py), applied now and returned for
    faust's worker, which configures the root logger again with it when it starts."""
    return configure(settings.log_format, loglevel.upper())


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    config = worker_logging(settings, loglevel)
    # faust's banner and spinner are printed, not logged: in the JSON format nothing but JSON
    # lines is written (quiet), and stray prints go to a logger (redirect_stdouts, faust's default)
    json_lines = settings.log_format == "json"
    worker = build_pipeline(settings).worker(loglevel, logging_config=config, quiet=json_lines)
    if json_lines:
        worker.spinner = None   # faust's progress spinner draws on a terminal at levels above info
    worker.execute_from_commandline()
