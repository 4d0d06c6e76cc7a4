"""A job crosses to a delivery helper process as a frame of plain values (notifiers/delivery.py
``job_frame``) and is rebuilt there (``job_of``): what the helper composes from it must be, byte for
byte, what the worker would have composed itself — the customer's status link (all its services),
the preferences and unsubscribe links, and a start-and-end recipient's notice promising no update."""

from __future__ import annotations

import email
import email.policy
import pickle
import re
from datetime import datetime, timedelta, timezone

import pytest

from domain import preferences as P
from domain.affected import CustomerIndex
from domain.audience import plan_round
from domain.ids import contact_key
from domain.incident import decide
from domain.promises import PromiseBook
from notifiers.delivery import job_frame, job_of
from notifiers.notice import NoticeComposer
from schemas import Customer, IncidentEvent
from streams.views import customer_of_json

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
A, B = "ops@example.jp", "dev@example.jp"


@pytest.mark.parametrize("choice", ["all", "start-and-end"])
def test_a_helper_composes_exactly_what_the_worker_would(choice):
    record = Customer.model_validate({
        "customer_id": "c-1", "name": "Example KK", "locale": "ja", "timezone": "Asia/Tokyo",
        "contacts": [{"email": A}, {"email": B}],
        "services": [{"component": "api", "region": "ap-northeast-1"}, {"component": "db", "region": "eu-west-1"}]})
    customer = customer_of_json(record.model_dump_json())   # as the worker holds it
    event = IncidentEvent.model_validate({"event_id": "e-1", "incident_id": "inc-7", "type": "declared",
                                          "at": T0.isoformat(), "severity": "major", "title": "API errors",
                                          "components": ["api"], "update_interval_seconds": 600})
    rnd = decide(None, event, T0).round
    index = CustomerIndex()
    index.put("c-1", [("api", "ap-northeast-1"), ("db", "eu-west-1")])
    entry = P.apply_request(None, {"customer_id": "c-1", "recipient": contact_key(A), "action": "receive",
                                   "receive": choice})
    job = next(j for j in plan_round(rnd, index, {"c-1": customer}.get, {"c-1": entry}.get, [], "example.com")
               if j.email == A)
    job = PromiseBook(margin=timedelta(seconds=5)).as_composed(job, T0)
    assert job.receive == choice

    frame = pickle.loads(pickle.dumps(job_frame(1, 7, T0, job)))   # through the pipe
    rebuilt = job_of(frame, {7: job.round})
    composer = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                              signing_key=b"k")
    mine = composer(job, T0)
    theirs = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                            signing_key=b"k")(rebuilt, T0)
    boundary = re.compile(rb"=_notice_[0-9a-f]+")   # each message's MIME boundary is random
    assert boundary.sub(b"B", theirs) == boundary.sub(b"B", mine)
    msg = email.message_from_bytes(mine, policy=email.policy.default)
    text = msg.get_body(("plain",)).get_content()
    assert "/status/customer/" in text and "/preferences/" in text
    assert (msg["X-Outage-Next-Update"] is not None) is (choice == "all")
