"""The pages customers read, on every worker: ``GET /status`` (HTML), ``GET /status.atom`` (its
Atom feed), ``GET /status/customer/{token}`` (one customer's page, behind the signed link of every
notice) and ``GET /openapi.json`` (the API's description, ``streams/openapi.py``).

What they show is the status document of ``GET /status.json`` (``streams/web.py``: every active
and recently resolved incident of the whole pipeline, from the ``IncidentView``, and its
``maintenance`` when the document has it), so every worker answers alike. The words and the
layout are ``notifiers/status_page.py``'s; this module reads the request (``?lang=``,
``Accept-Language``, ``?tz=``), verifies a customer link, and answers.

A customer's page reads no customer record: a worker holds only the customers of the partitions
it owns (``streams/customers.py``), so the link itself carries the customer's locale, zone and
services, signed (``domain/links.py`` ``status_token``). A token that does not verify: 404, a
page in both languages, as for an unsubscribe link. The page is never cached nor indexed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable, Mapping

from faust import web

from core.settings import Settings
from domain.links import verify_status
from notifiers.status_page import (
    Reader,
    negotiate_locale,
    render_invalid_link,
    render_status_feed,
    render_status_page,
    resolve_zone,
)

# a customer's page: one customer's, so never cached by anyone and never indexed
PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer"}
PUBLIC_HEADERS = {"Cache-Control": "max-age=15"}
ATOM_TYPE = "application/atom+xml"
MAX_QUERY_CHARS = 100   # ``?lang=`` and ``?tz=``: anything longer names nothing


def reader_of(query: Mapping[str, str], headers: Mapping[str, str], *, locale: str | None = None,
              zone: str | None = None) -> Reader:
    """The reader of a request: ``?lang=`` / ``Accept-Language`` (``locale``: the default a customer
    link names), ``?tz=`` (``zone``: the customer's own, used when the query names none)."""
    lang = (query.get("lang") or "")[:MAX_QUERY_CHARS]
    accept = headers.get("Accept-Language", "") if locale is None else ""
    chosen = negotiate_locale(lang or locale, accept)
    asked = (query.get("tz") or "")[:MAX_QUERY_CHARS + 1]
    if asked:
        name, ok = resolve_zone(asked)
        return Reader(chosen, name, zone_named=ok, zone_refused="" if ok else asked[:MAX_QUERY_CHARS])
    if zone:
        name, ok = resolve_zone(zone)
        return Reader(chosen, name, zone_named=ok)
    return Reader(chosen)


def register_status_pages(app, *, settings: Settings, document: Callable[[], dict],
                          history: Callable[[str], list[dict]], clock: Callable[[], datetime],
                          openapi: Callable[[], dict]) -> None:
    """The routes of this module on the faust ``app``: ``document()`` is ``/status.json``'s dict,
    ``history(incident_id)`` an incident's history (the feed's rounds), ``openapi()`` the API's
    description."""
    keys = settings.verification_keys()
    base_url = settings.public_url

    def with_history(doc: dict) -> dict:
        def add(items: Iterable[dict]) -> list[dict]:
            return [{**item, "history": history(item["incident_id"])} for item in items]
        return {**doc, "active": add(doc.get("active") or ()),
                "recently_resolved": add(doc.get("recently_resolved") or ())}

    @app.page("/status")
    class StatusPage(web.View):
        async def get(self, request):
            reader = reader_of(request.query, request.headers)
            page = render_status_page(document(), reader, clock())
            return self.html(page, headers={**PUBLIC_HEADERS, "Content-Language": reader.locale,
                                            "Vary": "Accept-Language"})

    @app.page("/status.atom")
    class StatusFeed(web.View):
        async def get(self, request):
            reader = reader_of(request.query, request.headers)
            feed = render_status_feed(with_history(document()), reader, clock(), base_url=base_url)
            return self.bytes(feed.encode("utf-8"), content_type=ATOM_TYPE,
                              headers={**PUBLIC_HEADERS, "Content-Language": reader.locale,
                                       "Vary": "Accept-Language"})

    @app.page("/status/customer/{token}")
    class CustomerStatus(web.View):
        async def get(self, request, token):
            link = verify_status(keys, token)
            if link is None:
                page = render_invalid_link()
                return self.html(page, status=404, headers=dict(PRIVATE_HEADERS))
            reader = reader_of(request.query, request.headers, locale=link.locale, zone=link.timezone)
            page = render_status_page(document(), reader, clock(), services=link.services)
            return self.html(page, headers={**PRIVATE_HEADERS, "Content-Language": reader.locale})

    @app.page("/openapi.json")
    class OpenAPI(web.View):
        async def get(self, request):
            return self.json(openapi(), headers=dict(PUBLIC_HEADERS))
