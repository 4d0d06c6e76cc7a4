"""The API against its own description, on a real worker: schemathesis generates requests for
every operation of the worker's ``GET /openapi.json`` (valid and invalid ones, bounded), and
every answer must be documented (status, content type, body schema) and never a 5xx server error;
targeted requests (valid signed links, a body over 1 MiB, a resolved incident, no token) then
reach every documented status but the broker-unreachable 503s, which test_kafka_faults.py and
test_startup.py provoke. The committed docs/openapi.json is what the worker serves."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import Settings
from domain.ids import contact_key
from domain.links import PREFERENCES, contact_token, feedback_token, status_token, unsubscribe_token
from tests.conftest import API_TOKEN, http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 12   # per operation and generation mode: ~17 operations x 2 modes, a few seconds each
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# what only a broker that does not answer produces (test_kafka_faults.py, test_startup.py)
UNREACHABLE = "503"
CONTACT, REFUSED = "ops@schema.example.com", "gone@schema.example.com"
DECLARE = {"severity": "minor", "title": {"en": "Schema check", "ja": "スキーマの確認"}, "message": "Checking.",
           "components": ["api"], "update_interval_seconds": 3600}


def documented(doc: dict) -> dict[tuple[str, str], set[str]]:
    return {(method.upper(), path): set(op["responses"]) for path, item in doc["paths"].items()
            for method, op in item.items()}


def fuzz(base_url: str, incident_id: str, tokens: dict[str, str], seen: dict) -> None:
    """schemathesis over every operation (blocking: run in a thread), recording each status."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        secured = bool(operation.definition.raw.get("security"))
        fixed = {}
        if "{incident_id}" in operation.path:
            fixed["incident_id"] = incident_id
        if operation.path in tokens:
            fixed["token"] = tokens[operation.path]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # half the cases with real path values (a known incident, a link this worker signed)
            for path_parameters in ({}, fixed) if fixed else ({},):
                strategy = operation.as_strategy(mode, headers=AUTH if secured else None,
                                                 path_parameters=path_parameters or None)

                @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=strategy)
                def check(case) -> None:
                    values = [str(v) for v in (case.path_parameters or {}).values()]
                    if any(v in (".", "..") for v in values):   # a dot segment: the path names another route
                        return
                    response = case.call(base_url=base_url, session=session, timeout=30)
                    if (response.status_code == 404 and response.text.startswith("404: Not Found")
                            and any(not v or "/" in v for v in values)):
                        return   # no route matched (the router's own 404): not an answer of this operation
                    seen.setdefault(key, set()).add(str(response.status_code))
                    case.validate_response(response, checks=CHECKS)

                try:
                    check()
                except Unsatisfiable:
                    if mode is GenerationMode.POSITIVE:
                        raise
                    # nothing of this operation can be invalid (no parameters, no body)


def send(base_url: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, base_url + path, timeout=30, **kwargs)


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until it holds (the incident agent works asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


async def test_every_answer_is_documented_and_every_documented_status_occurs(workers, produce):
    worker = workers()
    base = worker.url
    status, doc = http("GET", base + "/openapi.json")
    assert status == 200
    assert doc == json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    statuses = documented(doc)

    key = Settings(secret="test-secret").verification_keys()[0]
    status, active = http("POST", base + "/api/incidents", DECLARE, token=API_TOKEN)
    assert status == 201, active
    status, resolved = http("POST", base + "/api/incidents", {**DECLARE, "incident_id": "inc-schema-done"},
                            token=API_TOKEN)
    assert status == 201, resolved
    seen: dict[tuple[str, str], set[str]] = {("GET", "/openapi.json"): {"200"}, ("POST", "/api/incidents"): {"201"}}
    tokens = {
        "/status/customer/{token}": status_token(key, "c-schema", "ja", "Asia/Tokyo", [("api", "eu-west-1")]),
        "/unsubscribe/{token}": unsubscribe_token(key, "c-schema", "k0"),
        "/feedback/{token}": feedback_token(key, "inc-schema-done", "c-schema", "k0", "en", "minor"),
        "/preferences/{token}": contact_token(key, PREFERENCES, "c-schema", contact_key(CONTACT), "ja", CONTACT),
    }
    # a customer for the preferences API, and a suppression for the API to list and lift
    produce("customers", "c-schema", {"customer_id": "c-schema", "name": "Schema KK", "locale": "ja",
                                      "contacts": [{"email": CONTACT}], "services": []})
    produce("suppressions", REFUSED, {"email": REFUSED, "at": "2026-11-25T01:00:00+00:00", "code": 550,
                                      "reason": "550 5.1.1 <address>: user unknown"})

    def record(method: str, path: str, concrete: str, expected: int, **kwargs) -> None:
        response = send(base, method, concrete, **kwargs)
        seen.setdefault((method, path), set()).add(str(response.status_code))
        assert response.status_code == expected, (method, concrete, response.status_code, response.text[:300])

    def targeted() -> None:
        one, done = active["incident_id"], "inc-schema-done"
        big = b'{"message": "' + b"x" * (1024 * 1024) + b'"}'
        wait_for(lambda: send(base, "GET", f"/api/incidents/{done}").status_code == 200, "the declared incident")
        record("POST", "/api/incidents", "/api/incidents", 409, json={**DECLARE, "incident_id": done}, headers=AUTH)
        record("POST", "/api/incidents/{incident_id}/resolve", f"/api/incidents/{done}/resolve", 202,
               json={"message": "Fixed."}, headers=AUTH)
        wait_for(lambda: send(base, "GET", f"/api/incidents/{done}").json().get("resolved_at"), "the resolution")
        for path in ("/api/incidents/{incident_id}/updates", "/api/incidents/{incident_id}/resolve"):
            record("POST", path, path.replace("{incident_id}", done), 409, json={"message": "late"}, headers=AUTH)
            concrete = path.replace("{incident_id}", one)
            record("POST", path, concrete, 202,
                   json={"status": "identified"} if path.endswith("updates") else {"message": "Done."}, headers=AUTH)
            record("POST", path, concrete, 401, json={})
            record("POST", path, concrete, 400, data=b"[1]", headers={**AUTH, "Content-Type": "application/json"})
            record("POST", path, concrete, 413, data=big, headers={**AUTH, "Content-Type": "application/json"})
            record("POST", path, path.replace("{incident_id}", "inc-nowhere"), 404, json={"message": "late"},
                   headers=AUTH)
        record("GET", "/api/incidents/{incident_id}", "/api/incidents/inc-nowhere", 404)
        record("POST", "/api/incidents", "/api/incidents", 401, json=DECLARE)
        record("POST", "/api/incidents", "/api/incidents", 400, json={"severity": "dire"}, headers=AUTH)
        record("POST", "/api/incidents", "/api/incidents", 413, data=big,
               headers={**AUTH, "Content-Type": "application/json"})
        feedback = "/feedback/" + tokens["/feedback/{token}"]
        record("GET", "/feedback/{token}", feedback + "?score=4", 200)
        record("GET", "/feedback/{token}", feedback + "?score=9", 400)
        record("GET", "/feedback/{token}", "/feedback/not.a.token", 403)
        record("POST", "/feedback/{token}", feedback, 200, data={"score": "4"})
        record("POST", "/feedback/{token}", feedback, 400, data={"score": "0"})
        record("POST", "/feedback/{token}", feedback, 413, data={"score": "4", "comment": "x" * (1024 * 1024 + 10)})
        record("POST", "/feedback/{token}", "/feedback/not.a.token", 403, data={"score": "4"})
        unsubscribe = "/unsubscribe/" + tokens["/unsubscribe/{token}"]
        for method in ("GET", "POST"):
            record(method, "/unsubscribe/{token}", unsubscribe, 200)
            record(method, "/unsubscribe/{token}", "/unsubscribe/not.a.token", 404)
        preferences = "/preferences/" + tokens["/preferences/{token}"]
        record("GET", "/preferences/{token}", preferences, 200)
        record("GET", "/preferences/{token}", "/preferences/not.a.token", 404)
        record("POST", "/preferences/{token}", preferences, 200, data={"receive": "start-and-end"})
        record("POST", "/preferences/{token}", preferences, 400, data={"receive": "sometimes"})
        record("POST", "/preferences/{token}", preferences, 413, data={"receive": "all", "x": "x" * (1024 * 1024)})
        record("POST", "/preferences/{token}", "/preferences/not.a.token", 404, data={"receive": "all"})
        record("POST", "/unsubscribe/{token}", unsubscribe, 400, data={"receive": "sometimes"})
        record("POST", "/unsubscribe/{token}", unsubscribe, 413, data={"x": "x" * (1024 * 1024)})
        ops = "/api/customers/{customer_id}/preferences"
        wait_for(lambda: send(base, "GET", ops.replace("{customer_id}", "c-schema"), headers=AUTH).status_code == 200,
                 "the customer")
        record("GET", ops, ops.replace("{customer_id}", "c-schema"), 200, headers=AUTH)
        record("GET", ops, ops.replace("{customer_id}", "c-schema"), 401)
        record("GET", ops, ops.replace("{customer_id}", "c-nowhere"), 404, headers=AUTH)
        record("PUT", ops, ops.replace("{customer_id}", "c-schema"), 202, json={"email": CONTACT, "receive": "all"},
               headers=AUTH)
        record("PUT", ops, ops.replace("{customer_id}", "c-schema"), 400, json={"email": CONTACT}, headers=AUTH)
        record("PUT", ops, ops.replace("{customer_id}", "c-schema"), 401, json={"email": CONTACT, "receive": "all"})
        record("PUT", ops, ops.replace("{customer_id}", "c-schema"), 404,
               json={"email": "stranger@schema.example.com", "receive": "all"}, headers=AUTH)
        record("PUT", ops, ops.replace("{customer_id}", "c-schema"), 413, data=big,
               headers={**AUTH, "Content-Type": "application/json"})
        wait_for(lambda: send(base, "GET", "/api/suppressions", headers=AUTH).json()["suppressions"],
                 "the suppression")
        record("GET", "/api/suppressions", "/api/suppressions", 200, headers=AUTH)
        record("GET", "/api/suppressions", "/api/suppressions", 401)
        record("DELETE", "/api/suppressions/{email}", f"/api/suppressions/{REFUSED}", 401)
        record("DELETE", "/api/suppressions/{email}", f"/api/suppressions/{REFUSED}", 202, headers=AUTH)
        record("DELETE", "/api/suppressions/{email}", "/api/suppressions/nobody@schema.example.com", 404,
               headers=AUTH)
        customer = "/status/customer/" + tokens["/status/customer/{token}"]
        record("GET", "/status/customer/{token}", customer, 200)
        record("GET", "/status/customer/{token}", "/status/customer/not.a.token", 404)
        page = send(base, "GET", customer).text
        assert "ご利用サービスの稼働状況" in page and "api" in page
        feed = feedparser.parse(send(base, "GET", "/status.atom", params={"lang": "en"}).text)
        started = send(base, "GET", f"/api/incidents/{done}").json()["started_at"]
        day = datetime.fromisoformat(started).astimezone(timezone.utc).date().isoformat()
        entries = {e.id: e.title for e in feed.entries}
        assert not feed.bozo and entries[f"tag:127.0.0.1,{day}:incident/{done}/round/2"] == "[Resolved] Schema check"
        assert f"tag:127.0.0.1,{day}:incident/{done}/round/1" in entries
        for bad in ("Mars/Olympus", "../../etc/passwd", "%00", "x" * 500):
            assert send(base, "GET", "/status", params={"tz": bad, "lang": "ja"}).status_code == 200
        maintenance(big)

    def maintenance(big: bytes) -> None:
        """Every documented status of the planned-maintenance routes (streams/maintenance_api.py)."""
        def at(seconds: float) -> str:
            return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()

        window = {"title": "Schema check", "components": ["api"], "starts_at": at(3600), "ends_at": at(7200)}
        for mid, extra in (("mnt-schema", {}), ("mnt-schema-gone", {}), ("mnt-schema-run", {"starts_at": at(-60)})):
            record("POST", "/api/maintenance", "/api/maintenance", 201, json={**window, **extra, "maintenance_id": mid},
                   headers=AUTH)
        for mid in ("mnt-schema", "mnt-schema-gone", "mnt-schema-run"):
            wait_for(lambda: send(base, "GET", f"/api/maintenance/{mid}").status_code == 200, f"maintenance {mid}")
        record("GET", "/api/maintenance", "/api/maintenance", 200)
        record("GET", "/api/maintenance/{maintenance_id}", "/api/maintenance/mnt-schema", 200)
        record("GET", "/api/maintenance/{maintenance_id}", "/api/maintenance/mnt-nowhere", 404)
        record("POST", "/api/maintenance", "/api/maintenance", 409, json={**window, "maintenance_id": "mnt-schema"},
               headers=AUTH)
        record("POST", "/api/maintenance", "/api/maintenance", 401, json=window)
        record("POST", "/api/maintenance", "/api/maintenance", 400, json={**window, "ends_at": at(1800)}, headers=AUTH)
        record("POST", "/api/maintenance", "/api/maintenance", 413, data=big,
               headers={**AUTH, "Content-Type": "application/json"})
        record("POST", "/api/maintenance/{maintenance_id}/cancel", "/api/maintenance/mnt-schema-gone/cancel", 202,
               json={}, headers=AUTH)
        wait_for(lambda: send(base, "GET", "/api/maintenance/mnt-schema-gone").json().get("status") == "cancelled",
                 "the cancellation")
        for path in ("/api/maintenance/{maintenance_id}/updates", "/api/maintenance/{maintenance_id}/cancel",
                     "/api/maintenance/{maintenance_id}/complete"):
            record("POST", path, path.replace("{maintenance_id}", "mnt-schema-gone"), 409, json={}, headers=AUTH)
            concrete = path.replace("{maintenance_id}", "mnt-schema")
            record("POST", path, concrete, 401, json={})
            record("POST", path, concrete, 400, data=b"[1]", headers={**AUTH, "Content-Type": "application/json"})
            record("POST", path, concrete, 413, data=big, headers={**AUTH, "Content-Type": "application/json"})
            record("POST", path, path.replace("{maintenance_id}", "mnt-nowhere"), 404, json={}, headers=AUTH)
        record("POST", "/api/maintenance/{maintenance_id}/updates", "/api/maintenance/mnt-schema/updates", 202,
               json={"message": "Reads pause too."}, headers=AUTH)
        record("POST", "/api/maintenance/{maintenance_id}/complete", "/api/maintenance/mnt-schema-run/complete", 202,
               json={}, headers=AUTH)

    await asyncio.to_thread(targeted)
    await asyncio.to_thread(fuzz, base, active["incident_id"], tokens, seen)

    undocumented = {k: v - statuses[k] for k, v in seen.items() if v - statuses[k]}
    assert not undocumented, undocumented
    assert not any(s.startswith("5") and s != UNREACHABLE for v in seen.values() for s in v), seen
    missing = {k: statuses[k] - seen.get(k, set()) - {UNREACHABLE} for k in statuses}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"documented but never answered: {missing}"
