"""Feedback after every incident: the resolved notice's five signed links, the rules of an answer
(domain/feedback.py), the pages and the POST that records it (streams/feedback.py), run in process,
the view every worker keeps of the answers (streams/feedback_view.py) and the metrics."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from domain.affected import CustomerIndex
from domain.audience import plan_round
from domain.feedback import FeedbackTally, clean_comment, feedback_id, parse_score
from domain.ids import contact_key
from domain.incident import decide
from domain.links import FeedbackLink, verify_feedback
from notifiers.notice import NoticeComposer
from schemas import Customer, IncidentEvent

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
KEY = b"test-secret"
PUBLIC_URL = "https://status.example.com"


def resolved_notices(locale: str = "ja", severity: str = "critical") -> dict[str, bytes]:
    """The resolved notice of an incident to each contact of one customer, composed as the worker does."""
    customer = Customer.model_validate({
        "customer_id": "c-42", "name": "Example KK", "locale": locale, "timezone": "Asia/Tokyo",
        "contacts": [{"email": "ops@example.jp", "name": "Sato"}, {"email": "dev@example.jp"}],
        "services": [{"component": "api", "region": "ap-northeast-1"}]})
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": T0.isoformat(),
        "severity": severity, "title": {"en": "API errors", "ja": "APIのエラー"}, "components": ["api"]})
    rnd = decide(None, event, T0).round
    index = CustomerIndex()
    index.put("c-42", [("api", "ap-northeast-1")])
    jobs = list(plan_round(rnd, index, {"c-42": customer}.get, lambda cid: None, [], "example.com"))
    composer = NoticeComposer(public_url=PUBLIC_URL, mail_from="status@example.com", signing_key=KEY)
    return {job.email: composer(dataclasses.replace(job, kind=kind), T0)
            for job in jobs for kind in ("resolved",)}


def parts(data: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    return (msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content())


def links_in(text: str) -> list[str]:
    return re.findall(r"https://status\.example\.com/feedback/[^\s\"<>]+", text)


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_resolved_notice_carries_five_signed_links_naming_its_contact(locale):
    notices = resolved_notices(locale, "critical")
    for address, data in notices.items():
        text, html = parts(data)
        for found in (links_in(text), [link.replace("&amp;", "&") for link in links_in(html)]):
            assert len(found) == 5
            tokens = {urlsplit(link).path.rsplit("/", 1)[1] for link in found}
            assert len(tokens) == 1                      # one token, five scores
            assert [parse_qs(urlsplit(link).query)["score"] for link in found] == [[str(n)] for n in range(1, 6)]
            assert verify_feedback(KEY, tokens.pop()) == FeedbackLink("inc-7", "c-42", contact_key(address), locale,
                                                                      "critical")
    first, second = (links_in(parts(data)[0])[0] for data in notices.values())
    assert first != second                               # each contact its own link


def test_other_notices_carry_no_feedback_link():
    composer = NoticeComposer(public_url=PUBLIC_URL, mail_from="status@example.com", signing_key=KEY)
    customer = Customer.model_validate({
        "customer_id": "c-1", "name": "X", "contacts": [{"email": "a@example.com"}],
        "services": [{"component": "api", "region": "r"}]})
    event = IncidentEvent.model_validate({
        "event_id": "e-1", "incident_id": "inc-1", "type": "declared", "at": T0.isoformat(), "severity": "minor",
        "title": "T", "components": ["api"]})
    index = CustomerIndex()
    index.put("c-1", [("api", "r")])
    (job,) = plan_round(decide(None, event, T0).round, index, {"c-1": customer}.get, lambda cid: None, [],
                        "example.com")
    for kind in ("acknowledged", "progress", "unaffected"):
        assert b"/feedback/" not in composer(dataclasses.replace(job, kind=kind), T0)


# -- the rules of an answer ------------------------------------------------------------------------


def test_one_feedback_id_per_contact_per_incident():
    fid = feedback_id("inc-7", "c-42", "3f9a1c2b04de")
    assert fid == feedback_id("inc-7", "c-42", "3f9a1c2b04de") and fid.startswith("fb-") and len(fid) == 35
    assert len({fid, feedback_id("inc-8", "c-42", "3f9a1c2b04de"), feedback_id("inc-7", "c-43", "3f9a1c2b04de"),
                feedback_id("inc-7", "c-42", "000000000000"), feedback_id("inc-7c-42", "", "3f9a1c2b04de")}) == 5


@pytest.mark.parametrize("value,score", [("1", 1), ("3", 3), ("5", 5), ("0", None), ("6", None), ("", None),
                                         (" 3", None), ("3.0", None), ("03", None), ("٣", None), ("+3", None),
                                         (None, None), (3, None), ("three", None)])
def test_a_score_is_one_digit_from_1_to_5(value, score):
    assert parse_score(value) == score


def test_a_comment_keeps_its_lines_and_loses_its_surrounding_blanks():
    assert clean_comment("  Thanks.\r\nMore often, please.\r\n  ") == "Thanks.\nMore often, please."
    assert clean_comment("a\rb") == "a\nb"
    assert clean_comment(" \r\n\t ") is None and clean_comment("") is None and clean_comment(None) is None


def test_the_tally_keeps_the_latest_answer_per_contact_and_counts_per_incident():
    tally = FeedbackTally()
    assert tally.summary("inc-7").as_dict() == {"answers": 0, "mean": None}
    tally.put("fb-a", "inc-7", 2)
    tally.put("fb-b", "inc-7", 5)
    tally.put("fb-c", "inc-8", 1)
    assert tally.summary("inc-7").as_dict() == {"answers": 2, "mean": 3.5}
    tally.put("fb-a", "inc-7", 4)                        # the same contact answers again: it replaces
    assert tally.summary("inc-7").as_dict() == {"answers": 2, "mean": 4.5}
    tally.put("fb-d", "inc-7", 4)
    assert tally.summary("inc-7").mean == 4.33            # two decimals
    tally.remove("fb-b")                                 # a tombstone
    tally.remove("fb-unknown")
    assert tally.summary("inc-7").as_dict() == {"answers": 2, "mean": 4.0}
    assert tally.summary("inc-8").as_dict() == {"answers": 1, "mean": 1.0} and len(tally) == 3
    tally.remove("fb-c")
    assert tally.summary("inc-8").answers == 0
    with pytest.raises(ValueError):
        tally.put("fb-e", "inc-7", 6)
