"""HTTP on every worker (faust's web server): health, readiness, metrics, the ops API, status page.

Every route the worker serves is declared in ``ROUTES`` with who may read it; faust's own web
views that serve data or internals are turned off in the app's settings (``streams/faust_app.py``), and
``served_routes`` lists what the web application really routes, so a test holds the two together.

The write endpoints produce contract records to ``outage.incident-events``; the incident agent
decides what they mean. Every incident read, and every 404/409 judgement, comes from the
``IncidentView`` (``streams/incident_view.py``): all incidents of the pipeline, whichever worker
owns their partition, so every worker answers alike.

Input is bounded: a body over 1 MiB gets 413, anything that is not a JSON object 400, a header
or token that cannot be what it claims 401/404 (403 for a feedback link: ``streams/feedback.py``);
an event the broker refuses for its size 413, a broker that does not take it 503. No input is
answered with a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faust import web
from faust.exceptions import ProducerSendError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from core.settings import Settings
from domain.incident import IncidentState
from schemas import IncidentDeclare, IncidentResolveBody, IncidentUpdateBody, describe_validation_error
from streams import metrics as M
from streams import preferences_web
from streams.feedback import FeedbackDesk
from streams.feedback_view import FeedbackView
from streams.incident_view import IncidentView
from streams.openapi import openapi_document
from streams.preferences_web import PreferencesDesk
from streams.reach import BrokerReach
from streams.status_web import register_status_pages

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024   # the contract: a body over 1 MiB gets 413
# the feedback pages: never cached (a link is one contact's), never indexed
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}

# who may call a route
PUBLIC = "public"   # anyone: status, health, readiness, metrics
SIGNED = "signed"   # anyone holding a link this worker's key signed (the token is in the path)
TOKEN = "token"     # needs ``Authorization: Bearer <OUTAGE_API_TOKEN>``


@dataclass(frozen=True)
class Route:
    path: str                     # as aiohttp names it (its resource's canonical path)
    access: Mapping[str, str]     # method -> PUBLIC | SIGNED | TOKEN (HEAD follows GET)
    what: str

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self.access)


#: Every route a worker serves, and nothing else (tests/integration/test_routes.py holds it to
#: the web application's router). None serves a customer record, a contact or the ledger.
ROUTES: tuple[Route, ...] = (
    Route("/", {"GET": PUBLIC}, "faust's production index: {\"status\": \"OK\"} and nothing else"),
    Route("/healthz", {"GET": PUBLIC}, "200 while the worker runs"),
    Route("/readyz", {"GET": PUBLIC}, "200 once joined, caught up with the customers, the suppressed addresses and the choices, and reading every incident"),
    Route("/metrics", {"GET": PUBLIC}, "Prometheus text format; no label names a customer, incident or address"),
    Route("/api/incidents", {"GET": PUBLIC, "POST": TOKEN}, "every incident (GET); declare one (POST, 201)"),
    Route("/api/incidents/{incident_id}", {"GET": PUBLIC}, "one incident with its history"),
    Route("/api/incidents/{incident_id}/updates", {"POST": TOKEN}, "an updated event (202)"),
    Route("/api/incidents/{incident_id}/resolve", {"POST": TOKEN}, "a resolved event (202)"),
    Route("/unsubscribe/{token}", {"GET": SIGNED, "POST": SIGNED},
          "RFC 8058 one-click unsubscribe: GET shows a button, POST acts (with a receive field: undo); "
          "in the contact's language, naming its address (streams/preferences_web.py)"),
    Route("/preferences/{token}", {"GET": SIGNED, "POST": SIGNED},
          "a contact's choice of notices (all, start-and-end, none) and undo: GET shows it (changes nothing), "
          "POST records it"),
    Route("/api/customers/{customer_id}/preferences", {"GET": TOKEN, "PUT": TOKEN},
          "each contact's address, choice, unsubscribed and suppressed (GET); set one contact's choice, "
          "lifting an unsubscribe (PUT, 202)"),
    Route("/api/suppressions", {"GET": TOKEN}, "addresses refused for good (SMTP 5xx): email, at, reason"),
    Route("/api/suppressions/{email}", {"DELETE": TOKEN}, "lift a suppression (202; 404 if not suppressed)"),
    Route("/feedback/{token}", {"GET": SIGNED, "POST": SIGNED},
          "a resolved notice's feedback link: GET shows the question (records nothing), POST records the answer; "
          "a token that does not verify: 403"),
    Route("/api/maintenance", {"GET": PUBLIC, "POST": TOKEN},
          "every planned maintenance (GET); schedule one (POST, 201) - streams/maintenance_api.py"),
    Route("/api/maintenance/{maintenance_id}", {"GET": PUBLIC}, "one planned maintenance with its history"),
    Route("/api/maintenance/{maintenance_id}/updates", {"POST": TOKEN}, "a maintenance's updated event (202)"),
    Route("/api/maintenance/{maintenance_id}/cancel", {"POST": TOKEN}, "a maintenance's cancelled event (202)"),
    Route("/api/maintenance/{maintenance_id}/complete", {"POST": TOKEN}, "a maintenance's completed event (202)"),
    Route("/status", {"GET": PUBLIC}, "the public status page (HTML; ?lang=, Accept-Language, ?tz=)"),
    Route("/status.json", {"GET": PUBLIC}, "the public status page (JSON)"),
    Route("/status.atom", {"GET": PUBLIC}, "the status page's Atom feed: one entry per incident round"),
    Route("/status/customer/{token}", {"GET": SIGNED},
          "one customer's page from the signed link in its notices: its own services only; a token that "
          "does not verify: 404"),
    Route("/openapi.json", {"GET": PUBLIC}, "the OpenAPI 3.1 description of these routes"),
)


def served_routes(app) -> dict[str, frozenset[str]]:
    """Path -> methods of every route the worker's aiohttp application (of the faust ``app``) serves.

    faust mounts its own blueprints when the server starts; this mounts them as that does
    (once: faust's blueprint manager applies them a single time), then reads the router."""
    server = app.web
    server.blueprints.apply(server)
    served: dict[str, set[str]] = {}
    for resource in server.web_app.router.resources():
        served.setdefault(resource.canonical, set()).update(route.method for route in resource)
    return {path: frozenset(methods) for path, methods in served.items()}


class Refused(Exception):
    """An answer other than success, with its status: raised by the helpers, answered by ``answers``."""

    def __init__(self, status: int, error: str, **extra) -> None:
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra


def answers(handler):
    """A view method whose ``Refused`` becomes its JSON answer."""
    async def run(view, request, **kwargs):
        try:
            return await handler(view, request, **kwargs)
        except Refused as refused:
            return view.json({"error": refused.error, **refused.extra}, status=refused.status)
    run.__name__ = handler.__name__
    return run


async def read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body: 413 over ``limit`` bytes, 400 when it cannot be read."""
    length = request.content_length
    if length is not None and length > limit:
        raise Refused(413, f"body is larger than {limit} bytes")
    data = bytearray()
    try:
        async for chunk in request.content.iter_any():
            data += chunk
            if len(data) > limit:
                raise Refused(413, f"body is larger than {limit} bytes")
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - a body cut short or badly chunked
        raise Refused(400, "body could not be read") from exc
    return bytes(data)


async def json_object(request, limit: int = MAX_BODY_BYTES) -> dict:
    """The request body as a JSON object: 413 over ``limit`` bytes, 400 for anything else but an object."""
    data = await read_body(request, limit)
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):   # not JSON, not UTF-8, too deep, a number too long
        raise Refused(400, "body must be a JSON object") from None
    if not isinstance(value, dict):
        raise Refused(400, "body must be a JSON object")
    return value


def validated(model, data: dict):
    """``model`` validated from ``data``; 400 naming the failing fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    except (ValueError, TypeError, RecursionError):
        raise Refused(400, "invalid body") from None


def invalid_body(exc: ValidationError) -> Refused:
    """The 400 for a validation failure: one line naming every failing field, and the fields."""
    try:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        return Refused(400, describe_validation_error(exc), fields=fields)
    except Exception:  # noqa: BLE001 - the answer is still a 400
        return Refused(400, "invalid body")


def event_of(body, at: datetime, **ids):
    """The event a validated API body stands for: ``body.to_event`` with a new ``event_id``, the
    ids of the path (or new ones) and ``at`` (now), each used only where the body left it out;
    400 naming the fields when the event refuses it (a promise not ahead of the body's ``at``)."""
    try:
        return body.to_event(event_id=f"api-{uuid.uuid4().hex[:12]}", at=at, **ids)
    except ValidationError as exc:
        raise invalid_body(exc) from None


def register_pages(app, *, settings: Settings, view: IncidentView, reach: BrokerReach, events_topic,
                   readiness: Callable[[], tuple[bool, str]], clock: Callable[[], datetime],
                   preferences: PreferencesDesk, feedback: FeedbackDesk,
                   feedback_view: FeedbackView, maintenance_topic=None, maintenance_view=None) -> None:
    """The routes of ``ROUTES`` on the faust ``app``: the write API produces to ``events_topic``,
    reads come from ``view``; ``readiness`` is the worker's (``streams/rebalance.py``, with the
    views it must have read: ``streams/app.py`` ``views_read``), ``reach``
    says whether any broker answers (``streams/reach.py``), ``preferences`` answers the preferences
    and unsubscribe pages and the ops API of preferences and suppressions
    (``streams/preferences_web.py``), ``feedback`` answers the
    feedback pages (``streams/feedback.py``) and ``feedback_view`` holds every answer
    (``streams/feedback_view.py``: the ``feedback`` of ``GET /api/incidents/{id}``); the planned
    maintenance's routes produce to ``maintenance_topic`` and read ``maintenance_view``
    (``streams/maintenance_api.py``)."""
    app.service(view)   # started with the app, stopped with it
    app.service(feedback_view)

    def authorized(request) -> bool:
        if settings.api_token is None:
            return False
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            given = token.strip().encode("utf-8")
        except UnicodeEncodeError:   # bytes that are not UTF-8 (aiohttp keeps them as surrogates)
            return False
        return hmac.compare_digest(given, settings.api_token.get_secret_value().encode())

    def require_token(request) -> None:
        if not authorized(request):
            raise Refused(401, "missing or wrong bearer token")

    async def incident(incident_id: str, *, settled: bool = False) -> IncidentState | None:
        """The incident from the view of every incident. ``settled``: when it is missing, first
        read what the changelog holds now (so a 404 or 409 is no older than the request)."""
        state = view.get(incident_id)
        if settled and (state is None or state.resolved):
            await view.sync()
            state = view.get(incident_id)
        return state

    def public(state: IncidentState, *, history: bool) -> dict:
        out = {
            "incident_id": state.incident_id, "severity": state.severity, "status": state.status,
            "title": state.title, "message": state.message, "components": state.components,
            "regions": state.regions, "eta": _iso(state.eta), "started_at": _iso(state.started_at),
            "updated_at": _iso(state.updated_at), "resolved_at": _iso(state.resolved_at),
            "seq": state.seq, "next_update_at": _iso(state.promised_at),
        }
        if history:
            out["history"] = state.history
        return out

    async def produce(event, topic=None, key: str | None = None) -> None:
        """The event on ``incident-events`` (or ``topic``, keyed by ``key``), acknowledged by the broker."""
        if not reach.reachable:   # refused now, rather than queued to go out after the client gave up
            raise Refused(503, "the broker is unreachable; try again", retry_after_seconds=5)
        try:
            sent = await (topic or events_topic).send(key=(key or event.incident_id).encode(),
                                                      value=event.model_dump_json().encode())
            await sent
        except (ProducerSendError, KafkaError) as exc:
            if isinstance(exc, MessageSizeTooLargeError) or isinstance(exc.__cause__, MessageSizeTooLargeError):
                raise Refused(413, "the event is larger than the broker accepts") from None
            log.warning("the broker did not take an incident event: %s", type(exc.__cause__ or exc).__name__)
            raise Refused(503, "the broker did not take the event; try again") from None

    @app.page("/healthz")
    class Health(web.View):
        async def get(self, request):
            return self.json({"ok": True})

    @app.page("/readyz")
    class Ready(web.View):
        async def get(self, request):
            ready, why = readiness()   # the views read included (streams/app.py views_read)
            if ready and not reach.reachable:
                ready, why = False, f"no broker has answered for {reach.silent_for():.0f}s"
            return self.json({"ready": ready, "reason": why}, status=200 if ready else 503)

    @app.page("/metrics")
    class Metrics(web.View):
        async def get(self, request):
            return self.bytes(generate_latest(M.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/api/incidents")
    class Incidents(web.View):
        async def get(self, request):
            states = sorted(view.states(), key=lambda s: s.started_at, reverse=True)
            return self.json({"incidents": [public(s, history=False) for s in states]})

        @answers
        async def post(self, request):
            require_token(request)
            body = validated(IncidentDeclare, await json_object(request))
            event = event_of(body, clock(), incident_id=f"inc-{uuid.uuid4().hex[:8]}")
            if body.incident_id is not None and await incident(event.incident_id, settled=True) is not None:
                raise Refused(409, f"incident {event.incident_id} already exists")
            await produce(event)
            return self.json(event.model_dump(mode="json"), status=201)

    @app.page("/api/incidents/{incident_id}")
    class IncidentPage(web.View):
        @answers
        async def get(self, request, incident_id):
            state = await incident(incident_id, settled=True)
            if state is None:
                raise Refused(404, f"unknown incident {incident_id}")
            return self.json({**public(state, history=True),
                              "feedback": feedback_view.summary(incident_id).as_dict()})

    def change_view(model, event_type: str, status: int):
        class Change(web.View):
            @answers
            async def post(self, request, incident_id):
                require_token(request)
                body = validated(model, await json_object(request))
                state = await incident(incident_id, settled=True)
                if state is None:
                    raise Refused(404, f"unknown incident {incident_id}")
                if state.resolved:
                    raise Refused(409, f"incident {incident_id} is resolved")
                event = event_of(body, clock(), incident_id=incident_id)
                await produce(event)
                return self.json(event.model_dump(mode="json"), status=status)
        Change.__name__ = f"Incident{event_type.title()}"
        return Change

    app.page("/api/incidents/{incident_id}/updates")(change_view(IncidentUpdateBody, "updated", 202))
    app.page("/api/incidents/{incident_id}/resolve")(change_view(IncidentResolveBody, "resolved", 202))

    if maintenance_view is not None:
        from streams.maintenance_api import register_maintenance, status_section

        register_maintenance(app, view=maintenance_view, require_token=require_token, clock=clock,
                             produce_to=lambda key, event: produce(event, maintenance_topic, key))

    def status_document() -> dict:
        states = view.states()
        active = sorted((s for s in states if not s.resolved), key=lambda s: s.started_at)
        recent = sorted((s for s in states if s.resolved), key=lambda s: s.resolved_at, reverse=True)[:10]
        doc = {"generated_at": _iso(clock()),
               "active": [public(s, history=False) for s in active],
               "recently_resolved": [public(s, history=False) for s in recent]}
        if maintenance_view is not None:   # upcoming and running maintenance (streams/maintenance_api.py)
            doc["maintenance"] = status_section(maintenance_view, clock())
        return doc

    preferences_web.register(app, preferences, web=web, headers=PAGE_HEADERS, require_token=require_token,
                             read_body=read_body, json_object=json_object, refused_type=Refused, answers=answers)

    @app.page("/feedback/{token}")
    class Feedback(web.View):
        """GET only shows the question (link scanners fetch every link); POST records the answer."""

        async def get(self, request, token):
            page = feedback.show(token, request.query.get("score"))
            return self.html(page.html, status=page.status, headers=dict(PAGE_HEADERS))

        async def post(self, request, token):
            if feedback.verify(token) is None:   # 403 before the body is read
                page = feedback.refused()
            else:
                try:
                    body = await read_body(request)
                except Refused as refused:   # 413 over 1 MiB, 400 unreadable
                    page = feedback.unreadable(token, refused.status)
                else:
                    page = await feedback.record(token, body)
            return self.html(page.html, status=page.status, headers=dict(PAGE_HEADERS))

    @app.page("/status.json")
    class StatusJson(web.View):
        async def get(self, request):
            return self.json(status_document())

    description = openapi_document(ROUTES)   # made at start: a route without its operation fails here, not in a GET
    register_status_pages(app, settings=settings, document=status_document, clock=clock,
                          history=lambda incident_id: (view.get(incident_id).history if view.get(incident_id) else []),
                          openapi=lambda: description)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None

