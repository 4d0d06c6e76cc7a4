"""The OpenAPI 3.1 description of the worker's HTTP API (``GET /openapi.json``), generated.

The request bodies are the JSON Schemas of the same pydantic models the handlers validate with
(``schemas/incident.py``), and so is the body of a 201/202 answer (the event produced). Every route
of ``streams/web.py``'s ``ROUTES`` is here with its methods, the statuses it really answers with,
and its security (the bearer token for ``TOKEN`` routes). The repository keeps the generated
document in ``docs/openapi.json``; ``tests/unit/test_openapi.py`` holds the two equal. After a
change to a route or a model: ``python -m streams.openapi > docs/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from pydantic import BaseModel

from core.vocabulary import LOCALES, SEVERITIES, STATUSES
from schemas import IncidentDeclare, IncidentEvent, IncidentResolveBody, IncidentUpdateBody

TITLE = "Outage pipeline HTTP API"
API_VERSION = "1"
REF = "#/components/schemas/"

_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string", "description": "what is wrong, naming the failing fields"},
                         "fields": {"type": "array", "items": {"type": "string"}},
                         "retry_after_seconds": {"type": "integer"}}}
_PUBLIC_INCIDENT = {
    "type": "object",
    "required": ["incident_id", "severity", "status", "title", "components", "started_at", "seq"],
    "properties": {
        "incident_id": {"type": "string"},
        "severity": {"enum": list(SEVERITIES)},
        "status": {"enum": list(STATUSES)},
        "title": {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]},
        "message": {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]},
        "components": {"type": "array", "items": {"type": "string"}},
        "regions": {"type": "array", "items": {"type": "string"}},
        "eta": {"type": ["string", "null"], "format": "date-time"},
        "started_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
        "resolved_at": {"type": ["string", "null"], "format": "date-time"},
        "seq": {"type": "integer"},
        "next_update_at": {"type": ["string", "null"], "format": "date-time",
                           "description": "the next promised update (null once resolved)"},
        "history": {"type": "array", "items": {"type": "object"}},
        "feedback": {"type": "object"},
    },
}
_STATUS_DOCUMENT = {
    "type": "object", "required": ["generated_at", "active", "recently_resolved"],
    "properties": {"generated_at": {"type": "string", "format": "date-time"},
                   "active": {"type": "array", "items": {"$ref": REF + "PublicIncident"}},
                   "recently_resolved": {"type": "array", "items": {"$ref": REF + "PublicIncident"}},
                   "maintenance": {"type": "array", "items": {"type": "object"}}},
}

_MODELS: tuple[type[BaseModel], ...] = (IncidentDeclare, IncidentUpdateBody, IncidentResolveBody, IncidentEvent)

_LANG = {"name": "lang", "in": "query", "required": False, "schema": {"type": "string", "enum": list(LOCALES)},
         "description": "the page's language; otherwise Accept-Language, otherwise English"}
_TZ = {"name": "tz", "in": "query", "required": False, "schema": {"type": "string"},
       "description": "an IANA zone for the times; an unknown one falls back to UTC"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _html(description: str) -> dict:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _error(description: str) -> dict:
    return _json({"$ref": REF + "Error"}, description)


def _write(model: str, ok: int, what: str, *, declare: bool = False) -> dict:
    """A write of the API: a JSON body of ``model``, the bearer token, the event produced."""
    responses = {
        str(ok): _json({"$ref": REF + "IncidentEvent"}, f"{what}: the event produced to outage.incident-events"),
        "400": _error("a body that is not a JSON object, or fails validation (the fields are named)"),
        "401": _error("no bearer token, or a wrong one"),
        "409": _error("the incident already exists" if declare else "the incident is resolved"),
        "413": _error("a body over 1 MiB, or an event larger than the broker accepts"),
        "503": _error("the broker is unreachable or did not take the event; try again"),
    }
    if not declare:
        responses["404"] = _error("unknown incident")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": REF + model}}}},
            "responses": dict(sorted(responses.items()))}


_ID = {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "the signed token of a link in a notice"}

#: path -> method -> the operation (without its security, added from ROUTES)
_OPERATIONS: dict[str, dict[str, dict]] = {
    "/": {"get": {"summary": "faust's production index", "responses": {
        "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "{\"status\": \"OK\"}")}}},
    "/healthz": {"get": {"summary": "liveness", "responses": {
        "200": _json({"type": "object", "properties": {"ok": {"type": "boolean"}}}, "the worker runs")}}},
    "/readyz": {"get": {"summary": "readiness", "responses": {
        "200": _json({"$ref": REF + "Readiness"}, "joined, caught up with the customers, reading every incident"),
        "503": _json({"$ref": REF + "Readiness"}, "not ready yet; the reason says why")}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
        "200": {"description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/api/incidents": {
        "get": {"summary": "every incident", "responses": {"200": _json(
            {"type": "object", "required": ["incidents"],
             "properties": {"incidents": {"type": "array", "items": {"$ref": REF + "PublicIncident"}}}},
            "every incident, newest first")}},
        "post": {"summary": "declare an incident", **_write("IncidentDeclare", 201, "declared", declare=True)}},
    "/api/incidents/{incident_id}": {"get": {"summary": "one incident with its history", "parameters": [_ID],
                                             "responses": {"200": _json({"$ref": REF + "PublicIncident"},
                                                                        "the incident, its history and feedback"),
                                                           "404": _error("unknown incident")}}},
    "/api/incidents/{incident_id}/updates": {"post": {"summary": "an update", "parameters": [_ID],
                                                      **_write("IncidentUpdateBody", 202, "accepted")}},
    "/api/incidents/{incident_id}/resolve": {"post": {"summary": "resolve", "parameters": [_ID],
                                                      **_write("IncidentResolveBody", 202, "accepted")}},
    "/unsubscribe/{token}": {
        "get": {"summary": "RFC 8058 unsubscribe: the button", "parameters": [_TOKEN],
                "responses": {"200": _html("a button that unsubscribes"), "404": _html("a link that does not verify")}},
        "post": {"summary": "RFC 8058 one-click unsubscribe", "parameters": [_TOKEN],
                 "responses": {"200": _html("unsubscribed"), "404": _html("a link that does not verify"),
                               "503": _html("the broker did not take it; try again")}}},
    "/feedback/{token}": {
        "get": {"summary": "the feedback question", "parameters": [_TOKEN, {
            "name": "score", "in": "query", "required": False, "schema": {"type": "string"}}],
                "responses": {"200": _html("the question, the score chosen"),
                              "400": _html("a score that is not 1 to 5: the question again"),
                              "403": _html("a link that does not verify")}},
        "post": {"summary": "record a feedback answer", "parameters": [_TOKEN],
                 "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "properties": {"score": {"type": "string"}, "comment": {"type": "string"}}}}}},
                 "responses": {"200": _html("thanks"), "400": _html("a bad score or a comment over the limit"),
                               "403": _html("a link that does not verify"), "413": _html("a body over 1 MiB"),
                               "503": _html("the broker did not take it; try again")}}},
    "/status": {"get": {"summary": "the public status page", "parameters": [_LANG, _TZ],
                        "responses": {"200": _html("the status page")}}},
    "/status.json": {"get": {"summary": "the public status document", "responses": {
        "200": _json({"$ref": REF + "StatusDocument"}, "active and recently resolved incidents")}}},
    "/status.atom": {"get": {"summary": "the status page's Atom feed: one entry per round", "parameters": [_LANG],
                             "responses": {"200": {"description": "Atom (RFC 4287)", "content": {
                                 "application/atom+xml": {"schema": {"type": "string"}}}}}}},
    "/status/customer/{token}": {"get": {"summary": "one customer's status page (a signed link in every notice)",
                                         "parameters": [_TOKEN, _LANG, _TZ],
                                         "responses": {"200": _html("the customer's own services and what affects "
                                                                    "them, in its language and zone"),
                                                       "404": _html("a link that does not verify")}}},
    "/openapi.json": {"get": {"summary": "this document", "responses": {
        "200": _json({"type": "object"}, "OpenAPI 3.1")}}},
}


def _schemas() -> dict[str, Any]:
    """The models' JSON Schemas (their ``$defs`` lifted into the components), and the answers'."""
    out: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=REF + "{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    out.update({"Error": _ERROR, "PublicIncident": _PUBLIC_INCIDENT, "StatusDocument": _STATUS_DOCUMENT,
                "Readiness": {"type": "object", "properties": {"ready": {"type": "boolean"},
                                                               "reason": {"type": "string"}}}})
    return dict(sorted(out.items()))


def openapi_document(routes: Iterable, *, token_access: str = "token") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (``streams/web.py`` ``ROUTES``). A route or method
    without an operation here is an error: the description must be whole."""
    paths: dict[str, Any] = {}
    for route in routes:
        known = _OPERATIONS.get(route.path)
        if known is None:
            raise KeyError(f"no OpenAPI operation for {route.path}")
        item = {}
        for method, access in sorted(route.access.items()):
            operation = json.loads(json.dumps(known[method.lower()]))   # a copy
            operation["operationId"] = f"{method.lower()} {route.path}"
            operation["description"] = route.what
            operation["security"] = [{"bearer": []}] if access == token_access else []
            item[method.lower()] = operation
        paths[route.path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": API_VERSION,
                 "description": "Every worker serves this API on OUTAGE_WEB_PORT (docs/contract.md)."},
        "paths": paths,
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "OUTAGE_API_TOKEN"}}},
    }


def dumps(document: dict) -> str:
    """The document as the repository keeps it (``docs/openapi.json``)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":   # python -m streams.openapi > docs/openapi.json
    from streams.web import ROUTES
    sys.stdout.write(dumps(openapi_document(ROUTES)))
