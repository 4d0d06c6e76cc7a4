"""The HTTP API refuses an estimate or a next update already past with 400 naming the field, and
produces nothing: the write views of streams/web.py, run in process on a stand-in faust app (the
rule itself is schemas/incident.py's ``promise_is_ahead``, the same on the topic and the CLI)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from core.settings import Settings
from domain.incident import decide
from schemas import IncidentEvent
from streams.web import register_pages
from tests.inmemory import App

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)   # the API's clock: the time it gives events
TOKEN = "test-token"


class Web:
    """What a faust view's ``json`` calls: the answer as (status, body)."""

    def json(self, value, *, status: int = 200, **_):
        return status, json.loads(json.dumps(value))


class View:
    """The incident view: one active incident, ``inc-1``."""

    def __init__(self) -> None:
        event = IncidentEvent.model_validate({
            "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": (NOW - timedelta(hours=1)).isoformat(),
            "severity": "major", "title": "API errors", "components": ["api"]})
        self.incidents = {"inc-1": decide(None, event, NOW - timedelta(hours=1)).state}

    def get(self, incident_id: str):
        return self.incidents.get(incident_id)

    async def sync(self) -> bool:
        return True

    def states(self):
        return list(self.incidents.values())


class Topic:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, *, key: bytes, value: bytes):
        self.sent.append(json.loads(value))

        async def acknowledged():
            return None
        return acknowledged()


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def iter_any(self):
        yield self.data


def request(body: dict):
    data = json.dumps(body).encode()
    return SimpleNamespace(headers={"Authorization": f"Bearer {TOKEN}"}, content_length=len(data), content=Body(data))


@pytest.fixture
def api():
    app, topic = App(), Topic()
    register_pages(app, settings=Settings(api_token=TOKEN, secret="s"), view=View(),
                   reach=SimpleNamespace(reachable=True), events_topic=topic, readiness=lambda: (True, "ok"),
                   clock=lambda: NOW, preferences=None, feedback=None, feedback_view=None)

    async def post(path: str, body: dict, **kwargs):
        view = app.pages[path](app, Web())
        return await view.post(request(body), **kwargs)

    return SimpleNamespace(post=post, topic=topic)


ROUTES = [
    ("/api/incidents", {"severity": "major", "title": "API errors", "components": ["api"]}, {}, 201),
    ("/api/incidents/{incident_id}/updates", {"status": "identified"}, {"incident_id": "inc-1"}, 202),
    ("/api/incidents/{incident_id}/resolve", {"message": "Fixed."}, {"incident_id": "inc-1"}, 202),
]


def iso(when: datetime) -> str:
    return when.isoformat()


@pytest.mark.parametrize("path,body,kwargs,ok", ROUTES)
@pytest.mark.parametrize("field", ["eta", "next_update_at"])
@pytest.mark.parametrize("when", [NOW - timedelta(minutes=5), NOW])
async def test_a_promise_not_after_now_is_refused_with_400_naming_the_field(api, path, body, kwargs, ok, field,
                                                                            when):
    status, answer = await api.post(path, {**body, field: iso(when)}, **kwargs)
    assert status == 400, answer
    assert answer["fields"] == [field]
    assert answer["error"].startswith(f"{field}: must be later than the event's time (2026-11-25T01:00:00Z)")
    assert api.topic.sent == []


@pytest.mark.parametrize("path,body,kwargs,ok", ROUTES)
async def test_a_promise_measured_against_the_bodys_own_at(api, path, body, kwargs, ok):
    at = NOW - timedelta(hours=1)
    status, answer = await api.post(path, {**body, "at": iso(at), "eta": iso(at - timedelta(seconds=1))}, **kwargs)
    assert (status, answer.get("fields")) == (400, ["eta"]), answer
    assert api.topic.sent == []


@pytest.mark.parametrize("path,body,kwargs,ok", ROUTES)
async def test_a_promise_ahead_is_produced(api, path, body, kwargs, ok):
    eta, nxt = NOW + timedelta(hours=2), NOW + timedelta(minutes=30)
    status, answer = await api.post(path, {**body, "eta": iso(eta), "next_update_at": iso(nxt)}, **kwargs)
    assert status == ok, answer
    (event,) = api.topic.sent
    assert datetime.fromisoformat(event["eta"]) == eta and datetime.fromisoformat(event["at"]) == NOW
