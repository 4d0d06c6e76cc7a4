"""The feedback pages: what a contact's answer to a resolved notice's question does on the web.

Every resolved notice ends with the question and five links ``/feedback/{token}?score=N``
(``notifiers/notice.py``); the token is signed (``domain/links.py``) and names the incident, the
customer, the contact's recipient key, the customer's locale and the incident's severity, so any
worker can answer in the contact's language without a lookup. ``streams/web.py`` routes
``GET|POST /feedback/{token}`` here:

- ``GET`` (``show``) only shows the page, in the contact's language, with the link's score chosen,
  an optional comment box and a button: it records nothing, because link scanners and mail
  previews fetch every link of a message. A score that is not 1…5: 400, the same page with
  nothing chosen; no score: the page, nothing chosen.
- ``POST`` (``record``), form fields ``score`` (1…5) and optional ``comment`` (at most
  ``MAX_COMMENT_CHARS`` characters): produces a ``FeedbackRecord`` on ``outage.feedback``, keyed
  by its ``feedback_id`` (one per contact per incident: a later answer replaces the earlier),
  waits for the broker to take it, and answers the thank-you page (thanks, what the answer is
  used for, the comment box). A bad score or a comment over the limit: 400, the form again with
  what was given and why; a body over the limit: 413; a broker that is unreachable or does not
  take it: 503, the form again, nothing lost from the box.
- A token that does not verify (forged, altered, or signed by a key no longer in
  ``OUTAGE_SECRET``/``OUTAGE_SECRET_PREVIOUS``): 403 and a page in both languages, for either
  method, before the body is read; nothing is recorded.

Metrics: ``outage_feedback_score{severity}`` and ``outage_feedback_answers_total{result}`` are
observed here, by the one worker that handled the request, once the broker took the answer (the
view of the answers, which every worker keeps, observes nothing, so the workers' sums count each
answer once). No page ever answers 500.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError

from domain.feedback import clean_comment, feedback_id, parse_score
from domain.links import FeedbackLink, Keys, verify_feedback
from notifiers.pages import FeedbackPage, render_feedback_page
from schemas import FeedbackRecord, MAX_COMMENT_CHARS
from schemas.common import localize
from streams import metrics as M
from streams.forms import form_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    html: str


class FeedbackDesk:
    """The feedback pages: ``show`` (GET) and ``record`` (POST); ``keys`` verify the tokens
    (the current secret first), ``topic`` is ``outage.feedback`` (``send`` returns what to await
    for the broker's acknowledgement), ``title(incident_id, locale)`` the incident's title for the
    page (or ""), ``reachable()`` whether any broker answers, ``clock`` the time of an answer."""

    def __init__(self, *, keys: Keys, topic, title: Callable[[str, str], str], reachable: Callable[[], bool],
                 clock: Callable[[], datetime]) -> None:
        self.keys = tuple(keys) if not isinstance(keys, (bytes, bytearray)) else (bytes(keys),)
        self.topic = topic
        self.title = title
        self.reachable = reachable
        self.clock = clock

    # -- the pages ---------------------------------------------------------------------------
    def verify(self, token: str) -> FeedbackLink | None:
        return verify_feedback(self.keys, token)

    def invalid(self) -> Page:
        return Page(403, render_feedback_page(FeedbackPage("invalid")))

    def _form(self, token: str, link: FeedbackLink, status: int = 200, **values) -> Page:
        try:
            title = self.title(link.incident_id, link.locale)
        except Exception:  # noqa: BLE001 - the title is a courtesy; the page goes on without it
            title = ""
        page = FeedbackPage("form", link.locale, action=_action(token), incident_title=title, **values)
        return Page(status, render_feedback_page(page))

    def show(self, token: str, score: str | None) -> Page:
        """GET: the page with the link's score chosen; records nothing."""
        link = self.verify(token)
        if link is None:
            return self.invalid()
        if score is None:
            return self._form(token, link)
        chosen = parse_score(score)
        if chosen is None:
            return self._form(token, link, 400, problem="bad-score")
        return self._form(token, link, score=chosen)

    def refused(self) -> Page:
        """POST with a token that does not verify: 403, nothing read or recorded."""
        M.FEEDBACK_ANSWERS.labels("refused").inc()
        return self.invalid()

    def unreadable(self, token: str, status: int) -> Page:
        """POST whose body was not read: 413 (over the limit) or 400, the form again (its box empty)."""
        link = self.verify(token)
        if link is None:
            return self.refused()
        M.FEEDBACK_ANSWERS.labels("invalid").inc()
        return self._form(token, link, status, problem="too-large" if status == 413 else "bad-score")

    async def record(self, token: str, body: bytes) -> Page:
        """POST: the answer in ``body`` (an urlencoded form) recorded on ``outage.feedback``."""
        link = self.verify(token)
        if link is None:
            return self.refused()
        fields = form_fields(body)
        unreadable, fields = fields is None, fields or {}
        scores = fields.get("score", [])
        score = parse_score(scores[0]) if len(scores) == 1 else None
        comments = fields.get("comment", [])
        comment = clean_comment(comments[0]) if len(comments) == 1 else None
        shown = dict(score=score, comment=comment or "")
        if unreadable or len(comments) > 1 or score is None:
            M.FEEDBACK_ANSWERS.labels("invalid").inc()
            return self._form(token, link, 400, problem="bad-score", **shown)
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            M.FEEDBACK_ANSWERS.labels("invalid").inc()
            return self._form(token, link, 400, problem="too-long", **shown)
        answer = FeedbackRecord(
            feedback_id=feedback_id(link.incident_id, link.customer_id, link.recipient),
            incident_id=link.incident_id, customer_id=link.customer_id, severity=link.severity,
            score=score, comment=comment, at=self.clock())
        if not await self._produce(answer):
            M.FEEDBACK_ANSWERS.labels("unavailable").inc()
            return self._form(token, link, 503, problem="unavailable", **shown)
        M.FEEDBACK_ANSWERS.labels("recorded").inc()
        M.FEEDBACK_SCORE.labels(link.severity).observe(score)
        page = FeedbackPage("thanks", link.locale, action=_action(token), score=score, comment=comment or "")
        return Page(200, render_feedback_page(page))

    async def _produce(self, answer: FeedbackRecord) -> bool:
        """The answer on the topic, acknowledged by the broker; False when it was not taken."""
        if not self.reachable():
            return False
        try:
            sent = await self.topic.send(key=answer.feedback_id.encode(), value=answer.model_dump_json().encode())
            if inspect.isawaitable(sent):
                await sent
        except (ProducerSendError, KafkaError) as exc:
            log.warning("the broker did not take a feedback answer: %s", type(exc.__cause__ or exc).__name__)
            return False
        except Exception as exc:  # noqa: BLE001 - never a 500: the contact is asked to try again
            log.warning("a feedback answer could not be produced: %s", type(exc).__name__)
            return False
        return True


def title_of(view) -> Callable[[str, str], str]:
    """``title(incident_id, locale)`` from the view of every incident (``streams/incident_view.py``)."""
    def title(incident_id: str, locale: str) -> str:
        state = view.get(incident_id)
        return localize(state.title, locale) if state is not None else ""
    return title


def _action(token: str) -> str:
    """Where the page's form posts: the page's own path, relative (``./`` so that a token is never
    read as a URL scheme), so it works under whatever ``OUTAGE_PUBLIC_URL`` the link came from."""
    return "./" + token
