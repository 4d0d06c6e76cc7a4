"""Everything customers see, from devtools/screenshots.py's sample data (no Chromium here): every page and
notice renders in both languages, speaks its language, shows no UTC time where the reader's zone is known,
and the status page never shows an estimate that has gone by as an estimate (issue 16); the email
layouts are dark-mode and Outlook safe (issue 17)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from devtools.screenshots import NOW, notice_contents, notices, pages, status_document
from notifiers.status_page import Reader, render_status_page

PAGES = pages()
NOTICES = notices()
# where the reader's zone is known: the customer's status page and every notice (the public page is in UTC
# by design unless ?tz= names a zone, and its script shows the browser's zone)
ZONED = {name: html for name, html in {**PAGES, **NOTICES}.items()
         if name.startswith(("status-customer-", "notice-"))}
UTC_TIME = re.compile(r"\d{1,2}:\d{2}(?: [AP]M)? ?(?:UTC|（UTC）)|\bUTC\b")
HIRAGANA = re.compile(r"[\u3041-\u309f]")


def test_every_page_and_notice_renders_in_both_languages():
    for prefix in ("status-public", "status-customer", "preferences-form", "preferences-saved", "unsubscribe-confirm",
                   "unsubscribe-done", "unsubscribe-undone", "feedback-form", "feedback-thanks"):
        assert {f"{prefix}-en", f"{prefix}-ja"} <= PAGES.keys(), prefix
    kinds = {name.removeprefix("notice-").rsplit("-", 1)[0] for name in NOTICES}
    assert len(kinds) == 13 and "acknowledged-start-and-end" in kinds   # 6 incident, 6 maintenance, 1 variant
    for name, html in {**PAGES, **NOTICES}.items():
        assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>"), name
        if name.startswith("invalid-"):
            assert 'lang="ja"' in html and "This link is not valid." in html, name   # both languages
        elif name.endswith("-ja"):
            assert '<html lang="ja">' in html and HIRAGANA.search(html), name
        else:
            assert '<html lang="en">' in html and not HIRAGANA.search(_visible(html)), name


def _visible(html: str) -> str:
    """The text a reader sees, roughly (no head, no tags; the invalid pages' Japanese line aside)."""
    html = re.sub(r"<head>.*?</head>|<script>.*?</script>|<[^>]+lang=\"ja\"[^>]*>[^<]*<", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("name", sorted(ZONED))
def test_no_utc_time_where_the_readers_zone_is_known(name):
    text = _visible(ZONED[name])
    assert not UTC_TIME.search(text), (name, UTC_TIME.search(text))
    # every clock time is followed by the customer's zone (Europe/London in English, Tokyo in Japanese)
    zone = "日本時間" if name.endswith("-ja") else "GMT"
    times = re.findall(r"\d{1,2}:\d{2}(?: [AP]M)?(?:〜\d{1,2}:\d{2})?\s*[（ ]?([A-Za-z]+|日本時間)?", text)
    assert all(label == zone for label in times), (name, times)
    if "start-and-end" not in name and "unaffected" not in name:   # those two say no time
        assert times, name


def test_the_status_page_never_shows_an_estimate_that_has_gone_by_as_an_estimate():
    doc = status_document()
    eta = doc["active"][1]["eta"]   # 20 minutes ago
    for locale, passed in (("en", "Recovery is taking longer than our earlier estimate."),
                           ("ja", "復旧に、前回お知らせした見込みより時間を要しております。")):
        page = render_status_page(doc, Reader(locale, "Asia/Tokyo", zone_named=True), NOW)
        assert passed in page and "16:10" not in page and "4:10 PM" not in page
        assert eta.replace("+00:00", "Z") not in page
        # an hour earlier the same estimate was still ahead, and it was shown
        earlier = render_status_page(doc, Reader(locale, "Asia/Tokyo", zone_named=True), NOW - timedelta(hours=1))
        assert passed not in earlier and ("16:10" in earlier or "4:10 PM" in earlier)
    # no estimate at all is not "taking longer"
    page = render_status_page(doc, Reader("en"), NOW)
    assert page.count("Recovery is taking longer") == 1


@pytest.mark.parametrize("name", sorted(NOTICES))
def test_notice_html_is_dark_mode_and_outlook_safe(name):
    html = NOTICES[name]
    assert '<meta name="color-scheme" content="light dark">' in html
    assert '<meta name="supported-color-schemes" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert not re.search(r"display:\s*(flex|grid)", html), name          # Outlook ignores both
    assert re.search(r'<table role="presentation" width="100%"', html)   # a table-based outer layout
    assert '<!--[if mso]><table role="presentation" width="600"' in html   # a fixed width for Outlook (Word)
    # every coloured element carries a class the dark styles recolour
    for tag in re.findall(r"<(?:p|h1|h2|td|span|li|ul|table|a)\b[^>]*style=\"[^\"]*\bcolor:#[^\"]*\"[^>]*>", html):
        assert 'class="' in tag, (name, tag)


def test_the_sample_covers_a_passed_and_a_future_estimate_in_notices():
    contents = notice_contents()
    assert contents["notice-progress-en"][1].eta_state == "future"
    assert contents["notice-scheduled-ja"][1].eta_state == "passed"


def test_a_japanese_window_within_a_day_names_the_date_and_the_zone_once():
    from datetime import datetime, timezone

    from notifiers.timefmt import format_window

    at = lambda h, d=5: datetime(2026, 12, d, h, 0, tzinfo=timezone.utc)   # noqa: E731
    assert format_window(at(16, 4), at(18, 4), "Asia/Tokyo", "ja", now=NOW) == "12月5日 1:00〜3:00（日本時間）"
    # over midnight: both times whole
    assert format_window(at(14, 4), at(16, 4), "Asia/Tokyo", "ja", now=NOW) == \
        "12月4日 23:00（日本時間）〜12月5日 1:00（日本時間）"
    # English keeps its two times
    assert format_window(at(2), at(3), "Europe/London", "en", now=NOW) == "2:00 AM GMT on 5 Dec to 3:00 AM GMT"


def test_the_customer_status_page_writes_a_window_and_a_place_as_its_language_does():
    ja, en = PAGES["status-customer-ja"], PAGES["status-customer-en"]
    assert "12月5日 16:30〜18:30（日本時間）" in ja and "billing-api（ap-northeast-1）、billing-api-gateway" in ja
    assert "7:30 AM GMT on 5 Dec to 9:30 AM GMT" in en and "billing-api (ap-northeast-1), billing-api-gateway" in en


def test_a_start_and_end_notice_does_not_promise_to_share_the_estimate_by_email():
    for locale, promise, where in (("en", "we will share one as soon as we do", "on the status page"),
                                   ("ja", "判明しだいお知らせいたします", "稼働状況ページに掲載いたします")):
        html = NOTICES[f"notice-acknowledged-start-and-end-{locale}"]
        assert promise not in html and where in html
        assert promise in NOTICES[f"notice-acknowledged-{locale}"]   # every-update contacts hear it by email


@pytest.mark.parametrize("name", sorted(NOTICES))
def test_a_notice_invites_a_reply_once(name):
    text = _visible(NOTICES[name])
    assert text.count("reply to this email") + text.count("このメールにご返信ください") <= 1, name


def test_a_cancelled_maintenance_does_not_describe_the_work_that_will_not_happen():
    for locale, work in (("en", "Writes pause for up to 10 minutes"), ("ja", "書き込みが最大10分間停止します")):
        assert work not in NOTICES[f"notice-maintenance-cancelled-{locale}"]
        assert work in NOTICES[f"notice-maintenance-scheduled-{locale}"]
