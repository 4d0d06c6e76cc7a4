"""Unit tests of the record models in ``schemas`` (no broker, no network)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from schemas import (
    LIMITS,
    MAX_COMMENT_CHARS,
    MAX_ID_BYTES,
    MAX_LABEL_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_RECORD_BYTES,
    MAX_SUBJECT_CHARS,
    MAX_TITLE_CHARS,
    Customer,
    DeadLetter,
    IncidentDeclare,
    IncidentEvent,
    IncidentResolveBody,
    IncidentUpdateBody,
    NoticeRecord,
    RecordError,
    TicketEvent,
    TicketUpdate,
    describe_validation_error,
    export_json_schemas,
    localize,
    normalize_locale,
    parse_record,
    to_json_bytes,
)

# The examples of the contract (docs/contract.md), verbatim.
CUSTOMER_EXAMPLE = """{"customer_id": "c-42", "name": "Example KK", "locale": "ja", "timezone": "Asia/Tokyo",
 "tier": "enterprise",
 "contacts": [{"email": "ops@example.jp", "name": "Sato"}],
 "services": [{"component": "api", "region": "ap-northeast-1"},
              {"component": "dashboard", "region": "ap-northeast-1"}]}"""

INCIDENT_EXAMPLE = """{"event_id": "e-1", "incident_id": "inc-7", "type": "declared",
 "at": "2026-11-25T10:00:00+09:00", "severity": "major", "status": "investigating",
 "title": {"en": "API errors", "ja": "APIのエラー"},
 "message": {"en": "We are investigating elevated error rates.", "ja": "エラー率の上昇を調査しています。"},
 "components": ["api"], "regions": ["ap-northeast-1"],
 "eta": null, "next_update_at": null, "update_interval_seconds": null}"""

TICKET_EXAMPLE = """{"event_id": "t-1", "ticket_id": "T-100", "customer_id": "c-42", "type": "opened",
 "at": "2026-11-25T10:05:00+09:00", "subject": "API returns 503",
 "requester": {"email": "dev@example.jp", "name": "Suzuki"},
 "components": ["api"]}"""

JST = timezone(timedelta(hours=9))


def record(example: str, **changes) -> str:
    """The example with some fields replaced (a value of ... removes the field)."""
    data = json.loads(example)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data, ensure_ascii=False)


def rejected(model, raw) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse_record(model, raw)
    error = info.value
    assert "\n" not in str(error)
    return error


# --- the contract's examples ---------------------------------------------------------------


def test_customer_example_parses():
    customer = parse_record(Customer, CUSTOMER_EXAMPLE.encode())
    assert customer.customer_id == "c-42"
    assert customer.locale == "ja"
    assert customer.timezone == "Asia/Tokyo"
    assert customer.tier == "enterprise"
    assert customer.contacts[0].email == "ops@example.jp"
    assert customer.contacts[0].name == "Sato"
    assert [(s.component, s.region) for s in customer.services] == [
        ("api", "ap-northeast-1"), ("dashboard", "ap-northeast-1")]


def test_incident_example_parses():
    event = parse_record(IncidentEvent, INCIDENT_EXAMPLE.encode())
    assert event.type == "declared"
    assert event.at == datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
    assert event.at.utcoffset() == timedelta(hours=9)
    assert event.severity == "major" and event.status == "investigating"
    assert event.title == {"en": "API errors", "ja": "APIのエラー"}
    assert event.components == ["api"] and event.regions == ["ap-northeast-1"]
    assert event.eta is None and event.next_update_at is None and event.update_interval_seconds is None


def test_ticket_example_parses():
    ticket = parse_record(TicketEvent, TICKET_EXAMPLE.encode())
    assert ticket.type == "opened"
    assert ticket.subject == "API returns 503"
    assert ticket.requester.email == "dev@example.jp"
    assert ticket.components == ["api"]


def test_an_unknown_field_is_refused_naming_it():
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, future_field={"x": 1}))
    assert error.field == "future_field" and str(error) == "future_field: unknown field"


# --- rejections: each names the field ------------------------------------------------------


def test_unknown_type_is_rejected():
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, type="escalated"))
    assert error.field == "type"
    assert "type:" in str(error)
    assert rejected(TicketEvent, record(TICKET_EXAMPLE, type="reopened")).field == "type"


def test_naive_timestamp_is_rejected():
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, at="2026-11-25T10:00:00"))
    assert error.field == "at"
    assert str(error) == "at: timestamp needs a UTC offset, e.g. 2026-11-25T10:00:00+09:00"


def test_naive_datetime_object_is_rejected():
    with pytest.raises(pydantic.ValidationError) as info:
        NoticeRecord(notice_id="<n@x>", incident_id="inc-7", customer_id="c-42", email="a@example.com",
                     kind="progress", seq=1, sent_at=datetime(2026, 11, 25, 10, 0))
    assert describe_validation_error(info.value) == (
        "sent_at: timestamp needs a UTC offset, e.g. 2026-11-25T10:00:00+09:00")


def test_impossible_timestamp_is_rejected():
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, at="2026-02-30T10:00:00Z"))
    assert error.field == "at"
    assert "invalid timestamp" in str(error)


def test_numeric_timestamp_is_rejected():
    error = rejected(TicketEvent, record(TICKET_EXAMPLE, at=1764032700))
    assert error.field == "at"
    assert "RFC 3339" in str(error)


def test_bad_email_is_rejected():
    error = rejected(Customer, record(CUSTOMER_EXAMPLE, contacts=[{"email": "ops.example.jp"}]))
    assert error.field == "contacts.0.email"
    assert str(error).startswith("contacts.0.email: invalid email address")
    error = rejected(TicketEvent, record(TICKET_EXAMPLE, requester={"email": "dev@"}))
    assert error.field == "requester.email"


def test_unknown_timezone_is_rejected():
    error = rejected(Customer, record(CUSTOMER_EXAMPLE, timezone="Mars/Base"))
    assert error.field == "timezone"
    assert str(error) == "timezone: unknown timezone 'Mars/Base'"
    assert rejected(Customer, record(CUSTOMER_EXAMPLE, timezone="America")).field == "timezone"


@pytest.mark.parametrize("field", ["components", "title", "severity"])
def test_declared_without_required_field_is_rejected(field):
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, **{field: ...}))
    assert error.field == field
    assert f"{field}: field required" in str(error)


def test_declare_body_without_required_fields_names_each():
    with pytest.raises(ValueError) as info:
        IncidentDeclare.model_validate({"message": "hi"})
    fields = {error["loc"][0] for error in info.value.errors()}
    assert fields == {"severity", "title", "components"}


def test_ticket_opened_without_requester_is_rejected():
    error = rejected(TicketEvent, record(TICKET_EXAMPLE, requester=...))
    assert error.field == "requester"
    assert "requester: field required" in str(error)
    assert rejected(TicketEvent, record(TICKET_EXAMPLE, subject=...)).field == "subject"


def test_ticket_closed_needs_no_subject_or_requester():
    ticket = parse_record(TicketEvent, record(TICKET_EXAMPLE, type="closed", subject=..., requester=..., components=...))
    assert ticket.requester is None and ticket.components is None


def test_empty_components_are_rejected():
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, components=[]))
    assert error.field == "components"
    assert "components cannot be empty" in str(error)
    update = {"event_id": "e-2", "incident_id": "inc-7", "type": "updated", "at": "2026-11-25T10:30:00+09:00",
              "components": []}
    error = rejected(IncidentEvent, json.dumps(update))
    assert str(error) == "components: components cannot be empty"


def test_update_cannot_clear_required_fields():
    update = {"event_id": "e-2", "incident_id": "inc-7", "type": "updated", "at": "2026-11-25T10:30:00+09:00",
              "severity": None}
    assert rejected(IncidentEvent, json.dumps(update)).field == "severity"


def test_an_update_cannot_resolve():
    # it would read "resolved" while the incident stays open and its notices go on
    update = {"event_id": "e-2", "incident_id": "inc-7", "type": "updated", "at": "2026-11-25T10:30:00+09:00",
              "status": "resolved"}
    error = rejected(IncidentEvent, json.dumps(update))
    assert error.field == "status" and "send a resolved event" in str(error)
    with pytest.raises(pydantic.ValidationError, match="send a resolved event"):
        IncidentUpdateBody.model_validate({"status": "resolved"})
    assert IncidentUpdateBody.model_validate({"status": "monitoring"}).status == "monitoring"


def test_wrong_types_are_rejected():
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, incident_id=7)).field == "incident_id"
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, event_id="")).field == "event_id"
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, update_interval_seconds="60")).field == "update_interval_seconds"
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, update_interval_seconds=0)).field == "update_interval_seconds"
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, severity="sev1")).field == "severity"
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, title="")).field == "title"


def test_control_characters_in_names_are_rejected():
    error = rejected(Customer, record(CUSTOMER_EXAMPLE, name="Example\r\nBcc: x@evil.example"))
    assert error.field == "name"
    error = rejected(Customer, record(CUSTOMER_EXAMPLE, contacts=[{"email": "a@example.jp", "name": "A\nB"}]))
    assert error.field == "contacts.0.name"
    assert rejected(IncidentEvent, record(INCIDENT_EXAMPLE, title={"en": "a\nb"})).field == "title"


def test_several_errors_make_one_line():
    raw = record(CUSTOMER_EXAMPLE, timezone="Mars/Base", services=[{"component": "api"}])
    error = rejected(Customer, raw)
    assert str(error) == "timezone: unknown timezone 'Mars/Base'; services.0.region: field required"
    assert error.field == "timezone"
    assert error.reason == "unknown timezone 'Mars/Base'"


def test_invalid_json_is_rejected():
    error = rejected(Customer, b'{"customer_id": }')
    assert str(error).startswith("invalid JSON at line 1 column 17: ")
    assert error.field is None
    assert "invalid JSON" in str(rejected(Customer, b'{"n": NaN}'))


def test_non_object_json_is_rejected():
    assert str(rejected(Customer, b"[1, 2]")) == "expected a JSON object, got an array"
    assert str(rejected(Customer, b'"c-42"')) == "expected a JSON object, got a string"
    assert str(rejected(Customer, b"null")) == "expected a JSON object, got null"


def test_oversize_record_is_rejected():
    raw = record(CUSTOMER_EXAMPLE, name="x" * MAX_RECORD_BYTES).encode()
    error = rejected(Customer, raw)
    assert f"{len(raw):,} bytes" in str(error)
    assert "1,000,000" in str(error)


def test_tombstone_invalid_utf8_and_empty_are_rejected():
    assert "tombstone" in str(rejected(Customer, None))
    assert str(rejected(Customer, b'{"name": "\xff"}')) == "invalid UTF-8 at byte 10"
    assert str(rejected(Customer, b"  ")) == "record is empty"


# --- length limits (schemas/limits.py) -----------------------------------------------------


def _customer(**changes) -> str:
    return record(CUSTOMER_EXAMPLE, **changes)


def _contact_name(name: str) -> str:
    return record(CUSTOMER_EXAMPLE, contacts=[{"email": "ops@example.jp", "name": name}])


def _service(component: str) -> str:
    return record(CUSTOMER_EXAMPLE, services=[{"component": component, "region": "ap-northeast-1"}])


def _requester_name(name: str) -> str:
    return record(TICKET_EXAMPLE, requester={"email": "dev@example.jp", "name": name})


# (model, the raw record with a text of n characters, the failing field, its limit)
BOUNDED = {
    "title": (IncidentEvent, lambda n: record(INCIDENT_EXAMPLE, title="t" * n), "title", MAX_TITLE_CHARS),
    "title-ja": (IncidentEvent, lambda n: record(INCIDENT_EXAMPLE, title={"en": "API errors", "ja": "障" * n}),
                 "title", MAX_TITLE_CHARS),
    "message": (IncidentEvent, lambda n: record(INCIDENT_EXAMPLE, message="m" * n), "message", MAX_MESSAGE_CHARS),
    "message-en": (IncidentEvent, lambda n: record(INCIDENT_EXAMPLE, message={"en": "m" * n, "ja": "調査中"}),
                   "message", MAX_MESSAGE_CHARS),
    "customer-name": (Customer, lambda n: _customer(name="n" * n), "name", MAX_NAME_CHARS),
    "contact-name": (Customer, lambda n: _contact_name("佐" * n), "contacts.0.name", MAX_NAME_CHARS),
    "component": (Customer, lambda n: _service("c" * n), "services.0.component", MAX_LABEL_CHARS),
    "tier": (Customer, lambda n: _customer(tier="t" * n), "tier", MAX_LABEL_CHARS),
    "ticket-subject": (TicketEvent, lambda n: record(TICKET_EXAMPLE, subject="s" * n), "subject", MAX_SUBJECT_CHARS),
    "requester-name": (TicketEvent, lambda n: _requester_name("r" * n), "requester.name", MAX_NAME_CHARS),
}


def test_the_limits_are_the_documented_ones():
    assert (MAX_TITLE_CHARS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_SUBJECT_CHARS, MAX_LABEL_CHARS,
            MAX_ID_BYTES) == (200, 5_000, 200, 500, 200, 256)
    assert sorted(LIMITS.values()) == sorted([200, 5_000, 200, 500, 200, 256, 2_000])


def test_the_readme_states_the_limits_of_schemas_limits():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text(encoding="utf-8")
    bullet = readme.split("- **Length limits**", 1)[1].split("\n- ", 1)[0].split("\n\n", 1)[0]
    bullet = " ".join(bullet.split())
    for text in (f"title {MAX_TITLE_CHARS} per locale", f"message {MAX_MESSAGE_CHARS:,} per locale",
                 f"name {MAX_NAME_CHARS}", f"ticket subject {MAX_SUBJECT_CHARS}", f"tier {MAX_LABEL_CHARS}",
                 f"{MAX_ID_BYTES} bytes", f"feedback comment {MAX_COMMENT_CHARS:,}"):
        assert text in bullet, text


@pytest.mark.parametrize("case", BOUNDED)
def test_a_text_at_its_limit_is_accepted(case):
    model, make, _, limit = BOUNDED[case]
    parse_record(model, make(limit))


@pytest.mark.parametrize("case", BOUNDED)
def test_a_text_over_its_limit_is_an_error_naming_the_field_and_the_limit(case):
    model, make, field, limit = BOUNDED[case]
    error = rejected(model, make(limit + 1))
    assert error.field == field
    assert str(error).startswith(f"{field}: too long")
    assert f"{limit + 1:,} characters, at most {limit:,}" in str(error)


def test_a_localized_text_over_its_limit_names_the_locale():
    error = rejected(IncidentEvent, record(INCIDENT_EXAMPLE, title={"en": "API errors", "ja": "障" * 2_000}))
    assert str(error) == "title: too long ('ja' text): 2,000 characters, at most 200"


def test_names_are_measured_after_stripping():
    padded = "  " + "n" * MAX_NAME_CHARS + "  "
    assert parse_record(Customer, _customer(name=padded)).name == "n" * MAX_NAME_CHARS


def test_ids_stay_at_most_256_bytes():
    assert parse_record(Customer, _customer(customer_id="c" * MAX_ID_BYTES)).customer_id == "c" * MAX_ID_BYTES
    assert "256" in str(rejected(Customer, _customer(customer_id="c" * (MAX_ID_BYTES + 1))))
    assert "256 bytes" in str(rejected(Customer, _customer(customer_id="顧" * 86)))  # 258 bytes, 86 characters


@pytest.mark.parametrize("body", [IncidentDeclare, IncidentUpdateBody, IncidentResolveBody])
def test_api_bodies_have_the_same_limits(body):
    data = {"severity": "major", "title": "x" * 2_000, "components": ["api"]}
    with pytest.raises(pydantic.ValidationError) as info:
        body.model_validate(data)
    [error] = info.value.errors()
    assert error["loc"] == ("title",) and "at most 200" in error["msg"]
    with pytest.raises(pydantic.ValidationError) as info:
        body.model_validate({"message": "m" * (MAX_MESSAGE_CHARS + 1)})
    assert [e["loc"] for e in info.value.errors()] == [("message",)]


def test_the_json_schemas_state_the_limits():
    incident = IncidentEvent.model_json_schema()
    for name, limit in (("title", MAX_TITLE_CHARS), ("message", MAX_MESSAGE_CHARS)):
        string, by_locale = incident["properties"][name]["anyOf"][:2]
        assert string["maxLength"] == limit and by_locale["additionalProperties"]["maxLength"] == limit
    customer = Customer.model_json_schema()
    assert customer["properties"]["name"]["maxLength"] == MAX_NAME_CHARS
    assert customer["$defs"]["Contact"]["properties"]["name"]["anyOf"][0]["maxLength"] == MAX_NAME_CHARS
    assert customer["$defs"]["Service"]["properties"]["region"]["maxLength"] == MAX_LABEL_CHARS
    ticket = TicketEvent.model_json_schema()
    assert ticket["properties"]["subject"]["anyOf"][0]["maxLength"] == MAX_SUBJECT_CHARS


# --- normalization and defaults ------------------------------------------------------------


@pytest.mark.parametrize("given, expected", [
    ("ja", "ja"), ("JA", "ja"), ("ja-JP", "ja"), ("ja_jp", "ja"), ("en-US", "en"),
    ("fr", "en"), ("", "en"), (None, "en"), (42, "en"),
])
def test_normalize_locale(given, expected):
    assert normalize_locale(given) == expected


def test_customer_locale_falls_back_to_english():
    assert parse_record(Customer, record(CUSTOMER_EXAMPLE, locale="fr")).locale == "en"
    assert parse_record(Customer, record(CUSTOMER_EXAMPLE, locale="ja-JP")).locale == "ja"
    defaults = parse_record(Customer, '{"customer_id": "c-1", "name": "One"}')
    assert (defaults.locale, defaults.timezone, defaults.contacts, defaults.services) == ("en", "UTC", [], [])


def test_contacts_are_normalized_and_deduplicated():
    contacts = [{"email": "Ops@Example.JP", "name": ""}, {"email": "ops@example.jp", "name": "again"}]
    customer = parse_record(Customer, record(CUSTOMER_EXAMPLE, contacts=contacts))
    assert [(c.email, c.name) for c in customer.contacts] == [("Ops@example.jp", None)]


def test_localize():
    text = {"en": "API errors", "ja": "APIのエラー"}
    assert localize(text, "ja") == "APIのエラー"
    assert localize(text, "en") == "API errors"
    assert localize({"en": "only English"}, "ja") == "only English"
    assert localize({"ja-JP": "日本語"}, "ja") == "日本語"
    assert localize({"fr": "français"}, "ja") == "français"
    assert localize("plain", "ja") == "plain"
    assert localize(None, "ja") == ""
    assert localize({}, "ja") == ""


# --- updates: absent versus null -----------------------------------------------------------


def test_changes_keeps_absent_and_null_apart():
    update = {"event_id": "e-2", "incident_id": "inc-7", "type": "updated", "at": "2026-11-25T10:30:00+09:00",
              "status": "identified", "eta": None}
    event = parse_record(IncidentEvent, json.dumps(update))
    assert event.changes() == {"status": "identified", "eta": None}
    assert "next_update_at" not in event.changes()
    # the distinction survives serialization
    again = parse_record(IncidentEvent, to_json_bytes(event))
    assert again.changes() == {"status": "identified", "eta": None}
    assert "next_update_at" not in json.loads(to_json_bytes(event))


def test_declared_status_defaults_to_investigating():
    event = parse_record(IncidentEvent, record(INCIDENT_EXAMPLE, status=...))
    assert event.status == "investigating"


def test_resolved_may_carry_a_message():
    resolved = {"event_id": "e-9", "incident_id": "inc-7", "type": "resolved", "at": "2026-11-25T12:00:00+09:00",
                "message": {"en": "Fixed.", "ja": "復旧しました。"}}
    event = parse_record(IncidentEvent, json.dumps(resolved, ensure_ascii=False))
    assert event.status == "resolved"
    assert localize(event.message, "ja") == "復旧しました。"


def test_api_bodies_make_events():
    at = datetime(2026, 11, 25, 10, 0, tzinfo=JST)
    declared = IncidentDeclare.model_validate({"severity": "minor", "title": "Slow", "components": ["api"]})
    event = declared.to_event(event_id="e-1", incident_id="inc-1", at=at)
    assert (event.type, event.incident_id, event.status, event.at) == ("declared", "inc-1", "investigating", at)

    update = IncidentUpdateBody.model_validate({"eta": None, "incident_id": "inc-1", "type": "updated"})
    event = update.to_event(incident_id="inc-1", event_id="e-2", at=at)
    assert (event.type, event.incident_id, event.changes()) == ("updated", "inc-1", {"eta": None})
    with pytest.raises(pydantic.ValidationError, match="incident_id"):   # a body naming another incident
        IncidentUpdateBody.model_validate({"eta": None, "incident_id": "inc-2"}).to_event(
            incident_id="inc-1", event_id="e-2", at=at)

    resolve = IncidentResolveBody.model_validate({"message": "Fixed.", "at": "2026-11-25T11:00:00Z"})
    event = resolve.to_event(incident_id="inc-1", event_id="e-3", at=at)
    assert event.type == "resolved" and event.at == datetime(2026, 11, 25, 11, 0, tzinfo=timezone.utc)

    with pytest.raises(ValueError, match="components"):
        IncidentUpdateBody.model_validate({"components": []})


# --- promises: an estimate or a next update already past when given ---------------------------

AT = "2026-11-25T10:00:00+09:00"


def event_of(event_type: str, **fields) -> dict:
    base = {"event_id": "e-2", "incident_id": "inc-7", "type": event_type, "at": AT}
    if event_type == "declared":
        base.update(severity="major", title="API errors", components=["api"])
    return {**base, **fields}


@pytest.mark.parametrize("event_type", ["declared", "updated", "resolved"])
@pytest.mark.parametrize("field", ["eta", "next_update_at"])
@pytest.mark.parametrize("when", ["2026-11-25T09:59:59+09:00", AT, "2026-11-25T01:00:00Z"])  # before, at, at
def test_a_promise_not_after_the_events_time_is_refused_naming_the_field(event_type, field, when):
    with pytest.raises(RecordError) as info:
        parse_record(IncidentEvent, json.dumps(event_of(event_type, **{field: when})))
    assert info.value.field == field
    message = str(info.value)
    assert message.startswith(f"{field}: must be later than the event's time (2026-11-25T01:00:00Z)"), message
    assert "\n" not in message


@pytest.mark.parametrize("event_type", ["declared", "updated", "resolved"])
def test_a_promise_after_the_events_time_or_null_is_accepted(event_type):
    later = "2026-11-25T10:00:01+09:00"
    event = parse_record(IncidentEvent, json.dumps(event_of(event_type, eta=later, next_update_at=later)))
    assert event.eta == event.next_update_at == datetime(2026, 11, 25, 1, 0, 1, tzinfo=timezone.utc)
    event = parse_record(IncidentEvent, json.dumps(event_of(event_type, eta=None, next_update_at=None)))
    assert event.eta is None and event.next_update_at is None


@pytest.mark.parametrize("body_model,fields", [
    (IncidentDeclare, {"severity": "minor", "title": "Slow", "components": ["api"]}),
    (IncidentUpdateBody, {"status": "identified"}),
    (IncidentResolveBody, {"message": "Fixed."}),
])
@pytest.mark.parametrize("field", ["eta", "next_update_at"])
def test_api_bodies_refuse_a_promise_already_past_against_their_at_or_now(body_model, fields, field):
    past = "2026-11-25T09:00:00+09:00"
    # a body with its own time: refused at once, naming the field
    with pytest.raises(pydantic.ValidationError) as info:
        body_model.model_validate({**fields, "at": AT, field: past})
    assert [e["loc"] for e in info.value.errors()] == [(field,)]
    # without one, the time is generated (now) and the event refuses it the same way
    body = body_model.model_validate({**fields, field: past})
    now = datetime(2026, 11, 25, 10, 0, tzinfo=JST)
    ids = {"event_id": "e-1", "incident_id": "inc-1"}
    with pytest.raises(pydantic.ValidationError) as info:
        body.to_event(**ids, at=now)
    assert [e["loc"] for e in info.value.errors()] == [(field,)]
    assert describe_validation_error(info.value).startswith(f"{field}: must be later than the event's time")
    assert getattr(body.to_event(**ids, at=now - timedelta(hours=2)), field) is not None  # earlier: fine


# --- outputs -------------------------------------------------------------------------------


def test_outputs_round_trip_with_offsets():
    sent = datetime(2026, 11, 25, 10, 5, tzinfo=JST)
    notice = NoticeRecord(notice_id="<inc-7.1.acknowledged.c-42.0@example.com>", incident_id="inc-7",
                          ticket_id=None, customer_id="c-42", email="ops@example.jp", kind="acknowledged",
                          seq=1, sent_at=sent, eta=None, next_update_at=sent + timedelta(hours=1))
    raw = to_json_bytes(notice)
    data = json.loads(raw)
    assert data["sent_at"] == "2026-11-25T10:05:00+09:00"
    assert data["next_update_at"] == "2026-11-25T11:05:00+09:00"
    assert data["ticket_id"] is None and data["eta"] is None  # nulls are kept
    assert b", " not in raw and b": " not in raw  # compact
    assert parse_record(NoticeRecord, raw) == notice

    update = TicketUpdate(ticket_id="T-100", incident_id="inc-7", action="linked",
                          at=datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc), comment="We are on it.\n復旧作業中です。")
    raw = to_json_bytes(update)
    assert json.loads(raw)["at"] == "2026-11-25T01:00:00Z"
    assert "復旧作業中です" in raw.decode("utf-8")
    assert parse_record(TicketUpdate, raw) == update

    dead = DeadLetter.from_raw(topic="outage.customers", partition=0, offset=12, key=b"c-42",
                               value=b'{"bad": \xff', error="invalid UTF-8 at byte 8")
    again = parse_record(DeadLetter, to_json_bytes(dead))
    assert again == dead and again.at.utcoffset() == timedelta(0) and "\ufffd" in again.value


def test_notice_kind_and_seq_are_checked():
    with pytest.raises(ValueError, match="kind"):
        NoticeRecord(notice_id="n", incident_id="i", customer_id="c", email="a@example.com", kind="reminder",
                     seq=1, sent_at=datetime.now(timezone.utc))
    with pytest.raises(ValueError, match="seq"):
        NoticeRecord(notice_id="n", incident_id="i", customer_id="c", email="a@example.com", kind="progress",
                     seq=0, sent_at=datetime.now(timezone.utc))


# --- JSON Schema export --------------------------------------------------------------------


def test_export_writes_json_schemas(tmp_path):
    paths = export_json_schemas(tmp_path / "schemas")
    names = sorted(path.name for path in paths)
    assert names == sorted(f"{name}.schema.json" for name in (
        "customer", "incident-event", "ticket-event", "notice", "ticket-update", "dead-letter", "incident-declare", "feedback",
        "signal", "maintenance-event"))
    for path in paths:
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert "properties" in schema
    incident = json.loads((tmp_path / "schemas" / "incident-event.schema.json").read_text(encoding="utf-8"))
    assert incident["properties"]["at"]["format"] == "date-time"
    assert set(incident["required"]) == {"event_id", "incident_id", "type", "at"}
