"""Nothing private on the web port: every route a worker serves is declared (streams/web.py ROUTES,
with who may read it), faust's own data views are gone, and no answer without a token holds a
contact's address — checked on the web application in-process and against a real worker."""

from __future__ import annotations

from http.client import HTTPConnection
import json
import re
from urllib.parse import urlsplit

import pytest

from core.settings import Settings
from streams.web import PUBLIC, ROUTES, SIGNED, TOKEN, served_routes
from tests.conftest import API_TOKEN, http

pytestmark = pytest.mark.integration

CUSTOMERS = [
    {"customer_id": "c-route-1", "name": "Route KK", "locale": "ja", "timezone": "Asia/Tokyo",
     "contacts": [{"email": "sato.routes@example.jp", "name": "Sato"}, {"email": "suzuki.routes@example.jp"}],
     "services": [{"component": "api", "region": "ap-northeast-1"}]},
    {"customer_id": "c-route-2", "name": "Route Ltd", "locale": "en", "timezone": "Europe/London",
     "contacts": [{"email": "noc.routes@example.co.uk", "name": "Lee"}],
     "services": [{"component": "api", "region": "eu-west-1"}]},
]
EMAILS = [c["email"] for customer in CUSTOMERS for c in customer["contacts"]]
DECLARE = {"severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"},
           "message": "We are investigating.", "components": ["api"], "update_interval_seconds": 3600}

# faust's own views (faust/web/apps/): tables, router, stats, assignment, graph, performance
FAUST_PATHS = [
    "/table/", "/table/customers/", "/table/customers/c-route-1/", "/table/ledger/", "/table/ledger/c-route-1/",
    "/table/tickets/", "/table/tickets/T-1/", "/table/incidents/", "/table/latest-rounds/",
    "/router/", "/router/customers/", "/router/customers/c-route-1/", "/router/ledger/c-route-1/",
    "/graph/", "/stats/", "/assignment/", "/performance/", "/signal/", "/help/",
]


def inventory() -> dict[str, frozenset[str]]:
    return {route.path: route.methods for route in ROUTES}


def check_served(served: dict[str, frozenset[str]]) -> None:
    """The router serves exactly the declared routes and methods (HEAD goes with every faust view)."""
    assert set(served) == set(inventory()), "served but not declared: %s; declared but not served: %s" % (
        sorted(set(served) - set(inventory())), sorted(set(inventory()) - set(served)))
    for path, methods in served.items():
        assert methods - {"HEAD"} == inventory()[path], path
    assert not any(path.startswith(("/table", "/router", "/graph", "/stats", "/assignment", "/performance"))
                   for path in served)


def test_inventory_is_well_formed():
    assert len({r.path for r in ROUTES}) == len(ROUTES)
    for route in ROUTES:
        assert route.path.startswith("/") and route.methods and route.what
        assert set(route.access.values()) <= {PUBLIC, SIGNED, TOKEN}
        assert "HEAD" not in route.methods
        if SIGNED in route.access.values():
            assert "{token}" in route.path        # a signed link carries its token in the path
        if "POST" in route.access and route.path.startswith("/api/"):
            assert route.access["POST"] == TOKEN  # the contract: every API POST needs the token
    assert {r.path for r in ROUTES} >= {"/healthz", "/readyz", "/metrics", "/api/incidents", "/status",
                                        "/status.json", "/status.atom", "/status/customer/{token}",
                                        "/openapi.json", "/unsubscribe/{token}", "/feedback/{token}"}


def test_the_web_application_serves_exactly_the_declared_routes(tmp_path):
    """In-process: the Pipeline a worker builds, its aiohttp router read after faust mounts its blueprints."""
    from streams.app import Pipeline
    from streams.kafka.broker import TANSU

    settings = Settings(broker="127.0.0.1:9", data_dir=tmp_path, api_token=API_TOKEN, secret="test-secret")
    pipe = Pipeline(settings, profile=TANSU, partitions=4, mailer=None, compose=lambda job, now: b"")
    served = served_routes(pipe.app)
    check_served(served)
    pipe.app.web.init_server()   # what the worker does when its server starts: nothing more appears
    assert served_routes(pipe.app) == served


def request(url: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def sample(path: str, incident_id: str, maintenance_id: str = "mnt-routes") -> str:
    """A concrete path of a declared route: every ``{placeholder}`` filled (a brace left in a request's
    path is not HTTP: the server refuses it before any route is chosen)."""
    concrete = (path.replace("{incident_id}", incident_id).replace("{maintenance_id}", maintenance_id)
                .replace("{customer_id}", "c-route-1").replace("{email}", "nobody%40example.invalid")
                .replace("{token}", "not.a.token"))
    assert "{" not in concrete, f"no sample value for a placeholder of {path}"
    return concrete


async def test_a_worker_with_data_serves_nothing_private_without_a_token(workers, produce, smtp):
    for customer in CUSTOMERS:
        produce("customers", customer["customer_id"], customer)
    worker = workers()
    status, body = http("POST", worker.url + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, body
    incident_id = body["incident_id"]
    await smtp.wait_for(3, timeout=30, incident=incident_id)   # tables, ledger and notices hold addresses now
    produce("ticket-events", "T-1", {"event_id": "t-1", "ticket_id": "T-1", "customer_id": "c-route-1",
                                     "type": "opened", "at": "2026-11-25T10:05:00+09:00", "subject": "API 503",
                                     "requester": {"email": "sato.routes@example.jp"}, "components": ["api"]})
    await smtp.wait_for(1, timeout=30, kind="ticket-ack")
    status, body = http("POST", worker.url + "/api/maintenance", {
        "maintenance_id": "mnt-routes", "title": "Database upgrade", "components": ["api"],
        "starts_at": "2099-01-01T01:00:00+00:00", "ends_at": "2099-01-01T02:00:00+00:00"}, token=API_TOKEN)
    assert status == 201, body
    await smtp.wait_for(3, timeout=30, kind="maintenance-scheduled")   # its ledger holds addresses too

    answers: list[tuple[str, str, int, bytes]] = []

    def probe(method: str, path: str, **kw) -> tuple[int, bytes]:
        status, raw = request(worker.url, method, path, **kw)
        answers.append((method, path, status, raw))
        return status, raw

    # faust's views: gone
    for path in FAUST_PATHS:
        for method in ("GET", "POST"):
            status, raw = probe(method, path)
            assert status in (404, 405), (method, path, status, raw[:200])
    status, raw = probe("GET", "/")
    assert status == 200 and json.loads(raw) == {"status": "OK"}   # faust's production index, nothing more

    # every declared route, as its inventory says
    for route in ROUTES:
        path = sample(route.path, incident_id)
        for method, access in route.access.items():
            if access == TOKEN:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN},
                                {"Authorization": f"Basic {API_TOKEN}"}):
                    status, raw = probe(method, path, headers={"Content-Type": "application/json", **headers},
                                        body=json.dumps(DECLARE).encode())
                    assert status == 401, (method, path, headers, status, raw[:200])
            elif access == SIGNED:
                status, raw = probe(method, path)
                # a token this worker did not sign: 404, or the contract's 403 for a feedback link
                assert status == (403 if route.path.startswith("/feedback/") else 404), (method, path, status)
            else:
                status, raw = probe(method, path)
                assert status == 200, (method, path, status, raw[:200])
    assert probe("GET", f"/api/incidents/{incident_id}")[0] == 200

    # what each route holds, read without a token: no contact's address anywhere
    pattern = re.compile("|".join(re.escape(e) for e in EMAILS + ["routes@example"]), re.I)
    for method, path, status, raw in answers:
        assert not pattern.search(raw.decode("utf-8", "replace")), (method, path, status)
    assert all(status < 500 for _, _, status, _ in answers)


async def test_the_real_worker_routes_what_the_application_declares(workers):
    """Probing a running worker: every declared path answers (not 404), every other method is refused."""
    worker = workers()
    for route in ROUTES:
        path = sample(route.path, "inc-none")
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            status, _ = request(worker.url, method, path, headers={"Authorization": "Bearer wrong"}, body=b"{}")
            if method in route.methods:
                assert status != 405, (method, path)
            else:
                assert status == 405, (method, path, status)
