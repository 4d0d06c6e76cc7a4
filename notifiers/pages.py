"""The web pages a contact opens from a notice: the feedback pages, and the preferences and
unsubscribe pages, rendered from Jinja templates (``notifiers/templates/feedback-page.html``,
``preferences-page.html``; their words in ``<locale>/feedback.jinja``, ``<locale>/preferences.jinja``),
autoescaped.

What a page shows is decided by the web (``streams/feedback.py``); this module only fills the
template: ``FeedbackPage`` says which page, in which language, with what chosen and typed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from core.vocabulary import DEFAULT_LOCALE, LOCALES
from notifiers.render import get_environment
from schemas.limits import MAX_COMMENT_CHARS

Mode = Literal["form", "thanks", "invalid"]
Problem = Literal["", "bad-score", "too-long", "too-large", "unavailable"]


@dataclass(frozen=True, slots=True)
class FeedbackPage:
    mode: Mode
    locale: str = DEFAULT_LOCALE
    action: str = ""              # where the form posts (relative to the page)
    score: int | None = None      # the score chosen (form), or given (thanks)
    comment: str = ""             # what the box holds
    problem: Problem = ""         # why an answer was not taken (form)
    incident_title: str = ""      # the incident, in the contact's language, when known
    limit: int = MAX_COMMENT_CHARS


def render_feedback_page(page: FeedbackPage) -> str:
    """The page's HTML (a complete document, UTF-8)."""
    locale = page.locale if page.locale in LOCALES else DEFAULT_LOCALE
    if locale != page.locale:
        page = replace(page, locale=locale)
    return get_environment().get_template("feedback-page.html").render(page=page).strip() + "\n"


PreferencesMode = Literal["form", "saved", "unsubscribe", "unsubscribed", "invalid"]
PreferencesProblem = Literal["", "bad-choice", "too-large", "unavailable"]


@dataclass(frozen=True, slots=True)
class PreferencesPage:
    """The preferences page (``form``, ``saved``) or the unsubscribe page (``unsubscribe``,
    ``unsubscribed``) of one contact: which address, in which language, what is chosen now and
    what undo goes back to (``undo_to``: the choice before, "" for none)."""

    mode: PreferencesMode
    locale: str = DEFAULT_LOCALE
    action: str = ""              # where the forms post (relative to the page)
    email: str = ""               # the address the page is about ("": an earlier link that does not name it)
    receive: str = "all"          # the choice now (form: checked; saved: what was saved)
    undo_to: str = ""             # what undo chooses (the choice before), "" when there is nothing to undo
    problem: PreferencesProblem = ""
    preferences_url: str = ""     # unsubscribed: the way to fewer emails instead


def render_preferences_page(page: PreferencesPage) -> str:
    """The page's HTML (a complete document, UTF-8)."""
    locale = page.locale if page.locale in LOCALES else DEFAULT_LOCALE
    if locale != page.locale:
        page = replace(page, locale=locale)
    return get_environment().get_template("preferences-page.html").render(page=page).strip() + "\n"
