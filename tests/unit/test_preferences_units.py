"""Issue 16's plain functions, list in, list out: the choices (domain/preferences.py), who gets
which kind, the deadlines they are owed, the promise a start-and-end notice states, the contact
tokens (domain/links.py), the suppressions (domain/suppression.py), the notices and pages in both
languages (notifiers/)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from domain import ledger as L
from domain import preferences as P
from domain.affected import CustomerIndex
from domain.audience import plan_round, refresh
from domain.content import notice_content
from domain.ids import contact_key
from domain.incident import decide
from domain.links import (PREFERENCES, UNSUBSCRIBE, ContactLink, contact_token, unsubscribe_token,
                          verify_contact)
from domain.promises import PromiseBook
from domain.suppression import Suppression, SuppressionBook, is_permanent_refusal, reason_of
from domain.tickets import ticket_ack_job
from notifiers.pages import PreferencesPage, render_preferences_page
from notifiers.render import render
from schemas import Customer, IncidentEvent

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc)
A, B = "a1@example.jp", "a2@example.jp"


def event(**kw) -> IncidentEvent:
    base = {"event_id": "e-1", "incident_id": "inc-7", "type": "declared", "at": T0.isoformat(),
            "severity": "major", "title": {"en": "API errors", "ja": "APIのエラー"}, "message": "Looking.",
            "components": ["api"], "update_interval_seconds": 600}
    base.update(kw)
    return IncidentEvent.model_validate(base)


def customer(locale: str = "ja") -> Customer:
    return Customer.model_validate({"customer_id": "c-1", "name": "Example KK", "locale": locale,
                                    "timezone": "Asia/Tokyo", "contacts": [{"email": A}, {"email": B}],
                                    "services": [{"component": "api", "region": "ap-northeast-1"}]})


def receive(recipient: str, choice: str, **kw) -> dict:
    return {"customer_id": "c-1", "recipient": recipient, "action": "receive", "receive": choice, **kw}


def unsubscribe(recipient: str) -> dict:
    return {"customer_id": "c-1", "recipient": recipient, "action": "unsubscribe"}


# -- the choices -----------------------------------------------------------------------------------
@pytest.mark.parametrize("choice, kind, wanted", [
    ("all", "progress", True), ("all", "scheduled", True), ("all", "maintenance-reminder", True),
    ("start-and-end", "acknowledged", True), ("start-and-end", "resolved", True),
    ("start-and-end", "unaffected", True), ("start-and-end", "ticket-ack", True),
    ("start-and-end", "maintenance-started", True), ("start-and-end", "maintenance-cancelled", True),
    ("start-and-end", "progress", False), ("start-and-end", "scheduled", False),
    ("none", "acknowledged", False), ("none", "resolved", False), ("none", "ticket-ack", False),
])
def test_which_kinds_each_choice_receives(choice, kind, wanted):
    assert P.wants_kind(choice, kind) is wanted


def test_a_choice_its_undo_and_an_unsubscribe_fold_into_the_entry_and_a_replay_changes_nothing():
    entry = P.apply_request(None, receive("r1", "start-and-end", at="2026-11-25T01:00:00+00:00"))
    assert (P.receive_of(entry, "r1"), P.previous(entry, "r1")) == ("start-and-end", "all")
    assert P.apply_request(entry, receive("r1", "start-and-end")) == entry          # replayed
    undone = P.apply_request(entry, receive("r1", P.previous(entry, "r1")))         # undo: back to the earlier one
    assert (P.receive_of(undone, "r1"), P.previous(undone, "r1")) == ("all", "start-and-end")
    gone = P.apply_request(undone, unsubscribe("r1"))
    assert P.receive_of(gone, "r1") == "none" and P.previous(gone, "r1") == "all" and L.unsubscribed(gone) == {"r1"}
    assert P.choice(gone, "r1") == "all"                                            # what ops see beside "unsubscribed"
    back = P.apply_request(gone, receive("r1", "all"))                              # ops PUT: lifts the unsubscribe
    assert P.receive_of(back, "r1") == "all" and L.unsubscribed(back) == frozenset() and "unsubscribed" not in back
    assert P.receive_of(back, "other") == "all" and P.previous(back, "other") is None
    # the ledger's earlier writer still works, and keeps what else the entry holds
    sent = L.record_sent(None, incident_id="i", recipient="r2", email=B, message_id="<1>", kind="acknowledged", seq=1)
    assert L.unsubscribed(L.record_unsubscribe(sent, "r2")) == {"r2"}
    assert L.record_unsubscribe(sent, "r2")["incidents"] == sent["incidents"]


@pytest.mark.parametrize("request_, field", [
    ([], "record"), ({"recipient": "r"}, "customer_id"), ({"customer_id": "c"}, "recipient"),
    ({"customer_id": "c", "recipient": "r", "action": "stop"}, "action"),
    ({"customer_id": "c", "recipient": "r", "action": "receive"}, "receive"),
    ({"customer_id": "c", "recipient": "r", "action": "receive", "receive": "some"}, "receive"),
])
def test_a_request_that_cannot_be_applied_names_its_field(request_, field):
    with pytest.raises(P.BadRequest) as caught:
        P.check_request(request_)
    assert caught.value.field == field


def test_the_book_every_worker_keeps_folds_the_topic_as_the_ledger_does():
    requests = [unsubscribe("r1"), receive("r2", "none"), receive("r1", "start-and-end"), receive("r2", "all"),
                {"customer_id": "c-1", "recipient": "r3", "action": "receive", "receive": "bogus"}]
    entry = None
    for r in requests[:-1]:
        entry = P.apply_request(entry, r)
    book = P.PreferenceBook()
    book.apply([(b"c-1", json.dumps(r).encode()) for r in requests] + [(b"c-1", b"not json"), (b"c-1", None)])
    assert book.entry("c-1") == P.preferences_of(entry) and book.skipped == 3 and len(book) == 1


# -- who gets what, and the deadlines ------------------------------------------------------------------
def plan(rnd, entry):
    c = customer()
    index = CustomerIndex()
    index.put(c.customer_id, [("api", "ap-northeast-1")])
    notified = ["c-1"] if entry and rnd.incident_id in L.incidents_in(entry) else []
    return plan_round(rnd, index, {"c-1": c}.get, {"c-1": entry}.get, notified, "example.com")


def test_plans_and_refresh_honour_each_choice_and_start_and_end_is_owed_no_holding_update():
    d1 = decide(None, event(), T0)
    entry = P.apply_request(None, receive(contact_key(A), "start-and-end"))
    entry = P.apply_request(entry, receive(contact_key(B), "none"))
    (ack,) = plan(d1.round, entry)
    assert (ack.email, ack.kind, ack.receive, ack.start_and_end) == (A, "acknowledged", "start-and-end", True)
    entry = L.record_sent(entry, incident_id="inc-7", recipient=ack.recipient, email=A, message_id=ack.message_id,
                          kind="acknowledged", seq=1, due=None, every=600.0, sent=T0.timestamp())
    assert list(L.deadlines(entry)) == []                       # no holding update is owed
    d2 = decide(d1.state, event(type="updated", event_id="e-2", status="identified"), T0)
    assert plan(d2.round, entry) == []                           # no progress either
    # a contact with a deadline who switches: the deadline is not counted, and not kept by the next notice
    sent = L.record_sent(None, incident_id="inc-7", recipient=contact_key(A), email=A, message_id="<m>",
                         kind="acknowledged", seq=1, due=T0.timestamp() + 600, every=600.0, sent=T0.timestamp())
    assert [d[1] for d in L.deadlines(sent)] == [contact_key(A)]
    switched = P.apply_request(sent, receive(contact_key(A), "start-and-end"))
    assert list(L.deadlines(switched)) == []
    resolved = decide(d2.state, event(type="resolved", event_id="e-3"), T0).round
    (end,) = [j for j in plan(resolved, switched) if j.email == A]
    assert end.kind == "resolved" and end.due is None            # counted neither kept nor missed
    # refresh re-reads the choice right before the send
    (progress,) = [j for j in plan(d2.round, sent) if j.email == A]
    assert progress.kind == "progress" and refresh(progress, switched, "example.com") is None
    assert refresh(progress, sent, "example.com") == progress


def test_a_ticket_ack_is_kept_for_start_and_end_and_stopped_by_none():
    d1 = decide(None, event(), T0)
    kwargs = dict(ticket_id="T-1", subject="503s", requester_email=A, requester_name=None, customer=customer(),
                  rnd=d1.round, domain="example.com")
    quiet = P.apply_request(None, receive(contact_key(A), "start-and-end"))
    job = ticket_ack_job(entry=quiet, **kwargs)
    assert job is not None and job.start_and_end
    assert ticket_ack_job(entry=P.apply_request(None, receive(contact_key(A), "none")), **kwargs) is None


def test_a_start_and_end_notice_promises_no_update_and_says_the_next_email_comes_with_the_resolution():
    d1 = decide(None, event(), T0)
    (job,) = [j for j in plan(d1.round, P.apply_request(None, receive(contact_key(A), "start-and-end")))
              if j.email == A]
    book = PromiseBook(margin=timedelta(seconds=5))
    composed = book.as_composed(job, T0)
    assert composed.round.next_update_at is None and book.stated(job) is None
    for locale, words in (("en", "we will email you next when it is resolved. To receive every update instead, use "
                                 "the “Choose which notices you receive” link at the end of this email."),
                          ("ja", "次回は復旧時にご連絡いたします。すべての続報をご希望の場合は、このメール末尾の"
                                 "「受け取る通知の設定」から変更いただけます。")):
        job_l = dataclasses.replace(composed, customer=customer(locale))
        content = notice_content(job_l, T0, preferences_url="https://s.example/preferences/tok")
        assert content.next_update_at is None and content.start_and_end
        rendered = render(content)
        assert words in rendered.text and words in rendered.html
        assert "https://s.example/preferences/tok" in rendered.text and "https://s.example/preferences/tok" in rendered.html
    everyone = plan(d1.round, None)
    content = notice_content(book.as_composed(everyone[0], T0), T0)
    assert content.next_update_at is not None and not content.start_and_end


# -- the links -------------------------------------------------------------------------------------------
def test_a_contact_token_names_its_address_and_language_for_one_purpose_and_survives_a_key_rotation():
    token = contact_token(b"old", PREFERENCES, "c-1", contact_key(A), "ja", A)
    assert verify_contact([b"new", b"old"], PREFERENCES, token) == ContactLink("c-1", contact_key(A), "ja", A)
    assert verify_contact([b"new"], PREFERENCES, token) is None
    assert verify_contact([b"old"], UNSUBSCRIBE, token) is None              # not an unsubscribe link
    fields = token.split(".")
    for i, field in enumerate(fields):
        altered = ".".join(fields[:i] + [field[:-1] + ("A" if field[-1] != "A" else "B")] + fields[i + 1:])
        assert verify_contact([b"old"], PREFERENCES, altered) is None
    for junk in ("", "a.b.c.d.e", "x" * 5000, token + ".", None):
        assert verify_contact([b"old"], PREFERENCES, junk) is None
    # an unsubscribe link of an earlier notice: English, no address
    earlier = unsubscribe_token(b"old", "c-1", contact_key(A))
    assert verify_contact([b"old"], UNSUBSCRIBE, earlier) == ContactLink("c-1", contact_key(A), "en", None)
    assert verify_contact([b"old"], PREFERENCES, earlier) is None


# -- suppressions ---------------------------------------------------------------------------------------
def test_the_suppressions_book_follows_the_topic_and_a_tombstone_lifts():
    book = SuppressionBook()
    first = Suppression(email="Bad@Example.jp", at="2026-11-25T01:00:00+00:00", code=550, reason="550 5.1.1 gone")
    later = Suppression(email="x@example.jp", at="2026-11-25T02:00:00+00:00", code=554, reason="554 no")
    book.apply([(b"bad@example.jp", first.to_json()), (b"x@example.jp", later.to_json()),
                (b"someone@else.jp", first.to_json()), (b"y@example.jp", b"{}"), (None, b"{}")])
    assert book.suppressed("bad@EXAMPLE.jp") and book.suppressed("x@example.jp") and not book.suppressed("y@example.jp")
    assert [s.public() for s in book.all()] == [
        {"email": "x@example.jp", "at": "2026-11-25T02:00:00+00:00", "reason": "554 no"},
        {"email": "Bad@Example.jp", "at": "2026-11-25T01:00:00+00:00", "reason": "550 5.1.1 gone"}]
    assert book.skipped == 3
    book.apply([(b"bad@example.jp", None)])
    assert not book.suppressed("bad@example.jp") and len(book) == 1


def test_only_a_5xx_suppresses_and_the_reason_is_one_short_line():
    assert [is_permanent_refusal(c) for c in (550, 554, 599, 450, 421, None, 600)] == [
        True, True, True, False, False, False, False]
    assert reason_of(550, "5.1.1 user\r\n unknown") == "550 5.1.1 user unknown"
    assert len(reason_of(550, "x" * 1000)) == 200


# -- the pages --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("locale, title, choice_name", [
    ("en", "Which incident notices would you like to receive?", "Only the start and the end"),
    ("ja", "受け取るご連絡をお選びください。", "発生と復旧のみ"),
])
def test_the_preferences_page_speaks_the_contacts_language_names_its_address_and_offers_undo(locale, title,
                                                                                              choice_name):
    page = render_preferences_page(PreferencesPage("form", locale, action="../preferences/t", email="ops@example.jp",
                                                   receive="start-and-end", undo_to="all"))
    assert f'<html lang="{locale}">' in page and title in page and "ops@example.jp" in page
    assert 'name="viewport"' in page and "@media (min-width:720px)" in page
    assert 'value="start-and-end" required checked' in page and page.count(" checked") == 1
    assert '<input type="hidden" name="receive" value="all">' in page and choice_name in page
    saved = render_preferences_page(PreferencesPage("saved", locale, action="a", email="ops@example.jp",
                                                    receive="none", undo_to="start-and-end"))
    assert 'value="start-and-end">' in saved and "ops@example.jp" in saved
    gone = render_preferences_page(PreferencesPage("unsubscribed", locale, action="a", email="<b>@example.jp",
                                                   undo_to="all", preferences_url="../preferences/t"))
    assert "&lt;b&gt;@example.jp" in gone and '<input type="hidden" name="receive" value="all">' in gone
    assert 'href="../preferences/t"' in gone
    assert "This link is not valid." in render_preferences_page(PreferencesPage("invalid", locale))


def test_every_notice_links_the_preferences_page_and_a_one_click_unsubscribe_that_name_the_contact():
    import email
    import email.policy

    from domain.links import verify_contact as verify
    from notifiers.notice import NoticeComposer

    d1 = decide(None, event(), T0)
    job = next(j for j in plan(d1.round, None) if j.email == A)
    composer = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                              signing_key=b"k")
    msg = email.message_from_bytes(composer(job, T0), policy=email.policy.default)
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    text = msg.get_body(("plain",)).get_content()
    found = re.search(r"https://status\.example\.com/preferences/(\S+)", text)
    assert found and verify(b"k", PREFERENCES, found.group(1)) == ContactLink("c-1", contact_key(A), "ja", A)
    assert verify(b"k", UNSUBSCRIBE, unsubscribe.rpartition("/")[2]) == ContactLink("c-1", contact_key(A), "ja", A)
    assert unsubscribe in text
    # ids and an address long enough to break the header's one line: the earlier, shorter token there
    long_job = dataclasses.replace(job, email="x" * 60 + "@" + "d" * 60 + ".example.com",
                                   customer=customer().model_copy(update={"customer_id": "c" * 256}))
    long_composer = NoticeComposer(public_url="https://" + "s" * 350 + ".example.com", mail_from="status@example.com",
                                   signing_key=b"k")
    header = email.message_from_bytes(long_composer(long_job, T0), policy=email.policy.default)["List-Unsubscribe"]
    assert verify(b"k", UNSUBSCRIBE, header.strip("<>").rpartition("/")[2]).email is None


async def test_only_a_refusal_of_the_recipient_suppresses_it():
    from notifiers.smtp import PERMANENT, SendResult
    from streams.suppressions import Suppressions
    from tests.inmemory import Topic

    @dataclass(frozen=True)
    class Job:
        email: str

    topic, book = Topic("t.suppressions"), SuppressionBook()
    suppressions = Suppressions(topic=topic, book=book, clock=lambda: T0)
    await suppressions.refused(Job("sender@x.jp"), SendResult(PERMANENT, 550, "5.7.1 sender refused"))   # MAIL
    await suppressions.refused(Job("big@x.jp"), SendResult(PERMANENT, 552, "5.3.4 too big"))             # DATA
    await suppressions.refused(Job("odd@x.jp"), SendResult(PERMANENT, None, "ValueError: no envelope"))
    assert topic.sent == [] and len(book) == 0
    await suppressions.refused(Job("Gone@X.jp"), SendResult(PERMANENT, 550, "5.1.1 <Gone@X.jp>: no such user",
                                                            recipient_refused=True))
    (key, value, _), = topic.sent
    record = json.loads(value)
    assert key == b"gone@x.jp" and record["code"] == 550 and "Gone@X.jp" not in record["reason"]
    assert record["reason"] == "550 5.1.1 <<address>>: no such user" and book.suppressed("gone@x.jp")
    assert await suppressions.lift("GONE@x.jp") is True and topic.sent[-1] == (b"gone@x.jp", None, None)
    assert not book.suppressed("gone@x.jp") and await suppressions.lift("gone@x.jp") is False


async def test_no_notice_leaves_before_the_suppressed_addresses_are_read(monkeypatch):
    """The sender's gate (streams/suppressions.py ``ready``): it waits while the view has not read
    what its topic held at the start, opens once it has, and stays open; a view that cannot be
    read holds the notices at most READY_WAIT_SECONDS."""
    import asyncio

    import streams.suppressions as S
    from streams.suppressions import Suppressions

    read = [False]
    suppressions = Suppressions(topic=None, book=SuppressionBook(), clock=lambda: T0, caught_up=lambda: read[0])
    gate = asyncio.ensure_future(suppressions.ready())
    await asyncio.sleep(0.2)
    assert not gate.done()                          # the view is still reading: nothing is sent
    read[0] = True
    await asyncio.wait_for(gate, 1.0)
    read[0] = False
    await asyncio.wait_for(suppressions.ready(), 0.01)   # once open, it stays open
    monkeypatch.setattr(S, "READY_WAIT_SECONDS", 0.1)
    never = Suppressions(topic=None, book=SuppressionBook(), clock=lambda: T0, caught_up=lambda: False)
    await asyncio.wait_for(never.ready(), 1.0)      # not forever: the promise is not given up for it
    await asyncio.wait_for(Suppressions(topic=None, book=SuppressionBook(), clock=lambda: T0).ready(), 0.01)


def test_readyz_waits_for_the_views_the_worker_reads():
    from streams.app import views_read

    class View:
        caught_up = False

    suppressed, choices = View(), View()
    base = [(True, "ok")]
    ready = views_read(lambda: base[0], {"the suppressed addresses": suppressed, "the contacts' choices": choices})
    assert ready() == (False, "reading the suppressed addresses")
    suppressed.caught_up = True
    assert ready() == (False, "reading the contacts' choices")
    choices.caught_up = True
    assert ready() == (True, "ok")
    base[0] = (False, "joining the group")
    assert ready() == (False, "joining the group")      # the worker's own reason comes first
