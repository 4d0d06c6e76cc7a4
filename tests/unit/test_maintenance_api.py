"""The planned-maintenance HTTP API (streams/maintenance_api.py, registered by streams/web.py), run in
process on a stand-in faust app as tests/unit/test_web_promises.py runs the incidents' API: 201/202
with the event produced; 401 without the token; 400 naming the field; 404 unknown; 409 for a change
to a cancelled, completed or finished maintenance; and the status document's maintenance."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from core.settings import Settings
from domain.maintenance import decide
from schemas import MaintenanceEvent
from streams.web import register_pages
from tests.inmemory import App
from tests.unit.test_web_promises import NOW, TOKEN, Topic, View, Web, request


def iso(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


class MaintenanceView:
    def __init__(self) -> None:
        self.states_by_id = {}
        for mid, extra in (("mnt-up", []), ("mnt-run", []), ("mnt-cancelled", ["cancelled"])):
            start = -30 if mid == "mnt-run" else 60
            ev = MaintenanceEvent.model_validate({
                "event_id": f"{mid}-s", "maintenance_id": mid, "type": "scheduled", "at": iso(-60),
                "title": "DB upgrade", "components": ["api"], "starts_at": iso(start), "ends_at": iso(start + 60)})
            state = decide(None, ev).state
            for t in extra:
                state = decide(state, MaintenanceEvent.model_validate({
                    "event_id": f"{mid}-{t}", "maintenance_id": mid, "type": t, "at": iso(-10)})).state
            self.states_by_id[mid] = state

    def get(self, mid):
        return self.states_by_id.get(mid)

    def states(self):
        return list(self.states_by_id.values())

    async def sync(self):
        return True


@pytest.fixture
def api():
    app, topic, mtopic = App(), Topic(), Topic()
    register_pages(app, settings=Settings(api_token=TOKEN, secret="s"), view=View(),
                   reach=SimpleNamespace(reachable=True), events_topic=topic, readiness=lambda: (True, "ok"),
                   clock=lambda: NOW, preferences=None, feedback=None, feedback_view=None,
                   maintenance_topic=mtopic, maintenance_view=MaintenanceView())

    async def call(method: str, path: str, body: dict | None = None, token: str = TOKEN, **kwargs):
        view = app.pages[path](app, Web())
        req = request(body or {})
        req.headers["Authorization"] = f"Bearer {token}"
        return await getattr(view, method)(req, **kwargs)

    return SimpleNamespace(call=call, topic=mtopic, pages=app.pages)


WINDOW = {"title": {"en": "DB upgrade", "ja": "DB更新"}, "components": ["api"], "starts_at": iso(60),
          "ends_at": iso(120)}


async def test_schedule_answers_201_with_the_event_and_produces_it(api):
    status, event = await api.call("post", "/api/maintenance", WINDOW)
    assert status == 201 and event["type"] == "scheduled" and event["reminder_seconds"] == 3600
    assert event["maintenance_id"].startswith("mnt-") and api.topic.sent == [event]


@pytest.mark.parametrize("body, field", [
    ({**WINDOW, "ends_at": iso(30)}, "ends_at"),
    ({**WINDOW, "starts_at": iso(-120), "ends_at": iso(-60)}, "ends_at"),
    ({**WINDOW, "starts_at": "2026-11-25T03:00:00"}, "starts_at"),
    ({k: v for k, v in WINDOW.items() if k != "title"}, "title"),
])
async def test_a_bad_body_is_400_naming_the_field_and_produces_nothing(api, body, field):
    status, answer = await api.call("post", "/api/maintenance", body)
    assert status == 400 and field in answer["fields"], answer
    assert api.topic.sent == []


async def test_without_the_token_401(api):
    status, _ = await api.call("post", "/api/maintenance", WINDOW, token="wrong")
    assert status == 401 and api.topic.sent == []


async def test_scheduling_an_existing_id_is_409(api):
    status, _ = await api.call("post", "/api/maintenance", {**WINDOW, "maintenance_id": "mnt-up"})
    assert status == 409


@pytest.mark.parametrize("path, body, mid, expected", [
    ("/api/maintenance/{maintenance_id}/updates", {"starts_at": iso(70)}, "mnt-up", 202),
    ("/api/maintenance/{maintenance_id}/cancel", {}, "mnt-up", 202),
    ("/api/maintenance/{maintenance_id}/complete", {}, "mnt-run", 202),
    ("/api/maintenance/{maintenance_id}/complete", {}, "mnt-up", 409),        # not started: cancel it
    ("/api/maintenance/{maintenance_id}/updates", {"message": "x"}, "mnt-cancelled", 409),
    ("/api/maintenance/{maintenance_id}/cancel", {}, "mnt-nope", 404),
    ("/api/maintenance/{maintenance_id}/updates", {"starts_at": iso(200)}, "mnt-up", 400),  # after its end
])
async def test_changes(api, path, body, mid, expected):
    status, answer = await api.call("post", path, body, maintenance_id=mid)
    assert status == expected, answer
    assert len(api.topic.sent) == (1 if expected == 202 else 0)
    if expected == 400:
        assert answer["fields"] == ["starts_at"]


async def test_reads_and_the_status_document_show_upcoming_and_running(api):
    status, one = await api.call("get", "/api/maintenance/{maintenance_id}", maintenance_id="mnt-run")
    assert status == 200 and one["status"] == "running" and one["history"]
    status, _ = await api.call("get", "/api/maintenance/{maintenance_id}", maintenance_id="mnt-nope")
    assert status == 404
    _, listing = await api.call("get", "/api/maintenance")
    assert [m["maintenance_id"] for m in listing["maintenance"]] == ["mnt-run", "mnt-up", "mnt-cancelled"]
    _, doc = await api.call("get", "/status.json")
    assert [(m["maintenance_id"], m["status"]) for m in doc["maintenance"]] == [("mnt-run", "running"),
                                                                               ("mnt-up", "upcoming")]


async def test_the_status_page_shows_upcoming_and_running_maintenance(api):
    from notifiers.status_page import Reader, render_status_page

    _, doc = await api.call("get", "/status.json")
    doc["maintenance"][0]["title"] = "DB <upgrade>"
    page = render_status_page(doc, Reader(locale="en", zone="UTC"), NOW)
    assert "DB &lt;upgrade&gt;" in page and page.count("DB upgrade") == 1   # the cancelled one is not shown


def test_the_worker_serves_the_maintenance_routes_as_declared(tmp_path):
    """The Pipeline a worker builds (in process, no broker reached): its router serves the maintenance
    routes exactly as ROUTES declares them (tests/integration/test_routes.py checks every route)."""
    from streams.app import Pipeline
    from streams.kafka.broker import TANSU
    from streams.web import ROUTES, served_routes

    settings = Settings(broker="127.0.0.1:9", data_dir=tmp_path, api_token=TOKEN, secret="s")
    pipe = Pipeline(settings, profile=TANSU, partitions=4, mailer=None, compose=lambda job, now: b"")
    served = {path: methods - {"HEAD"} for path, methods in served_routes(pipe.app).items()
              if path.startswith("/api/maintenance")}
    declared = {r.path: r.methods for r in ROUTES if r.path.startswith("/api/maintenance")}
    assert served == declared and len(declared) == 5
