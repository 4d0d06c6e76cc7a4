"""Strict at the door: an unknown field in an API body or an input record is refused naming it
(400 from the API, a one-line ``RecordError`` for a dead letter on the topic), an update that
changes nothing is refused, and the records the project itself writes still parse."""

from __future__ import annotations

import json

import pytest

from devtools.sample import generate_customers
from schemas import Customer, IncidentEvent, RecordError, TicketEvent, parse_record
from schemas.customer import parse_customer
from schemas.incident import _CHANGEABLE, IncidentFields
from tests.unit.test_web_promises import ROUTES, api  # noqa: F401 - the API fixture

DECLARED = {"event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": "2026-11-25T10:00:00+09:00",
            "severity": "major", "title": "API errors", "components": ["api"]}
CUSTOMER = {"customer_id": "c-1", "name": "Example KK", "contacts": [{"email": "ops@example.jp", "name": "Sato"}],
            "services": [{"component": "api", "region": "ap-northeast-1"}]}
TICKET = {"event_id": "t-1", "ticket_id": "T-1", "customer_id": "c-1", "type": "opened",
          "at": "2026-11-25T10:05:00+09:00", "subject": "503", "requester": {"email": "dev@example.jp"}}


def refused(model, data: dict) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse_record(model, json.dumps(data))
    return info.value


async def test_the_api_refuses_a_misspelt_message_with_400_naming_it(api):  # noqa: F811
    status, answer = await api.post("/api/incidents/{incident_id}/updates", {"mesage": "Found it."},
                                    incident_id="inc-1")
    assert status == 400, answer
    assert answer["fields"] == ["mesage"] and answer["error"] == "mesage: unknown field"
    assert api.topic.sent == []


@pytest.mark.parametrize("path,body,kwargs,ok", ROUTES)
async def test_every_write_body_refuses_an_unknown_field(api, path, body, kwargs, ok):  # noqa: F811
    status, answer = await api.post(path, {**body, "severity_level": "high"}, **kwargs)
    assert (status, answer["fields"]) == (400, ["severity_level"]), answer
    assert api.topic.sent == []
    status, answer = await api.post(path, body, **kwargs)   # the same body without it: accepted
    assert status == ok, answer


@pytest.mark.parametrize("body", [{}, {"event_id": "e-9"}, {"at": "2026-11-25T01:00:00Z", "type": "updated"}])
async def test_an_update_that_changes_nothing_is_refused(api, body):  # noqa: F811
    status, answer = await api.post("/api/incidents/{incident_id}/updates", body, incident_id="inc-1")
    assert status == 400 and answer["error"].startswith("changes nothing"), answer
    assert api.topic.sent == []


async def test_a_body_naming_another_incident_is_refused(api):  # noqa: F811
    status, answer = await api.post("/api/incidents/{incident_id}/updates",
                                    {"incident_id": "inc-2", "status": "identified"}, incident_id="inc-1")
    assert (status, answer["fields"]) == (400, ["incident_id"]), answer
    status, answer = await api.post("/api/incidents/{incident_id}/updates",
                                    {"incident_id": "inc-1", "status": "identified"}, incident_id="inc-1")
    assert status == 202, answer


def test_an_update_record_that_changes_nothing_is_a_dead_letter_reason():
    error = refused(IncidentEvent, {**{k: DECLARED[k] for k in ("event_id", "incident_id", "at")}, "type": "updated"})
    assert str(error).startswith("changes nothing") and "\n" not in str(error)


def test_every_incident_field_counts_as_a_change():
    assert _CHANGEABLE == set(IncidentFields.model_fields)


@pytest.mark.parametrize("model,data,path", [
    (IncidentEvent, {**DECLARED, "mesage": "x"}, "mesage"),
    (Customer, {**CUSTOMER, "notes": "VIP"}, "notes"),
    (Customer, {**CUSTOMER, "contacts": [{"email": "ops@example.jp", "phone": "1"}]}, "contacts.0.phone"),
    (Customer, {**CUSTOMER, "services": [{"component": "api", "region": "r", "plan": "x"}]}, "services.0.plan"),
    (TicketEvent, {**TICKET, "priority": "high"}, "priority"),
    (TicketEvent, {**TICKET, "requester": {"email": "dev@example.jp", "tel": "1"}}, "requester.tel"),
])
def test_an_unknown_field_in_a_record_is_refused_naming_it(model, data, path):
    error = refused(model, data)
    assert (error.field, error.reason) == (path, "unknown field")


@pytest.mark.parametrize("data", [{**CUSTOMER, "notes": "VIP"},
                                  {**CUSTOMER, "contacts": [{"email": "ops@example.jp", "phone": "1"}]},
                                  {**CUSTOMER, "services": [{"component": "api", "region": "r", "plan": "x"}]}])
def test_the_customers_short_way_refuses_what_the_model_refuses(data):
    with pytest.raises(RecordError) as info:
        parse_customer(json.dumps(data).encode())
    assert str(info.value) == str(refused(Customer, data))


def test_records_the_project_writes_still_parse():
    for record in generate_customers(50, seed=5):
        customer = Customer.model_validate(record)
        assert parse_record(Customer, customer.model_dump_json()) == customer
    event = parse_record(IncidentEvent, json.dumps(DECLARED))
    assert parse_record(IncidentEvent, event.model_dump_json()) == event
    update = parse_record(IncidentEvent, json.dumps({**DECLARED, "type": "updated", "title": None,
                                                     "severity": "minor"} | {"title": "Still"}))
    assert parse_record(IncidentEvent, update.model_dump_json()) == update
    ticket = parse_record(TicketEvent, json.dumps(TICKET))
    assert parse_record(TicketEvent, ticket.model_dump_json()) == ticket
