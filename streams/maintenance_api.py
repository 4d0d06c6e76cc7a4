"""The planned-maintenance HTTP API, on every worker (routes declared in ``streams/web.py`` ``ROUTES``).

- ``GET /api/maintenance``: every maintenance, by start; ``GET /api/maintenance/{id}``: one, with
  its history (public, as the incidents' reads).
- ``POST /api/maintenance``: a ``scheduled`` event (``event_id``, ``maintenance_id``, ``at`` may be
  left out); 201 with the event produced; 409 when the id exists.
- ``POST /api/maintenance/{id}/updates`` | ``/cancel`` | ``/complete``: an ``updated``, ``cancelled``
  or ``completed`` event; 202 with the event. 404 for an unknown maintenance; 409 for a change to a
  cancelled or completed one, one whose window is over, or completing one not started yet.

Bodies and tokens are checked as the incidents' (``streams/web.py``: 401, 413, 400 naming the
fields, 503 when no broker takes the event). Every 404/409 comes from the view of every maintenance
(``streams/maintenance_view.py``), read up to now first, so every worker answers alike; an update
whose new window would be invalid with the one in force (an ``ends_at`` before the current start)
is a 400 naming the field, judged with the domain's own rule (``domain.maintenance.decide``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Callable

from faust import web
from domain.maintenance import MaintenanceState, change_refused, decide
from schemas import MaintenanceCancelBody, MaintenanceCompleteBody, MaintenanceSchedule, MaintenanceUpdateBody
from streams.web import Refused, _iso, answers, event_of, json_object, validated


def public(state: MaintenanceState, now: datetime, *, history: bool = False) -> dict:
    """A maintenance as the API and the status document show it."""
    out = {
        "maintenance_id": state.maintenance_id, "title": state.title, "message": state.message,
        "components": state.components, "regions": state.regions, "starts_at": _iso(state.starts_at),
        "ends_at": _iso(state.ends_at), "reminder_seconds": state.reminder_seconds, "status": state.phase(now),
        "round": state.round, "scheduled_at": _iso(state.scheduled_at), "updated_at": _iso(state.updated_at),
        "completed_at": _iso(state.completed_at), "cancelled_at": _iso(state.cancelled_at),
    }
    if history:
        out["history"] = state.history
    return out


def status_section(view, now: datetime) -> list[dict]:
    """The status document's ``maintenance``: the upcoming and running ones, by start (the status
    pages, ``notifiers/status_page.py``, show them and mark the components under maintenance)."""
    states = view.states() if view is not None else []
    return [public(s, now) for s in sorted(states, key=lambda s: s.starts_at)
            if s.phase(now) in ("upcoming", "running")]


def register_maintenance(app, *, view, produce_to, require_token: Callable, clock: Callable[[], datetime]) -> None:
    """The maintenance routes on the faust ``app``: events produced by ``produce_to(key, event)``
    (the topic ``maintenance-events``; raises ``Refused`` 503/413), reads from ``view``."""
    app.service(view)

    async def current(maintenance_id: str) -> MaintenanceState | None:
        """The maintenance from the view; when it is missing or over, first read what the changelog
        holds now (so a 404 or 409 is no older than the request)."""
        state = view.get(maintenance_id)
        if state is None or state.status != "scheduled":
            await view.sync()
            state = view.get(maintenance_id)
        return state

    @app.page("/api/maintenance")
    class MaintenanceList(web.View):
        async def get(self, request):
            now = clock()
            states = sorted(view.states(), key=lambda s: s.starts_at)
            return self.json({"maintenance": [public(s, now) for s in states]})

        @answers
        async def post(self, request):
            require_token(request)
            body = validated(MaintenanceSchedule, await json_object(request))
            event = event_of(body, clock(), maintenance_id=f"mnt-{uuid.uuid4().hex[:8]}")
            if body.maintenance_id is not None and await current(event.maintenance_id) is not None:
                raise Refused(409, f"maintenance {event.maintenance_id} already exists")
            await produce_to(event.maintenance_id, event)
            return self.json(event.model_dump(mode="json"), status=201)

    @app.page("/api/maintenance/{maintenance_id}")
    class MaintenancePage(web.View):
        @answers
        async def get(self, request, maintenance_id):
            state = await current(maintenance_id)
            if state is None:
                raise Refused(404, f"unknown maintenance {maintenance_id}")
            return self.json(public(state, clock(), history=True))

    def change_view(model, name: str):
        class Change(web.View):
            @answers
            async def post(self, request, maintenance_id):
                require_token(request)
                body = validated(model, await json_object(request))
                state = await current(maintenance_id)
                if state is None:
                    raise Refused(404, f"unknown maintenance {maintenance_id}")
                now = clock()
                refused = change_refused(state, body.at or now)
                if refused:
                    raise Refused(409, refused)
                event = event_of(body, now, maintenance_id=maintenance_id)
                decision = decide(state, event)
                if decision.error:   # the window with the one in force, or completing before the start
                    if "started" in decision.error:
                        raise Refused(409, decision.error)
                    field = "starts_at" if "starts_at" in event.model_fields_set and \
                        "ends_at" not in event.model_fields_set else "ends_at"
                    raise Refused(400, decision.error, fields=[field])
                await produce_to(maintenance_id, event)
                return self.json(event.model_dump(mode="json"), status=202)
        Change.__name__ = f"Maintenance{name.title()}"
        return Change

    app.page("/api/maintenance/{maintenance_id}/updates")(change_view(MaintenanceUpdateBody, "updates"))
    app.page("/api/maintenance/{maintenance_id}/cancel")(change_view(MaintenanceCancelBody, "cancel"))
    app.page("/api/maintenance/{maintenance_id}/complete")(change_view(MaintenanceCompleteBody, "complete"))
