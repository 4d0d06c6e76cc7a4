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


# -- the pages and the POST, in process: the worker's routes (streams/web.py) on faust's web server,
# -- over fakes of the topic and the broker's reach ------------------------------------------------

import json  # noqa: E402

import faust  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from core.settings import Settings  # noqa: E402
from domain.links import feedback_token  # noqa: E402
from schemas import MAX_COMMENT_CHARS  # noqa: E402
from streams import metrics as M  # noqa: E402
from streams.feedback import FeedbackDesk, title_of  # noqa: E402
from streams.feedback_view import FeedbackView  # noqa: E402
from streams.incident_view import IncidentView  # noqa: E402
from streams.web import register_pages  # noqa: E402
from tests.inmemory import RecordingTopic as FeedbackTopic  # noqa: E402

RECIPIENT = contact_key("ops@example.jp")
STATE = {"incident_id": "inc-7", "severity": "major", "status": "resolved", "title": {"en": "API errors", "ja": "APIのエラー"},
         "components": ["api"], "started_at": "2026-11-25T10:00:00+00:00", "updated_at": "2026-11-25T11:00:00+00:00",
         "resolved_at": "2026-11-25T11:00:00+00:00", "seq": 3}


class Web:
    """A worker's web pages in process, with what they were handed."""

    def __init__(self, client: TestClient, topic: FeedbackTopic, view: IncidentView, answers: FeedbackView,
                 reach) -> None:
        self.client, self.topic, self.view, self.answers, self.reach = client, topic, view, answers, reach

    async def get(self, path: str) -> tuple[int, str]:
        response = await self.client.get(path)
        return response.status, await response.text()

    async def post(self, path: str, data=None, **kw) -> tuple[int, str]:
        response = await self.client.post(path, data=data, **kw)
        return response.status, await response.text()


class Reach:
    reachable = True


@pytest.fixture
async def web(tmp_path):
    settings = Settings(broker="127.0.0.1:9", data_dir=tmp_path, api_token="t", secret="new-secret",
                        secret_previous="test-secret")
    app = faust.App("t-feedback-web", broker="kafka://127.0.0.1:9", datadir=str(tmp_path), autodiscover=False,
                    web_enabled=True, web_in_thread=False, web_tables_enabled=False, web_router_enabled=False,
                    web_stats_enabled=False, web_graph_enabled=False, web_metrics_enabled=False)
    view = IncidentView(bootstrap_servers=["127.0.0.1:9"], topic="t.incidents-changelog", partitions=1)
    view.apply([(json.dumps("inc-7").encode(), json.dumps(STATE).encode())])
    answers = FeedbackView(bootstrap_servers=["127.0.0.1:9"], topic="t.feedback", partitions=1)
    topic, reach = FeedbackTopic(), Reach()
    clock = lambda: T0  # noqa: E731
    desk = FeedbackDesk(keys=settings.verification_keys(), topic=topic, title=title_of(view),
                        reachable=lambda: reach.reachable, clock=clock)
    register_pages(app, settings=settings, view=view, reach=reach, events_topic=None,
                   readiness=lambda: (True, "ok"), clock=clock, preferences=None, feedback=desk, feedback_view=answers)
    app.web.blueprints.apply(app.web)
    async with TestClient(TestServer(app.web.web_app)) as client:
        yield Web(client, topic, view, answers, reach)


def token(locale: str = "ja", severity: str = "major", recipient: str = RECIPIENT, key: bytes = b"new-secret",
          customer_id: str = "c-42") -> str:
    return feedback_token(key, "inc-7", customer_id, recipient, locale, severity)


def chosen(page: str) -> list[str]:
    return re.findall(r'value="(\d)" required checked', page)


def sample(metric, **labels) -> float:
    name = metric._name
    suffix = "_total" if isinstance(metric, type(M.FEEDBACK_ANSWERS)) else "_count"
    return M.REGISTRY.get_sample_value(name + suffix, labels) or 0.0


async def test_the_page_speaks_the_contacts_language_with_the_score_chosen_and_records_nothing(web):
    recorded = sample(M.FEEDBACK_ANSWERS, result="recorded")
    status, page = await web.get(f"/feedback/{token('ja')}?score=4")
    assert status == 200 and '<html lang="ja">' in page and chosen(page) == ["4"]
    assert "今回の障害について、状況を把握しやすかったでしょうか。" in page and "APIのエラー" in page
    assert 'name="viewport"' in page and "<textarea" in page and 'type="submit"' in page
    assert f'action="./{token("ja")}"' in page and 'method="post"' in page
    status, page = await web.get(f"/feedback/{token('en')}?score=1")
    assert status == 200 and '<html lang="en">' in page and chosen(page) == ["1"] and "API errors" in page
    assert "How easy was it to stay informed during this incident?" in page
    for n in range(1, 6):   # a link scanner fetching all five links records nothing
        assert (await web.get(f"/feedback/{token()}?score={n}"))[0] == 200
    response = await web.client.get(f"/feedback/{token()}?score=2")
    assert response.headers["Cache-Control"] == "no-store" and "noindex" in response.headers["X-Robots-Tag"]
    assert web.topic.sent == [] and sample(M.FEEDBACK_ANSWERS, result="recorded") == recorded


@pytest.mark.parametrize("score", ["0", "6", "x", "", "3.5", "%E2%91%A2"])
async def test_a_bad_score_in_the_link_gets_400_and_the_page_with_nothing_chosen(web, score):
    status, page = await web.get(f"/feedback/{token()}?score={score}")
    assert status == 400 and chosen(page) == [] and "1から5までの数字をお選びください。" in page
    assert web.topic.sent == []


async def test_without_a_score_the_page_shows_nothing_chosen(web):
    status, page = await web.get(f"/feedback/{token('en')}")
    assert status == 200 and chosen(page) == [] and "Please choose" not in page


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_forged_or_altered_token_gets_403_and_records_nothing(web, method):
    good = token()
    iid, cid, recipient, locale, severity, signature = good.split(".")
    refused = sample(M.FEEDBACK_ANSWERS, result="refused")
    for bad in (good[:-1] + ("A" if good[-1] != "A" else "B"), f"{iid}.{cid}.{recipient}.{locale}.minor.{signature}",
                f"{iid}.{cid}.{recipient}.en.{severity}.{signature}", token(key=b"another-key"), "not.a.token",
                "x" * 5000, token(customer_id="c-43")[:-22] + signature):
        if method == "GET":
            status, page = await web.get(f"/feedback/{bad}?score=5")
        else:
            status, page = await web.post(f"/feedback/{bad}", data={"score": "5"})
        assert status == 403, bad
        assert "This link is not valid." in page and "このリンクは無効です。" in page and "<form" not in page
    assert web.topic.sent == []
    if method == "POST":
        assert sample(M.FEEDBACK_ANSWERS, result="refused") == refused + 7


async def test_a_link_signed_with_the_previous_secret_still_works(web):
    old = token(key=b"test-secret")
    assert (await web.get(f"/feedback/{old}?score=3"))[0] == 200
    assert (await web.post(f"/feedback/{old}", data={"score": "3"}))[0] == 200 and len(web.topic.sent) == 1


async def test_an_answer_is_recorded_once_per_contact_and_a_later_one_replaces_it(web):
    status, page = await web.post(f"/feedback/{token('ja', 'critical')}", data={"score": "2", "comment": " 遅かった\r\n "})
    assert status == 200
    assert "ご回答いただき、ありがとうございました。" in page and "活用いたします" in page
    assert "<textarea" in page and "遅かった" in page and 'name="score" value="2"' in page   # the box offered again
    assert "radio" not in page and "APIのエラー" not in page                                   # nothing more
    status, page = await web.post(f"/feedback/{token('ja', 'critical')}", data={"score": "4", "comment": ""})
    assert status == 200
    other = await web.post(f"/feedback/{token('en', 'critical', contact_key('dev@example.jp'))}", data={"score": "5"})
    assert other[0] == 200 and "Thank you for your answer." in other[1]
    first, second, third = web.topic.records()
    fid = feedback_id("inc-7", "c-42", RECIPIENT)
    assert [key for key, _ in web.topic.sent] == [fid.encode(), fid.encode(), third["feedback_id"].encode()]
    assert first == {"feedback_id": fid, "incident_id": "inc-7", "customer_id": "c-42", "severity": "critical",
                     "score": 2, "comment": "遅かった", "at": "2026-11-25T01:00:00Z"}
    assert (second["score"], second["comment"]) == (4, None) and third["feedback_id"] != fid
    # every worker's view keeps the latest answer of each contact
    web.answers.apply(web.topic.sent)
    status, body = await web.get("/api/incidents/inc-7")
    assert status == 200 and json.loads(body)["feedback"] == {"answers": 2, "mean": 4.5}


async def test_the_score_and_the_count_are_observed_where_the_answer_is_recorded(web):
    before = (sample(M.FEEDBACK_SCORE, severity="minor"), sample(M.FEEDBACK_ANSWERS, result="recorded"))
    low = M.REGISTRY.get_sample_value("outage_feedback_score_bucket", {"severity": "minor", "le": "1.0"}) or 0
    await web.post(f"/feedback/{token(severity='minor')}", data={"score": "1"})
    await web.post(f"/feedback/{token(severity='minor')}", data={"score": "9"})   # not counted as a score
    web.answers.apply(web.topic.sent)   # the view observes nothing
    after = (sample(M.FEEDBACK_SCORE, severity="minor"), sample(M.FEEDBACK_ANSWERS, result="recorded"))
    assert after == (before[0] + 1, before[1] + 1)
    assert M.REGISTRY.get_sample_value("outage_feedback_score_bucket", {"severity": "minor", "le": "1.0"}) == low + 1
    text = (await web.get("/metrics"))[1]
    assert 'outage_feedback_score_bucket{le="5.0",severity="minor"}' in text
    assert "c-42" not in text and "inc-7" not in text


@pytest.mark.parametrize("data,problem", [
    ({"score": "0"}, "1から5までの数字をお選びください。"),
    ({"score": "6", "comment": "残す"}, "1から5までの数字をお選びください。"),
    ({"comment": "点数なし"}, "1から5までの数字をお選びください。"),
    ([("score", "3"), ("score", "4")], "1から5までの数字をお選びください。"),
    ({"score": "3", "comment": "長" * (MAX_COMMENT_CHARS + 1)}, "ご意見は2,000文字以内でご記入ください。"),
])
async def test_a_bad_answer_gets_400_and_the_form_again_with_what_was_given(web, data, problem):
    invalid = sample(M.FEEDBACK_ANSWERS, result="invalid")
    status, page = await web.post(f"/feedback/{token()}", data=data)
    assert status == 400 and problem in page and "<form" in page
    comment = dict(data).get("comment") if isinstance(data, dict) else None
    if comment:
        assert comment in page   # nothing typed is lost
    assert web.topic.sent == [] and sample(M.FEEDBACK_ANSWERS, result="invalid") == invalid + 1


async def test_a_comment_at_its_limit_is_taken_and_one_over_it_never_cut(web):
    assert (await web.post(f"/feedback/{token()}", data={"score": "3", "comment": "字" * MAX_COMMENT_CHARS}))[0] == 200
    assert web.topic.records()[0]["comment"] == "字" * MAX_COMMENT_CHARS


async def test_bodies_that_cannot_be_an_answer_get_400_or_413_never_500(web):
    url = f"/feedback/{token('en')}"
    status, page = await web.post(url, data=b"score=3&comment=" + b"x" * (1024 * 1024),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and "too long to record" in page
    for body in (b"\xff\xfe", b"score=%FF", b"&".join(b"a=%d" % i for i in range(100)), b"{\"score\": 3}",
                 b"score=3&comment=%00%00"):
        status, page = await web.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status in (200, 400), (body, status)
    # a comment of control characters only is no comment
    assert [r["comment"] for r in web.topic.records()] == [None]


async def test_a_broker_that_does_not_take_the_answer_gets_503_and_the_form_keeps_it(web):
    web.reach.reachable = False
    status, page = await web.post(f"/feedback/{token('en')}", data={"score": "2", "comment": "slow"})
    assert status == 503 and "Please try again in a minute." in page and chosen(page) == ["2"] and "slow" in page
    web.reach.reachable, web.topic.fail = True, True
    status, page = await web.post(f"/feedback/{token('en')}", data={"score": "2"})
    assert status == 503 and web.topic.sent == []
    web.topic.fail = False
    assert (await web.post(f"/feedback/{token('en')}", data={"score": "2"}))[0] == 200


async def test_an_incident_without_answers_shows_none(web):
    status, body = await web.get("/api/incidents/inc-7")
    assert status == 200 and json.loads(body)["feedback"] == {"answers": 0, "mean": None}
    assert (await web.get("/api/incidents/inc-none"))[0] == 404


# -- the view of the answers -----------------------------------------------------------------------


def answer(fid: str, incident_id: str = "inc-7", score: int = 3, **extra) -> tuple[bytes, bytes]:
    record = {"feedback_id": fid, "incident_id": incident_id, "customer_id": "c-1", "severity": "major",
              "score": score, "comment": None, "at": "2026-11-25T10:00:00+00:00", **extra}
    return fid.encode(), json.dumps(record).encode()


def test_the_view_keeps_the_latest_answer_per_feedback_id_and_skips_what_is_not_one():
    view = FeedbackView(bootstrap_servers=["127.0.0.1:9"], topic="t.feedback", partitions=2)
    view.apply([answer("fb-a", score=1), answer("fb-b", score=4), answer("fb-c", "inc-8", 5), answer("fb-a", score=5)])
    assert view.summary("inc-7").as_dict() == {"answers": 2, "mean": 4.5}
    assert view.summary("inc-8").as_dict() == {"answers": 1, "mean": 5.0}
    view.apply([(b"fb-b", None)])                        # a tombstone removes the answer
    assert view.summary("inc-7").as_dict() == {"answers": 1, "mean": 5.0}
    key, value = answer("fb-d", score=2)
    view.apply([(b"fb-other", value), (None, value), (b"\xff", value), (key, b"not json"), (key, b"[]"),
                (key, json.dumps({"feedback_id": "fb-d", "score": 2}).encode()), answer("fb-d", score=6),
                answer("fb-d", score="2"), answer("fb-e", score=1)])
    assert view.summary("inc-7").as_dict() == {"answers": 2, "mean": 3.0} and view.size() == 3
    assert view._skipped == 8 and not view.caught_up   # it has not read the topic
