"""HTTP on every worker (faust's web server): health, readiness, metrics, the ops API, status page.

The write endpoints produce contract records to ``outage.incident-events``; the incident
agent decides what they mean. Incident reads come from this worker's incidents table (with
several workers, each answers for the incidents on its partitions; see README).
"""

from __future__ import annotations

import hmac
import html
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from domain.incident import IncidentState
from domain.links import verify_unsubscribe
from notifiers.timefmt import format_time
from schemas import IncidentDeclare, IncidentResolveBody, IncidentUpdateBody, describe_validation_error
from schemas.common import localize
from streams import metrics as M

if TYPE_CHECKING:  # pragma: no cover
    from streams.app import Pipeline


def register_pages(pipe: "Pipeline") -> None:
    app = pipe.app
    settings = pipe.settings

    def authorized(request) -> bool:
        if settings.api_token is None:
            return False
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.api_token.get_secret_value().encode())

    def incident(incident_id: str) -> IncidentState | None:
        raw = pipe.incidents.get(incident_id)
        return IncidentState.model_validate(raw) if raw else None

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

    async def body_of(view, request, model):
        try:
            data = await request.json()
        except Exception:  # noqa: BLE001
            return None, view.json({"error": "body must be a JSON object"}, status=400)
        if not isinstance(data, dict):
            return None, view.json({"error": "body must be a JSON object"}, status=400)
        try:
            return model.model_validate(data), None
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
            return None, view.json({"error": describe_validation_error(exc), "fields": fields}, status=400)

    async def produce(event) -> None:
        await pipe.events_topic.send(key=event.incident_id.encode(), value=event.model_dump_json().encode())

    @app.page("/healthz")
    class Health(web.View):
        async def get(self, request):
            return self.json({"ok": True})

    @app.page("/readyz")
    class Ready(web.View):
        async def get(self, request):
            ready, why = pipe.readiness()
            return self.json({"ready": ready, "reason": why}, status=200 if ready else 503)

    @app.page("/metrics")
    class Metrics(web.View):
        async def get(self, request):
            return self.bytes(generate_latest(M.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/api/incidents")
    class Incidents(web.View):
        async def get(self, request):
            states = [IncidentState.model_validate(v) for v in list(pipe.incidents.values()) if v]
            states.sort(key=lambda s: s.started_at, reverse=True)
            return self.json({"incidents": [public(s, history=False) for s in states]})

        async def post(self, request):
            if not authorized(request):
                return self.json({"error": "missing or wrong bearer token"}, status=401)
            body, error = await body_of(self, request, IncidentDeclare)
            if error is not None:
                return error
            event = body.to_event(event_id=f"api-{uuid.uuid4().hex[:12]}",
                                  incident_id=f"inc-{uuid.uuid4().hex[:8]}", at=pipe.clock())
            if incident(event.incident_id) is not None:
                return self.json({"error": f"incident {event.incident_id} already exists"}, status=409)
            await produce(event)
            return self.json(event.model_dump(mode="json"), status=201)

    @app.page("/api/incidents/{incident_id}")
    class IncidentView(web.View):
        async def get(self, request, incident_id):
            state = incident(incident_id)
            if state is None:
                return self.json({"error": f"unknown incident {incident_id}"}, status=404)
            return self.json(public(state, history=True))

    def change_view(model, event_type: str, status: int):
        class Change(web.View):
            async def post(self, request, incident_id):
                if not authorized(request):
                    return self.json({"error": "missing or wrong bearer token"}, status=401)
                body, error = await body_of(self, request, model)
                if error is not None:
                    return error
                state = incident(incident_id)
                if state is None:
                    return self.json({"error": f"unknown incident {incident_id}"}, status=404)
                if state.resolved:
                    return self.json({"error": f"incident {incident_id} is resolved"}, status=409)
                event = body.to_event(incident_id=incident_id, event_id=f"api-{uuid.uuid4().hex[:12]}",
                                      at=pipe.clock())
                await produce(event)
                return self.json(event.model_dump(mode="json"), status=status)
        Change.__name__ = f"Incident{event_type.title()}"
        return Change

    app.page("/api/incidents/{incident_id}/updates")(change_view(IncidentUpdateBody, "updated", 202))
    app.page("/api/incidents/{incident_id}/resolve")(change_view(IncidentResolveBody, "resolved", 202))

    def status_document() -> dict:
        states = [IncidentState.model_validate(v) for v in list(pipe.incidents.values()) if v]
        active = sorted((s for s in states if not s.resolved), key=lambda s: s.started_at)
        recent = sorted((s for s in states if s.resolved), key=lambda s: s.resolved_at, reverse=True)[:10]
        return {"generated_at": _iso(pipe.clock()),
                "active": [public(s, history=False) for s in active],
                "recently_resolved": [public(s, history=False) for s in recent]}

    key = settings.signing_key()

    @app.page("/unsubscribe/{token}")
    class Unsubscribe(web.View):
        """RFC 8058: GET only shows a button (mail scanners prefetch links); POST acts."""

        async def get(self, request, token):
            if verify_unsubscribe(key, token) is None:
                return self.html(_page("This link is not valid.", ""), status=404)
            form = (f'<form method=post action="/unsubscribe/{html.escape(token)}">'
                    '<button type=submit>Stop these emails</button></form>')
            return self.html(_page("Stop incident notices to this address?", form))

        async def post(self, request, token):
            found = verify_unsubscribe(key, token)
            if found is None:
                return self.html(_page("This link is not valid.", ""), status=404)
            await pipe.request_unsubscribe(*found)
            return self.html(_page("You will receive no more incident notices at this address.", ""))

    @app.page("/status.json")
    class StatusJson(web.View):
        async def get(self, request):
            return self.json(status_document())

    @app.page("/status")
    class StatusPage(web.View):
        async def get(self, request):
            return self.html(render_status(status_document()))


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:560px;margin:3rem auto;padding:0 1rem}"
            "button{font-size:1rem;padding:.6rem 1.2rem}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


_STATUS_WORDS = {"investigating": "Investigating", "identified": "Cause identified",
                 "monitoring": "Fix in place, monitoring", "resolved": "Resolved"}


def _when(value: str | None) -> str:
    """A timestamp as people read it: ``21:11 UTC on 25 Nov``."""
    if not value:
        return ""
    return format_time(datetime.fromisoformat(value), "UTC", "en", with_date=True)


def render_status(doc: dict) -> str:
    def card(inc: dict) -> str:
        e = html.escape
        scope = ", ".join(inc["components"]) + (" in " + ", ".join(inc["regions"]) if inc["regions"] else "")
        rows = [f"<h2>{e(localize(inc['title'], 'en'))}</h2>",
                f"<p class=status>{e(_STATUS_WORDS.get(inc['status'], inc['status']))}</p>",
                f"<p>{e(localize(inc['message'], 'en'))}</p>",
                f"<p class=meta>Affected: {e(scope)} · Since {e(_when(inc['started_at']))}</p>"]
        if inc.get("eta"):
            rows.append(f"<p class=meta>Recovery estimate: {e(_when(inc['eta']))}</p>")
        if inc.get("next_update_at"):
            rows.append(f"<p class=meta>Next update by {e(_when(inc['next_update_at']))}</p>")
        if inc.get("resolved_at"):
            rows.append(f"<p class=meta>Resolved at {e(_when(inc['resolved_at']))}</p>")
        return "<section>" + "".join(rows) + "</section>"

    active = "".join(card(i) for i in doc["active"]) or "<p class=ok>All systems operating normally.</p>"
    resolved = "".join(card(i) for i in doc["recently_resolved"]) or "<p class=meta>None.</p>"
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1"><meta http-equiv=refresh content=30>
<title>Service status</title><style>
body{{font-family:system-ui,sans-serif;max-width:760px;margin:2rem auto;padding:0 1rem;color:#1f2933}}
section{{border:1px solid #d9e2ec;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}}
h2{{margin:.2rem 0;font-size:1.15rem}} .status{{font-weight:600;color:#b44d12}} .meta{{color:#52606d;font-size:.9rem}}
.ok{{padding:1rem;background:#e3f9e5;border-radius:8px}}</style></head><body>
<h1>Service status</h1><h3>Current incidents</h3>{active}<h3>Recently resolved</h3>{resolved}
<p class=meta>Updated {html.escape(_when(doc['generated_at']))}</p></body></html>"""
