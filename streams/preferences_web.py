"""The preferences pages, the unsubscribe pages and the ops API of preferences and suppressions.

Routes (declared in ``streams/web.py`` ``ROUTES``; registered here by ``register``):

- ``GET /preferences/{token}`` (signed link in every notice, ``domain/links.py`` contact token):
  the contact's page, in its customer's language, naming its address: the three choices
  (``all``, ``start-and-end``, ``none``) with the current one checked, and undo back to the one
  before when there is one. It changes nothing (mail scanners fetch links).
  ``POST`` (form field ``receive``) records the choice (``streams/preferences.py``), then the
  "saved" page with undo (a form posting the choice before). A missing or unknown choice: 400,
  the form again; a body over 1 MiB: 413; a broker that does not take it: 503, the form again.
  A token that does not verify: 404 and a page in both languages, for either method.
- ``GET /unsubscribe/{token}``: the confirmation page (one button), in the contact's language,
  naming its address. ``POST`` without a ``receive`` field (RFC 8058 one-click sends
  ``List-Unsubscribe=One-Click``) unsubscribes, then the page saying what stopped, with undo (a
  form posting ``receive`` = what it received before) and the way to fewer emails instead; a
  ``POST`` with ``receive`` re-subscribes with that choice. An earlier three-field token still
  works: English, "this address". A token that does not verify: 404.
- ``GET /api/customers/{id}/preferences`` (token): each contact's ``email``, ``receive`` (its
  choice), ``unsubscribed``, ``suppressed``; 404 for an unknown customer.
- ``PUT /api/customers/{id}/preferences`` (token), body ``{"email", "receive"}``: 400 naming a bad
  field; 404 for an unknown customer or an address that is not its contact; 202 once the broker
  took the request. It also lifts a one-click unsubscribe.
- ``GET /api/suppressions`` (token): ``{"suppressions": [{"email", "at", "reason"}]}``, newest first.
- ``DELETE /api/suppressions/{email}`` (token): 202 once the broker took the lift; 404 when the
  address is not suppressed.

Every worker answers alike: the choices come from the view of the preferences topic
(``streams/preferences_view.py``), the suppressions from the view of their topic
(``streams/suppression_view.py``), the customer from ``streams/customer_finder.py``; the API reads
after ``sync`` (what the topics hold now). No answer is a 500.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import quote

from core.vocabulary import RECEIVE_ALL, RECEIVE_CHOICES, RECEIVE_NONE
from domain import preferences as P
from domain.ids import contact_key
from domain.links import PREFERENCES, UNSUBSCRIBE, ContactLink, Keys, contact_token, verify_contact
from notifiers.pages import PreferencesPage, render_preferences_page
from streams import metrics as M
from streams.customer_finder import FinderUnavailable
from streams.forms import form_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer: a page (``html``) or a JSON body (``body``), with its status."""

    status: int
    html: str = ""
    body: dict | None = None


def chosen(fields: dict[str, list[str]] | None) -> str | None:
    """The one ``receive`` value of a form when it is a known choice; None otherwise."""
    values = (fields or {}).get("receive", [])
    return values[0] if len(values) == 1 and values[0] in RECEIVE_CHOICES else None


class PreferencesDesk:
    """What the routes do. ``keys`` verify the links (the current secret first, which also signs
    the preferences link of the unsubscribed page); ``requests`` is the worker's ``Preferences``
    (``request``, ``request_unsubscribe``); ``book`` the view's ``PreferenceBook`` and ``sync``
    waits for the view; ``suppressions`` the worker's ``Suppressions``; ``find(customer_id)`` the
    customer (``CustomerFinder.find``)."""

    def __init__(self, *, keys: Keys, requests, book: P.PreferenceBook, suppressions,
                 find: Callable[[str], Awaitable], sync: Callable[[], Awaitable] | None = None,
                 reachable: Callable[[], bool] = lambda: True) -> None:
        self.keys = tuple(keys) if not isinstance(keys, (bytes, bytearray)) else (bytes(keys),)
        self.requests = requests
        self.book = book
        self.suppressions = suppressions
        self.find = find
        self._sync = sync
        self.reachable = reachable   # whether any broker answers: refused at once (503) rather than held

    async def sync(self) -> None:
        if self._sync is not None:
            await self._sync()
        await self.suppressions.sync()

    # -- the pages ---------------------------------------------------------------------------
    def _now(self, link: ContactLink) -> tuple[str, str]:
        """(choice now, what undo goes back to or "") of the link's recipient, as the view has it."""
        entry = self.book.entry(link.customer_id)
        return P.receive_of(entry, link.recipient), P.previous(entry, link.recipient) or ""

    def _page(self, mode: str, link: ContactLink, action: str, status: int = 200, **values) -> Answer:
        page = PreferencesPage(mode, link.locale, action=action, email=link.email or "", **values)
        return Answer(status, render_preferences_page(page))

    @staticmethod
    def invalid() -> Answer:
        return Answer(404, render_preferences_page(PreferencesPage("invalid")))

    def show(self, token: str) -> Answer:
        """GET /preferences/{token}: the choices, the current one checked; changes nothing."""
        link = verify_contact(self.keys, PREFERENCES, token)
        if link is None:
            return self.invalid()
        receive, before = self._now(link)
        return self._page("form", link, _action("preferences", token), receive=receive, undo_to=before)

    async def choose(self, token: str, body: bytes | None, status: int = 200) -> Answer:
        """POST /preferences/{token}: record the form's choice (``body`` None: it was not read,
        ``status`` says why: 413 or 400)."""
        link = verify_contact(self.keys, PREFERENCES, token)
        if link is None:
            return self.invalid()
        action = _action("preferences", token)
        receive, before = self._now(link)
        if body is None:
            return self._page("form", link, action, status, receive=receive, undo_to=before,
                              problem="too-large" if status == 413 else "bad-choice")
        choice = chosen(form_fields(body))
        if choice is None:
            return self._page("form", link, action, 400, receive=receive, undo_to=before, problem="bad-choice")
        if not await self._request(link, choice):
            return self._page("form", link, action, 503, receive=receive, undo_to=before, problem="unavailable")
        return self._page("saved", link, action, receive=choice, undo_to=receive if receive != choice else before)

    def confirm_unsubscribe(self, token: str) -> Answer:
        """GET /unsubscribe/{token}: one button; changes nothing."""
        link = verify_contact(self.keys, UNSUBSCRIBE, token)
        if link is None:
            return self.invalid()
        return self._page("unsubscribe", link, _action("unsubscribe", token))

    async def unsubscribe(self, token: str, body: bytes | None) -> Answer:
        """POST /unsubscribe/{token}: unsubscribe (RFC 8058), or with ``receive`` re-subscribe (undo)."""
        link = verify_contact(self.keys, UNSUBSCRIBE, token)
        if link is None:
            return self.invalid()
        action = _action("unsubscribe", token)
        fields = form_fields(body or b"") or {}
        receive, _ = self._now(link)
        if "receive" in fields:   # undo: receive again
            choice = chosen(fields)
            if choice is None:
                return self._page("unsubscribed", link, action, 400, undo_to=RECEIVE_ALL,
                                  preferences_url=self._preferences_url(link))
            if not await self._request(link, choice):
                return self._page("unsubscribed", link, action, 503, undo_to=choice,
                                  preferences_url=self._preferences_url(link))
            return self._page("saved", link, self._preferences_url(link) or action, receive=choice)
        if not await self._request(link, None):
            return Answer(503, render_preferences_page(PreferencesPage(
                "unsubscribe", link.locale, action=action, email=link.email or "")))
        undo_to = receive if receive != RECEIVE_NONE else RECEIVE_ALL
        return self._page("unsubscribed", link, action, undo_to=undo_to, preferences_url=self._preferences_url(link))

    def _preferences_url(self, link: ContactLink) -> str:
        """The preferences page of the same contact (a link that names its address only)."""
        if not link.email:
            return ""
        try:
            return _action("preferences", contact_token(self.keys[0], PREFERENCES, link.customer_id,
                                                        link.recipient, link.locale, link.email))
        except ValueError:
            return ""

    async def _produced(self, send: Callable[[], Awaitable], what: str):
        """``send()``'s result once the broker took it; None when no broker answers or it did not take it."""
        if not self.reachable():
            return None
        try:
            return await send()
        except Exception as exc:  # noqa: BLE001 - never a 500: the caller answers 503
            log.warning("the broker did not take %s: %s", what, type(exc.__cause__ or exc).__name__)
            return None

    async def _request(self, link: ContactLink, receive: str | None) -> bool:
        """The choice (None: unsubscribe) on the preferences topic; False when the broker did not take it."""
        if receive is None:
            request = await self._produced(
                lambda: self.requests.request_unsubscribe(link.customer_id, link.recipient), "an unsubscribe")
        else:
            request = await self._produced(
                lambda: self.requests.request(link.customer_id, link.recipient, receive), "a preferences request")
        if request is None:
            return False
        self.book.put(request)   # this worker shows it at once; the view reads the same record later
        M.PREFERENCE_REQUESTS.labels(receive or P.UNSUBSCRIBE).inc()
        return True

    # -- the ops API -------------------------------------------------------------------------
    async def customer_preferences(self, customer_id: str) -> Answer:
        """GET /api/customers/{id}/preferences."""
        customer = await self._customer(customer_id)
        if isinstance(customer, Answer):
            return customer
        await self.sync()
        entry = self.book.entry(customer_id)
        unsub = P.unsubscribed(entry)
        contacts = []
        for contact in customer.contacts:
            key = contact_key(contact.email)
            contacts.append({"email": contact.email, "receive": P.choice(entry, key),
                             "unsubscribed": key in unsub, "suppressed": self.suppressions.suppressed(contact.email)})
        return Answer(200, body={"customer_id": customer_id, "contacts": contacts})

    async def set_preference(self, customer_id: str, body: dict) -> Answer:
        """PUT /api/customers/{id}/preferences, ``body`` a JSON object."""
        bad = [name for name, ok in (("email", isinstance(body.get("email"), str) and "@" in body.get("email", "")),
                                     ("receive", body.get("receive") in RECEIVE_CHOICES)) if not ok]
        if bad:
            return Answer(400, body={"error": "; ".join(_WHY[name] for name in bad), "fields": bad})
        customer = await self._customer(customer_id)
        if isinstance(customer, Answer):
            return customer
        key = contact_key(body["email"])
        contact = next((c for c in customer.contacts if contact_key(c.email) == key), None)
        if contact is None:
            return Answer(404, body={"error": f"that address is not a contact of customer {customer_id}"})
        if await self._produced(lambda: self.requests.request(customer_id, key, body["receive"]),
                                "a preferences request") is None:
            return Answer(503, body={"error": "the broker did not take the request; try again",
                                     "retry_after_seconds": 5})
        self.book.put({"customer_id": customer_id, "recipient": key, "action": P.RECEIVE, "receive": body["receive"]})
        M.PREFERENCE_REQUESTS.labels(body["receive"]).inc()
        return Answer(202, body={"customer_id": customer_id, "email": contact.email, "receive": body["receive"]})

    async def _customer(self, customer_id: str):
        try:
            customer = await self.find(customer_id)
        except FinderUnavailable:
            return Answer(503, body={"error": "the customers topic could not be read; try again",
                                     "retry_after_seconds": 5})
        if customer is None:
            return Answer(404, body={"error": f"unknown customer {customer_id}"})
        return customer

    async def suppressions_listed(self) -> Answer:
        """GET /api/suppressions."""
        await self.suppressions.sync()
        return Answer(200, body={"suppressions": self.suppressions.listed()})

    async def lift(self, email: str) -> Answer:
        """DELETE /api/suppressions/{email}."""
        await self.suppressions.sync()
        if not self.suppressions.suppressed(email):
            return Answer(404, body={"error": "that address is not suppressed"})
        if not await self._produced(lambda: self.suppressions.lift(email), "a lift"):
            return Answer(503, body={"error": "the broker did not take the request; try again",
                                     "retry_after_seconds": 5})
        return Answer(202, body={"email": email, "suppressed": False})


_WHY = {"email": "email: must be the address of one of the customer's contacts",
        "receive": f"receive: must be one of {', '.join(RECEIVE_CHOICES)}"}


def _action(path: str, token: str) -> str:
    """Where a page's forms post, relative (``../<path>/<token>`` from either page), so the pages
    work behind a proxy that adds a prefix."""
    return f"../{path}/{quote(token, safe='')}"


def register(app, desk: PreferencesDesk, *, web, headers: dict, require_token: Callable, read_body: Callable,
             json_object: Callable, refused_type: type, answers: Callable) -> None:
    """The routes above on the faust ``app`` (``web``: faust's web module; the helpers are
    ``streams/web.py``'s: the token check, the bounded body readers, its ``Refused`` and ``answers``)."""

    def reply(view, answer: Answer):
        if answer.body is not None:
            return view.json(answer.body, status=answer.status)
        return view.html(answer.html, status=answer.status, headers=dict(headers))

    async def body_of(request) -> tuple[bytes | None, int]:
        try:
            return await read_body(request), 200
        except refused_type as refused:   # 413 over 1 MiB, 400 unreadable
            return None, refused.status

    @app.page("/preferences/{token}")
    class PreferencesPage(web.View):
        """GET only shows the choices (link scanners fetch every link); POST records one."""

        async def get(self, request, token):
            return reply(self, desk.show(token))

        async def post(self, request, token):
            if verify_contact(desk.keys, PREFERENCES, token) is None:   # before the body is read
                return reply(self, desk.invalid())
            body, status = await body_of(request)
            return reply(self, await desk.choose(token, body, status))

    @app.page("/unsubscribe/{token}")
    class Unsubscribe(web.View):
        """RFC 8058: GET only shows a button (mail scanners prefetch links); POST acts."""

        async def get(self, request, token):
            return reply(self, desk.confirm_unsubscribe(token))

        async def post(self, request, token):
            if verify_contact(desk.keys, UNSUBSCRIBE, token) is None:
                return reply(self, desk.invalid())
            body, status = await body_of(request)
            if body is None:   # the confirmation again, with why it was not taken
                return reply(self, Answer(status, desk.confirm_unsubscribe(token).html))
            return reply(self, await desk.unsubscribe(token, body))

    @app.page("/api/customers/{customer_id}/preferences")
    class CustomerPreferences(web.View):
        @answers
        async def get(self, request, customer_id):
            require_token(request)
            return reply(self, await desk.customer_preferences(customer_id))

        @answers
        async def put(self, request, customer_id):
            require_token(request)
            body = await json_object(request)
            return reply(self, await desk.set_preference(customer_id, body))

    @app.page("/api/suppressions")
    class SuppressionList(web.View):
        @answers
        async def get(self, request):
            require_token(request)
            return reply(self, await desk.suppressions_listed())

    @app.page("/api/suppressions/{email}")
    class Suppression(web.View):
        @answers
        async def delete(self, request, email):
            require_token(request)
            return reply(self, await desk.lift(email))
