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

from core.vocabulary import LOCALES, RECEIVE_CHOICES, SEVERITIES, STATUSES
from schemas import (
    IncidentDeclare,
    IncidentEvent,
    IncidentResolveBody,
    IncidentUpdateBody,
    MaintenanceCancelBody,
    MaintenanceCompleteBody,
    MaintenanceEvent,
    MaintenanceSchedule,
    MaintenanceUpdateBody,
)

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
_TEXT = {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]}
_PUBLIC_MAINTENANCE = {   # streams/maintenance_api.py ``public``
    "type": "object",
    "required": ["maintenance_id", "title", "components", "starts_at", "ends_at", "status", "round"],
    "properties": {
        "maintenance_id": {"type": "string"}, "title": _TEXT, "message": _TEXT,
        "components": {"type": "array", "items": {"type": "string"}},
        "regions": {"type": "array", "items": {"type": "string"}},
        "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"},
        "reminder_seconds": {"type": "integer"},
        "status": {"enum": ["upcoming", "running", "completed", "cancelled"]},
        "round": {"type": "integer"},
        "scheduled_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        "cancelled_at": {"type": ["string", "null"], "format": "date-time"},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}
_STATUS_DOCUMENT = {
    "type": "object", "required": ["generated_at", "active", "recently_resolved"],
    "properties": {"generated_at": {"type": "string", "format": "date-time"},
                   "active": {"type": "array", "items": {"$ref": REF + "PublicIncident"}},
                   "recently_resolved": {"type": "array", "items": {"$ref": REF + "PublicIncident"}},
                   "maintenance": {"type": "array", "items": {"$ref": REF + "PublicMaintenance"},
                                   "description": "the upcoming and running maintenance, by start"}},
}

_PREFERENCE_CHANGE = {"type": "object", "required": ["email", "receive"],
                      "properties": {"email": {"type": "string"}, "receive": {"enum": list(RECEIVE_CHOICES)},
                                     "customer_id": {"type": "string"}}}
_CUSTOMER_PREFERENCES = {
    "type": "object", "required": ["customer_id", "contacts"],
    "properties": {"customer_id": {"type": "string"}, "contacts": {"type": "array", "items": {
        "type": "object", "required": ["email", "receive", "unsubscribed", "suppressed"],
        "properties": {"email": {"type": "string"}, "receive": {"enum": list(RECEIVE_CHOICES)},
                       "unsubscribed": {"type": "boolean"}, "suppressed": {"type": "boolean"}}}}},
}
_SUPPRESSION = {"type": "object", "required": ["email", "at", "reason"],
                "properties": {"email": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                               "reason": {"type": "string", "description": "the SMTP code and a short text"}}}

_MODELS: tuple[type[BaseModel], ...] = (IncidentDeclare, IncidentUpdateBody, IncidentResolveBody, IncidentEvent,
                                        MaintenanceSchedule, MaintenanceUpdateBody, MaintenanceCancelBody,
                                        MaintenanceCompleteBody, MaintenanceEvent)

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


def _event_write(model: str, ok: int, what: str, *, event: str, topic: str, conflict: str,
                 unknown: str | None) -> dict:
    """A write of the API: a JSON body of ``model``, the bearer token, the ``event`` produced to
    ``topic``; 409 says ``conflict``, 404 ``unknown`` (None: a write that names no existing thing)."""
    responses = {
        str(ok): _json({"$ref": REF + event}, f"{what}: the event produced to {topic}"),
        "400": _error("a body that is not a JSON object, or fails validation (the fields are named)"),
        "401": _error("no bearer token, or a wrong one"),
        "409": _error(conflict),
        "413": _error("a body over 1 MiB, or an event larger than the broker accepts"),
        "503": _error("the broker is unreachable or did not take the event; try again"),
    }
    if unknown is not None:
        responses["404"] = _error(unknown)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": REF + model}}}},
            "responses": dict(sorted(responses.items()))}


def _write(model: str, ok: int, what: str, *, declare: bool = False) -> dict:
    """An incident write (streams/web.py)."""
    return _event_write(model, ok, what, event="IncidentEvent", topic="outage.incident-events",
                        conflict="the incident already exists" if declare else "the incident is resolved",
                        unknown=None if declare else "unknown incident")


def _maintenance_write(model: str, ok: int, what: str, *, schedule: bool = False) -> dict:
    """A maintenance write (streams/maintenance_api.py)."""
    return _event_write(model, ok, what, event="MaintenanceEvent", topic="outage.maintenance-events",
                        conflict="the maintenance already exists" if schedule else
                        "the maintenance is cancelled, completed or over, or it has not started (complete)",
                        unknown=None if schedule else "unknown maintenance")


_ID = {"name": "incident_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CUSTOMER = {"name": "customer_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MID = {"name": "maintenance_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "the signed token of a link in a notice"}

#: path -> method -> the operation (without its security, added from ROUTES)
_OPERATIONS: dict[str, dict[str, dict]] = {
    "/": {"get": {"summary": "faust's production index", "responses": {
        "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "{\"status\": \"OK\"}")}}},
    "/healthz": {"get": {"summary": "liveness", "responses": {
        "200": _json({"type": "object", "properties": {"ok": {"type": "boolean"}}}, "the worker runs")}}},
    "/readyz": {"get": {"summary": "readiness", "responses": {
        "200": _json({"$ref": REF + "Readiness"}, "joined, caught up with the customers, the suppressed addresses and the choices, reading every incident"),
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
    "/api/maintenance": {
        "get": {"summary": "every planned maintenance", "responses": {"200": _json(
            {"type": "object", "required": ["maintenance"],
             "properties": {"maintenance": {"type": "array", "items": {"$ref": REF + "PublicMaintenance"}}}},
            "every maintenance, by start")}},
        "post": {"summary": "schedule a maintenance",
                 **_maintenance_write("MaintenanceSchedule", 201, "scheduled", schedule=True)}},
    "/api/maintenance/{maintenance_id}": {"get": {
        "summary": "one maintenance with its history", "parameters": [_MID],
        "responses": {"200": _json({"$ref": REF + "PublicMaintenance"}, "the maintenance and its history"),
                      "404": _error("unknown maintenance")}}},
    "/api/maintenance/{maintenance_id}/updates": {"post": {
        "summary": "change a maintenance's window, text, scope or reminder", "parameters": [_MID],
        **_maintenance_write("MaintenanceUpdateBody", 202, "accepted")}},
    "/api/maintenance/{maintenance_id}/cancel": {"post": {
        "summary": "cancel a maintenance", "parameters": [_MID],
        **_maintenance_write("MaintenanceCancelBody", 202, "accepted")}},
    "/api/maintenance/{maintenance_id}/complete": {"post": {
        "summary": "a maintenance ended early", "parameters": [_MID],
        **_maintenance_write("MaintenanceCompleteBody", 202, "accepted")}},
    "/unsubscribe/{token}": {
        "get": {"summary": "RFC 8058 unsubscribe: the button", "parameters": [_TOKEN],
                "responses": {"200": _html("a button that unsubscribes"), "404": _html("a link that does not verify")}},
        "post": {"summary": "RFC 8058 one-click unsubscribe; with a receive field, undo (receive again)",
                 "parameters": [_TOKEN],
                 "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "properties": {"receive": {"enum": list(RECEIVE_CHOICES)}}}}}},
                 "responses": {"200": _html("unsubscribed, with undo; or received again"),
                               "400": _html("an undo with an unknown choice"),
                               "404": _html("a link that does not verify"), "413": _html("a body over 1 MiB"),
                               "503": _html("the broker did not take it; try again")}}},
    "/preferences/{token}": {
        "get": {"summary": "a contact's choice of notices (changes nothing)", "parameters": [_TOKEN],
                "responses": {"200": _html("the choices in the contact's language, naming its address, the current "
                                           "one checked, and undo"),
                              "404": _html("a link that does not verify")}},
        "post": {"summary": "record a contact's choice (all, start-and-end, none)", "parameters": [_TOKEN],
                 "requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "properties": {"receive": {"enum": list(RECEIVE_CHOICES)}}}}}},
                 "responses": {"200": _html("saved, with undo"), "400": _html("a missing or unknown choice"),
                               "404": _html("a link that does not verify"), "413": _html("a body over 1 MiB"),
                               "503": _html("the broker did not take it; try again")}}},
    "/api/customers/{customer_id}/preferences": {
        "get": {"summary": "each contact's choice, unsubscribed or not, suppressed or not", "parameters": [_CUSTOMER],
                "responses": {"200": _json({"$ref": REF + "CustomerPreferences"}, "the customer's contacts"),
                              "401": _error("no bearer token, or a wrong one"),
                              "404": _error("unknown customer"),
                              "503": _error("the customers topic could not be read; try again")}},
        "put": {"summary": "set one contact's choice (also undoes a one-click unsubscribe)", "parameters": [_CUSTOMER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": REF + "PreferenceChange"}}}},
                "responses": {"202": _json({"$ref": REF + "PreferenceChange"}, "the request was taken by the broker"),
                              "400": _error("a body that is not a JSON object, or a bad field (named)"),
                              "401": _error("no bearer token, or a wrong one"),
                              "404": _error("unknown customer, or an address that is not its contact"),
                              "413": _error("a body over 1 MiB"),
                              "503": _error("the broker or the customers topic did not answer; try again")}}},
    "/api/suppressions": {"get": {"summary": "addresses refused for good (SMTP 5xx)", "responses": {
        "200": _json({"type": "object", "required": ["suppressions"], "properties": {"suppressions": {
            "type": "array", "items": {"$ref": REF + "Suppression"}}}}, "every suppression, newest first"),
        "401": _error("no bearer token, or a wrong one")}}},
    "/api/suppressions/{email}": {"delete": {"summary": "lift a suppression", "parameters": [
        {"name": "email", "in": "path", "required": True, "schema": {"type": "string"}}], "responses": {
        "202": _json({"type": "object", "properties": {"email": {"type": "string"},
                                                       "suppressed": {"type": "boolean"}}},
                     "the lift was taken by the broker: the next round tries the address again"),
        "401": _error("no bearer token, or a wrong one"),
        "404": _error("the address is not suppressed"),
        "503": _error("the broker did not take it; try again")}}},
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
    out.update({"CustomerPreferences": _CUSTOMER_PREFERENCES, "PreferenceChange": _PREFERENCE_CHANGE,
                "Suppression": _SUPPRESSION})
    out.update({"Error": _ERROR, "PublicIncident": _PUBLIC_INCIDENT, "PublicMaintenance": _PUBLIC_MAINTENANCE,
                "StatusDocument": _STATUS_DOCUMENT,
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
