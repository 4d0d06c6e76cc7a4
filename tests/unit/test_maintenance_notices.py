"""Planned-maintenance notices: the six kinds in English and Japanese, in the customer's zone, naming
its own affected services, with their headers (notifiers/maintenance.py, through NoticeComposer)."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest

from core.vocabulary import MAINTENANCE_KINDS, M_CANCELLED, M_CHANGED, M_COMPLETED, M_SCHEDULED, M_STARTED
from domain import maintenance as MR
from domain.audience import NoticeJob
from notifiers.maintenance import maintenance_content, render_maintenance
from notifiers.notice import NoticeComposer
from tests.unit.test_maintenance_rules import at, customer, event, fold, scheduled

JST = customer("c-1", [("api", "tokyo"), ("web", "tokyo")], [("sato@example.jp", "Sato")],
               name="Example KK", locale="ja", timezone="Asia/Tokyo")
UTC = customer("c-2", [("api", "tokyo")], ["ops@example.com"], name="Example Ltd")


def job(m, kind: str, customer=UTC, minutes: float = 0, **over) -> NoticeJob:
    owed = MR.Owed(kind, m.starts_at, m.round)
    rnd = MR.snapshot(m, owed, at(minutes), 0.0)
    services = tuple(sorted((s.component, s.region) for s in customer.services
                            if m.scope().covers(s.component, s.region)))
    contact = customer.contacts[0]
    return NoticeJob(kind=kind, round=rnd, customer=customer, recipient="k", email=contact.email,
                     contact_name=contact.name, message_id=f"<mnt-1.{m.round}.{kind}.{customer.customer_id}.k@x>",
                     in_reply_to=over.get("in_reply_to"), services=services)


def words(j, minutes: float = 0):
    return render_maintenance(maintenance_content(j, at(minutes), status_url="https://s/status",
                                                  unsubscribe_url="https://s/u/t"))


@pytest.mark.parametrize("kind", MAINTENANCE_KINDS)
@pytest.mark.parametrize("customer", [UTC, JST])
def test_every_kind_renders_in_both_languages_with_the_customers_services_only(kind, customer):
    m = fold(scheduled(message={"en": "Writes pause for up to 10 minutes.", "ja": "書き込みが最大10分間停止します。"}))
    if kind == M_COMPLETED:
        m = fold(scheduled(message="x"), event("completed", 150))
    r = words(job(m, kind, customer))
    assert r.subject and "\n" not in r.subject
    body = r.text.split(r.subject, 1)[1]
    assert ("api (tokyo)" in body or "api（tokyo）" in body) and "web" not in body   # its own affected services
    if customer is JST:
        assert r.subject.startswith("【") and "日本時間" in r.text and "Sato 様" in r.text
    else:
        assert r.subject.startswith("[") and "UTC" in r.text and "Hello Sato" not in r.text
    assert "<script" not in r.html


def test_scheduled_says_when_in_the_customers_zone_and_when_we_write_next():
    m = fold(scheduled())       # 2:00 to 3:00 UTC on 5 Dec, reminder at 1:00
    en = words(job(m, M_SCHEDULED)).text
    assert "from 2:00 AM UTC on 5 Dec to 3:00 AM UTC" in en
    assert "reminder at 1:00 AM UTC on 5 Dec" in en and "anything beforehand" in en
    ja = words(job(m, M_SCHEDULED, JST))
    assert ja.subject == "【メンテナンスのお知らせ】データベースの更新"
    assert "12月5日 11:00〜12:00（日本時間）に、「データベースの更新」の作業を実施いたします。"   # the zone once (VOICE) in ja.text


def test_no_reminder_promised_when_none_will_come():
    m = fold(scheduled(0, start=30, end=60))
    assert "reminder" not in words(job(m, M_SCHEDULED)).text
    assert "when the maintenance starts, at 12:30 AM UTC" in words(job(m, M_SCHEDULED)).text


def test_a_moved_window_says_so_first_with_both_windows():
    m = fold(scheduled(), event("updated", 10, starts_at=at(300), ends_at=at(360)))
    en = words(job(m, M_CHANGED), 10)
    assert en.subject == "[Maintenance changed] Database upgrade"
    assert "has moved: it now runs from 5:00 AM UTC on 5 Dec to 6:00 AM UTC, instead of 2:00 AM UTC on 5 Dec " \
           "to 3:00 AM UTC" in en.text
    assert "【メンテナンス日時変更】" in words(job(m, M_CHANGED, JST), 10).subject
    text_only = fold(scheduled(), event("updated", 10, message="Reads pause too"))
    assert "The time is unchanged" in words(job(text_only, M_CHANGED), 10).text


def test_completed_gives_the_times_and_duration_and_cancelled_says_it_is_the_last():
    m = fold(scheduled(), event("completed", 150))
    text = words(job(m, M_COMPLETED), 150).text
    assert "2:00 AM UTC on 5 Dec to 2:30 AM UTC (30 minutes)" in text and "available as usual" in text
    m = fold(scheduled(), event("cancelled", 5))
    c = words(job(m, M_CANCELLED), 5)
    assert c.subject == "[Maintenance cancelled] Database upgrade" and "has been cancelled" in c.text
    assert "last email" in c.text
    m = fold(scheduled(), event("updated", 5, regions=["osaka"]))
    assert "no longer involves your services" in words(job(m, M_CANCELLED), 5).text


def test_ops_text_is_escaped_in_html():
    m = fold(scheduled(message="<b>bold</b> & more"))
    r = words(job(m, M_STARTED))
    assert "<b>bold</b> & more" in r.text and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in r.html


def test_the_composer_writes_the_maintenance_headers_and_threads():
    m = fold(scheduled())
    composer = NoticeComposer(public_url="https://status.example.com", mail_from="status@example.com",
                              signing_key=b"k" * 32)
    data = composer(job(m, M_STARTED, in_reply_to="<mnt-1.1.maintenance-scheduled.c-2.k@x>"), at(120))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["X-Outage-Maintenance"] == "mnt-1" and msg["X-Outage-Notice"] == M_STARTED
    assert msg["X-Outage-Incident"] is None and msg["X-Outage-Seq"] == "1"
    assert msg["X-Outage-Starts-At"] == "2026-12-05T02:00:00Z" and msg["X-Outage-Ends-At"] == "2026-12-05T03:00:00Z"
    assert msg["In-Reply-To"] == "<mnt-1.1.maintenance-scheduled.c-2.k@x>"
    assert msg["Subject"] == "[Maintenance started] Database upgrade"
    assert msg["List-Unsubscribe"].startswith("<https://status.example.com/unsubscribe/")


def test_a_delivery_helper_composes_a_maintenance_notice_from_what_the_pipe_carries():
    """notifiers/delivery.py sends the round pickled once and the job's fields; the child rebuilds a
    NoticeJob with a bare customer and composes it: the same headers come out."""
    import pickle

    from notifiers.delivery import _Customer

    m = fold(scheduled())
    original = job(m, M_STARTED)
    rnd = pickle.loads(pickle.dumps(original.round, protocol=pickle.HIGHEST_PROTOCOL))
    rebuilt = NoticeJob(kind=original.kind, round=rnd, customer=_Customer("c-2", "Example Ltd", "en", "UTC"),
                        recipient="k", email=original.email, contact_name=None, message_id=original.message_id,
                        in_reply_to=None, services=original.services)
    composer = NoticeComposer(public_url="https://s", mail_from="status@example.com", signing_key=b"k" * 32)
    msg = email.message_from_bytes(composer(rebuilt, at(120)), policy=email.policy.default)
    assert msg["X-Outage-Maintenance"] == "mnt-1" and msg["X-Outage-Notice"] == M_STARTED
    assert "api (tokyo)" in msg.get_body(("plain",)).get_content()
