"""Feedback after an incident, on real workers: every resolved notice carries five signed links;
an answer posted to one worker is recorded on ``outage.feedback`` (one per contact per incident,
a later one replacing it), and ``GET /api/incidents/{id}`` on another worker counts it. Opening
the links records nothing; a forged link gets 403 on every worker."""

from __future__ import annotations

import re

import pytest

from devtools.http import post_form
from tests.conftest import API_TOKEN, http
from tests.factories import customer, load_customers
from tests.integration.test_any_worker import eventually

pytestmark = pytest.mark.integration

CUSTOMERS = [customer(f"c-fb-{n}", name=f"Feedback {n}", locale=("ja", "en")[n % 2],
                      contacts=[f"ops{n}@fb{n}.example.com"], services=[("api", "eu-west-1")]) for n in range(4)]
LINK = re.compile(r"https?://[^\s\"<>]+/feedback/([^\s\"<>?]+)\?score=(\d)")


def metric(worker, name: str, **labels) -> float:
    status, text = worker.get("/metrics")
    assert status == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_an_answer_on_one_worker_is_counted_on_the_other(workers, broker, prefix, smtp, read_topic):
    load_customers(broker.bootstrap, prefix, CUSTOMERS)
    one, other = workers(ready=False), workers(ready=False)
    for w in (one, other):
        w.wait_ready(timeout=90)
    status, body = http("POST", one.url + "/api/incidents",
                        {"severity": "critical", "title": {"en": "API errors", "ja": "APIのエラー"},
                         "components": ["api"], "update_interval_seconds": 3600}, token=API_TOKEN)
    assert status == 201, body
    incident_id = body["incident_id"]
    await smtp.wait_for(len(CUSTOMERS), timeout=60, incident=incident_id, kind="acknowledged")
    assert http("POST", one.url + f"/api/incidents/{incident_id}/resolve", {"message": "Fixed."},
                token=API_TOKEN)[0] == 202
    entries = await smtp.wait_for(len(CUSTOMERS), timeout=60, incident=incident_id, kind="resolved")

    tokens = {}
    for entry in entries:
        msg = smtp.message(int(entry["n"]))
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content().replace("&amp;", "&")
        for part in (text, html):
            found = LINK.findall(part)
            assert [score for _, score in found] == ["1", "2", "3", "4", "5"], entry
            assert len({token for token, _ in found}) == 1
        tokens[entry["recipients"][0]] = found[0][0]
    assert len(set(tokens.values())) == len(CUSTOMERS)

    first, second = sorted(tokens)[:2]
    # a link scanner opening every link on both workers records nothing
    for w in (one, other):
        for n in range(1, 6):
            status, page = w.get(f"/feedback/{tokens[first]}?score={n}")
            assert status == 200 and f'value="{n}" required checked' in page
        status, page = w.get(f"/feedback/{tokens[first][:-2]}AA?score=5")
        assert status == 403
        assert post_form(w.url + f"/feedback/{tokens[first][:-2]}AA", {"score": "5"})[0] == 403
    assert read_topic("feedback", idle=1.0) == []

    # answers on one worker (the first contact changes its mind), read on the other
    before = metric(one, "outage_feedback_score_count", severity="critical")
    for rcpt, score in ((first, "2"), (second, "5"), (first, "4")):
        status, page = post_form(one.url + f"/feedback/{tokens[rcpt]}", {"score": score, "comment": "ok"})
        assert status == 200, page
    assert post_form(one.url + f"/feedback/{tokens[second]}", {"score": "9"})[0] == 400

    def counted():
        # every worker follows outage.feedback on its own: each gets there when it has read it
        for w in (other, one):
            status, body = w.get(f"/api/incidents/{incident_id}")
            assert status == 200 and body["feedback"] == {"answers": 2, "mean": 4.5}, body
        return True
    await eventually(counted, timeout=30)
    records = read_topic("feedback")
    # one key per contact (the topic's partitions are read one after another: group by key, whose
    # records keep their order): the first contact's 2 then 4, the second contact's 5
    by_key: dict[str, list[int]] = {}
    for r in records:
        by_key.setdefault(r["feedback_id"], []).append(r["score"])
    assert sorted(by_key.values()) == [[2, 4], [5]]
    assert {r["severity"] for r in records} == {"critical"} and len({r["feedback_id"] for r in records}) == 2
    # observed once, by the worker that recorded the answers
    assert metric(one, "outage_feedback_score_count", severity="critical") == before + 3
    assert metric(other, "outage_feedback_score_count", severity="critical") == 0
