"""Pure checks behind tests/integration/test_bad_input.py: the same corpus of bad records, parsed
without a broker, and the mail side's handling of awkward but schema-valid customers."""

from __future__ import annotations

import email
import json
import email.policy
from datetime import datetime, timezone

import pytest

from domain.affected import CustomerIndex
from domain.audience import plan_round
from domain.incident import decide
from notifiers.message import MAX_LINE
from notifiers.notice import NoticeComposer
from schemas import Customer, IncidentEvent, RecordError, TicketEvent, parse_record
from tests.integration.test_bad_input import BAD, C_IDN, C_LONG, HUGE_VALUE, NEAR_LIMIT_VALUE

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
MODELS = {"customers": Customer, "incident-events": IncidentEvent, "ticket-events": TicketEvent}
# rejected by the worker's rules on top of the schema (state, record key), not by parse_record alone
AGENT_LEVEL = {"customer-key-differs-from-customer_id", "incident-key-differs-from-incident_id",
               "ticket-key-differs-from-ticket_id", "customer-tombstone-with-empty-key", "customer-key-not-utf8",
               "incident-updated-for-unknown-incident", "ticket-for-unknown-customer"}


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in BAD if b.id not in AGENT_LEVEL])
def test_parse_record_rejects_with_a_one_line_reason_naming_the_problem(bad):
    with pytest.raises(RecordError) as info:
        parse_record(MODELS[bad.topic], bad.value)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    for needle in bad.expect:
        assert needle.lower() in message.lower(), f"{needle!r} not in {message!r}"


@pytest.mark.parametrize("bad", [pytest.param(b, id=b.id) for b in BAD if b.id in AGENT_LEVEL and b.value])
def test_agent_level_cases_are_valid_records_on_their_own(bad):
    """These are refused for where they are (key, state), not for what they hold."""
    parse_record(MODELS[bad.topic], bad.value)


def test_the_size_limit_is_on_the_record_in_bytes():
    assert len(NEAR_LIMIT_VALUE) < 1_000_000 < len(HUGE_VALUE)
    assert parse_record(Customer, NEAR_LIMIT_VALUE).customer_id == "c-900k"


def compose(customer_record: dict) -> bytes:
    """The first notice of a declared incident to the customer's first contact, composed as the worker does."""
    c = Customer.model_validate(customer_record)
    component = c.services[0].component
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": T0.isoformat(),
        "severity": "major", "title": "X", "components": [component], "update_interval_seconds": 3600})
    rnd = decide(None, event, T0).round
    index = CustomerIndex()
    index.put(c.customer_id, [(s.component, s.region) for s in c.services])
    [job] = plan_round(rnd, index, {c.customer_id: c}.get, lambda cid: None, [], "example.com")
    composer = NoticeComposer(public_url="http://127.0.0.1:6066", mail_from="status@example.com",
                              signing_key=b"k")
    return composer(job, T0)


def test_a_contact_with_an_idn_domain_can_be_composed():
    data = compose(C_IDN)
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"].addresses[0].domain in ("bücher.example", "xn--bcher-kva.example")


def test_the_longest_valid_customer_id_can_be_composed():
    longest = {**C_LONG, "customer_id": "顧" * 85}  # 255 bytes of UTF-8: just within the 256-byte limit
    data = compose(longest)
    assert all(len(line) <= MAX_LINE for line in data.split(b"\r\n"))


def test_a_customer_id_over_256_bytes_is_invalid_input():
    with pytest.raises(RecordError, match="customer_id.*256 bytes"):
        parse_record(Customer, json.dumps(C_LONG))
