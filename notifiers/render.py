"""Turn a ``NoticeContent`` into words: a subject, a text part and an HTML part.

Every decision (which services, whether the estimate is still ahead, when the next update is
due) was made by the domain; this module only formats times in the customer's zone and fills
the templates of ``notifiers/templates``:

- ``layout.txt`` / ``layout.html``: the two shared layouts (greeting, sections, sign-off, footer);
- ``<locale>/common.jinja``: the wording every notice of that locale shares;
- ``<locale>/<kind>.jinja``: the small per-kind part (its sections, subject, lead paragraph…).

The wording files hold plain text only and are compiled twice: once as they are for the text
part, and once with autoescape on for the HTML part (any template loaded from an HTML template
is loaded as ``html:<name>``), so every ops-provided string is escaped in HTML and left as
written in text, without a second copy of any sentence.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from domain.content import NoticeContent
from core.vocabulary import (
    ACKNOWLEDGED,
    DEFAULT_LOCALE,
    LOCALES,
    NOTICE_KINDS,
    PROGRESS,
    RESOLVED,
    SCHEDULED,
    STATUSES,
    TICKET_ACK,
    UNAFFECTED,
)
from notifiers.timefmt import format_duration, format_time

__all__ = ["RenderedNotice", "render", "get_environment", "TEMPLATE_DIR"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_HTML_PREFIX = "html:"
# Kinds that promise a next update (the three parts: progress, estimate, next update).
_ONGOING = (ACKNOWLEDGED, PROGRESS, SCHEDULED, TICKET_ACK)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass(frozen=True, slots=True)
class RenderedNotice:
    subject: str   # one line, no CR/LF
    text: str      # the complete text/plain part
    html: str      # the text/html part: says everything the text part says


class _Environment(Environment):
    """Anything imported from an HTML template is loaded in its autoescaped ``html:`` form."""

    def join_path(self, template: str, parent: str) -> str:
        if _is_html(parent) and not template.startswith(_HTML_PREFIX):
            return _HTML_PREFIX + template
        return template


class _Loader(FileSystemLoader):
    """``html:<name>`` is the file ``<name>``, compiled under its own name (so autoescaped)."""

    def get_source(self, environment: Environment, template: str):  # type: ignore[override]
        return super().get_source(environment, template.removeprefix(_HTML_PREFIX))


def _is_html(name: str | None) -> bool:
    return bool(name) and (name.startswith(_HTML_PREFIX) or name.endswith(".html"))


def _nl2br(value: Any) -> Markup:
    """Escape (unless already markup) and turn line breaks into ``<br>``."""
    text = escape(value)
    return Markup("<br>\n").join(text.split("\n"))


@lru_cache(maxsize=1)
def get_environment() -> Environment:
    """The one Jinja2 environment of the process (templates are compiled once and cached)."""
    env = _Environment(
        loader=_Loader(str(TEMPLATE_DIR)),
        autoescape=_is_html,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=400,
    )
    env.filters["nl2br"] = _nl2br
    return env


def _one_line(value: str) -> str:
    return _SPACES.sub(" ", _CONTROL.sub("", value)).strip()


def _block(value: str) -> str:
    """Ops text shown as written: keep its line breaks, drop control characters."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", value).strip()


def _tidy_text(text: str) -> str:
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


def _view(c: NoticeContent) -> dict[str, Any]:
    """The values the templates see: strings only (never None), times already formatted."""
    if c.kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {c.kind!r}")
    if c.status not in STATUSES:
        raise ValueError(f"unknown status {c.status!r}")
    locale = c.locale if c.locale in LOCALES else DEFAULT_LOCALE
    tz = c.timezone

    def at(when: datetime | None, *, with_date: bool = False) -> str:
        if when is None:
            return ""
        return format_time(when, tz, locale, now=c.now, with_date=with_date)

    # The domain decided (domain/content.py): "passed" only for an estimate stated before.
    eta_state = c.eta_state
    if eta_state != "passed":
        # Never show a time that has gone by as an estimate still ahead; nor call it an earlier
        # estimate, which only the domain knows was stated: it is no estimate.
        eta_state = "future" if c.eta is not None and c.eta > c.now else "unknown"

    if c.kind in _ONGOING and c.next_update_at is None and not c.start_and_end:
        raise ValueError(f"a {c.kind!r} notice must promise its next update (next_update_at is None)")

    ended = c.resolved_at or (c.now if c.kind == RESOLVED else None)
    title = _one_line(c.title)
    return {
        "kind": c.kind,
        "locale": locale,
        "status": c.status,
        "tone": (
            "ok" if c.kind in (RESOLVED, UNAFFECTED)
            else "warn" if c.status == "investigating"
            else "info"
        ),
        "title": title,
        "message": _block(c.message),
        "services": [(_one_line(comp), _one_line(region)) for comp, region in c.services],
        "eta_state": eta_state,
        "eta": at(c.eta) if eta_state == "future" else "",
        "next_update": at(c.next_update_at) if c.kind not in (RESOLVED, UNAFFECTED) else "",
        "start_and_end": bool(c.start_and_end) and c.kind not in (RESOLVED, UNAFFECTED),
        "started": at(c.started_at, with_date=True),
        "ended": at(ended, with_date=True) if ended else "",
        "duration": format_duration(ended - c.started_at, locale) if ended else "",
        "customer_name": _one_line(c.customer_name or ""),
        "contact_name": _one_line(c.contact_name or ""),
        "ticket_id": _one_line(c.ticket_id or ""),
        "ticket_subject": _one_line(c.ticket_subject or ""),
        "status_url": (c.status_url or "").strip(),
        "customer_status_url": (c.customer_status_url or "").strip(),
        "unsubscribe_url": (c.unsubscribe_url or "").strip(),
        "preferences_url": (c.preferences_url or "").strip(),
        "feedback_url": (c.feedback_url or "").strip() if c.kind == RESOLVED else "",
        "replies": bool(c.replies),
        "maintenance": [{"title": _one_line(title), "until": at(until)} for title, until in c.maintenance],
    }


def render_in_layout(n: dict[str, Any], kind_template: str, layout: str = "layout") -> RenderedNotice:
    """The notice of the view ``n``: its subject from ``kind_template``'s ``subject`` macro, its
    text and HTML from the ``layout`` (``<layout>.txt``, ``<layout>.html``) around it."""
    env = get_environment()
    kind_module = env.get_template(kind_template).module
    subject = _one_line(str(kind_module.subject(n)))  # type: ignore[attr-defined]
    text = env.get_template(f"{layout}.txt").render(n=n, subject=subject)
    html = env.get_template(f"{layout}.html").render(n=n, subject=subject)
    return RenderedNotice(subject=subject, text=_tidy_text(text), html=html.strip() + "\n")


def render(content: NoticeContent) -> RenderedNotice:
    """Subject, text and HTML of one notice, in the customer's locale and zone."""
    n = _view(content)
    return render_in_layout(n, f"{n['locale']}/{n['kind']}.jinja")


def render_ticket_comment(content: NoticeContent) -> str:
    """The public reply a help desk posts on a ticket linked to an incident, in the customer's
    locale and zone: status, estimate and next update (or the resolution)."""
    n = _view(content)
    text = get_environment().get_template(f"{n['locale']}/ticket-comment.jinja").render(n=n)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line) + "\n"


# -- rendering many notices of one round -----------------------------------------------------
# Notices of one round differ mostly in who they greet: render each *shape* once, with marks
# where the personal values go, and put the values in afterwards (escaped for HTML exactly as
# the template would have). Private-use characters cannot come from the templates or survive
# a value's normalisation, so a mark is never confused with text.
_PERSONAL = {"customer_name": "\ue000c\ue001", "contact_name": "\ue000p\ue001", "unsubscribe_url": "\ue000u\ue001",
             "feedback_url": "\ue000f\ue001", "customer_status_url": "\ue000s\ue001",
             "preferences_url": "\ue000r\ue001"}
_LINKS = ("unsubscribe_url", "feedback_url", "customer_status_url", "preferences_url")
_SHAPE_FIELDS = tuple(f.name for f in dataclasses.fields(NoticeContent)
                      if f.name not in _PERSONAL and f.name not in ("now", "extra"))


class RenderCache:
    """``render`` for many notices: the same words as ``render(content)``, each shape once."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._shapes: dict[tuple, RenderedNotice] = {}

    def render(self, content: NoticeContent) -> RenderedNotice:
        values = {name: getattr(content, name) or "" for name in _PERSONAL}
        key = (tuple(getattr(content, f) for f in _SHAPE_FIELDS),
               content.now.replace(second=0, microsecond=0),      # dates shown depend on "today"
               tuple(bool(v) for v in values.values()))           # an empty name changes the words
        shape = self._shapes.get(key)
        if shape is None:
            if len(self._shapes) >= self.size:
                self._shapes.clear()
            marked = dataclasses.replace(content, **{n: (_PERSONAL[n] if v else "") for n, v in values.items()})
            shape = self._shapes[key] = render(marked)
        text, html, subject = shape.text, shape.html, shape.subject
        for name, mark in _PERSONAL.items():
            if mark in text or mark in html or mark in subject:
                plain = values[name].strip() if name in _LINKS else _one_line(values[name])
                text = text.replace(mark, plain)
                subject = subject.replace(mark, plain)
                html = html.replace(mark, str(escape(plain)))
        return RenderedNotice(subject=subject, text=text, html=html)
