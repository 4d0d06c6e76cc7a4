"""A delivery helper process composes from what the job frame carries: the customer it makes
again (``notifiers/delivery.py``) gives the same notice, the customer's own signed status link
included, as the worker's customer record (the link signs the customer's services). Before, the
helper's customer had no services, and every notice composed in a helper failed."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import pickle

import pytest

from domain.affected import CustomerIndex
from domain.audience import plan_round
from domain.incident import decide
from notifiers.delivery import _customer, customer_frame
from notifiers.notice import NoticeComposer
from schemas import Customer, IncidentEvent
from tests.unit.test_feedback_units import T0

CUSTOMER = Customer.model_validate({
    "customer_id": "c-42", "name": "Example KK", "locale": "ja", "timezone": "Asia/Tokyo",
    "contacts": [{"email": "ops@example.jp", "name": "Sato"}],
    "services": [{"component": "api", "region": "ap-northeast-1"}, {"component": "web", "region": "eu-west-1"}]})


def test_the_helpers_customer_composes_the_workers_notice():
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": T0.isoformat(),
        "severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"}, "components": ["api"]})
    index = CustomerIndex()
    index.put("c-42", [(s.component, s.region) for s in CUSTOMER.services])
    (job,) = plan_round(decide(None, event, T0).round, index, {"c-42": CUSTOMER}.get, lambda cid: None, [],
                        "example.com")
    frame = pickle.loads(pickle.dumps(customer_frame(job.customer)))   # as it crosses the pipe
    in_helper = dataclasses.replace(job, customer=_customer(*frame))
    composer = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                              signing_key=b"k")
    link = composer.customer_status_url(job)
    assert link.startswith("https://status.example.com/status/customer/")
    assert composer.customer_status_url(in_helper) == link
    assert parts(composer(in_helper, T0)) == parts(composer(job, T0))


def parts(data: bytes) -> tuple[str, str, str]:
    """The headers but the MIME boundary, and the text and HTML parts (the boundary is random)."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    headers = "".join(f"{k}: {v}\n" for k, v in msg.items() if k != "Content-Type")
    return headers, msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_a_helper_that_fails_says_so_in_one_json_line():
    import json
    import struct
    import subprocess
    import sys
    from pathlib import Path

    garbage = b"not a pickle"
    done = subprocess.run([sys.executable, "-m", "notifiers.delivery", "json"], input=struct.pack("!I", len(garbage))
                          + garbage, capture_output=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 1
    (line,) = [json.loads(text) for text in done.stderr.decode().splitlines()]
    assert line["logger"] == "notifiers.delivery" and line["message"].startswith("delivery helper")
    assert "Traceback" in line["exception"]


@pytest.mark.parametrize("choice", ["all", "start-and-end"])
def test_the_recipients_choice_crosses_the_frame(choice):
    """The whole job frame (``job_frame``/``job_of``): a start-and-end recipient's notice, which
    promises no next update, composes in a helper exactly as in the worker."""
    from datetime import timedelta

    from domain import preferences as P
    from domain.ids import contact_key
    from domain.promises import PromiseBook
    from notifiers.delivery import job_frame, job_of
    from streams.views import customer_of_json

    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": T0.isoformat(),
        "severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"}, "components": ["api"]})
    customer = customer_of_json(CUSTOMER.model_dump_json())   # as the worker holds it
    index = CustomerIndex()
    index.put("c-42", [(s.component, s.region) for s in CUSTOMER.services])
    entry = P.apply_request(None, {"customer_id": "c-42", "recipient": contact_key("ops@example.jp"),
                                   "action": "receive", "receive": choice})
    (job,) = plan_round(decide(None, event, T0).round, index, {"c-42": customer}.get, {"c-42": entry}.get, [],
                        "example.com")
    job = PromiseBook(margin=timedelta(seconds=5)).as_composed(job, T0)
    rebuilt = job_of(pickle.loads(pickle.dumps(job_frame(1, 7, T0, job))), {7: job.round})   # through the pipe
    assert rebuilt.receive == choice
    composer = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                              signing_key=b"k")
    mine = composer(job, T0)
    assert parts(composer(rebuilt, T0)) == parts(mine)
    msg = email.message_from_bytes(mine, policy=email.policy.default)
    assert "/preferences/" in msg.get_body(("plain",)).get_content()
    assert (msg["X-Outage-Next-Update"] is not None) is (choice == "all")
