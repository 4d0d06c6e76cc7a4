"""Every page and notice customers see, rendered from sample data and screenshotted (a development
tool, not production)::

    python -m devtools.screenshots OUTDIR [--no-shots] [--only SUBSTRING]

Renders, with the product's own renderers and no broker, every customer-facing page (the status
pages, the preferences and unsubscribe pages and their undo, the feedback pages, the invalid-link
pages) and the HTML part of every notice kind (the incident kinds, a start-and-end variant, the six
maintenance kinds), in English and Japanese, to ``OUTDIR/<name>.html``; then screenshots each with
headless Chromium at a phone width (390x844) and a desktop width (1280x900) to
``OUTDIR/<name>.<width>.png``, and each notice also in dark mode (``<name>.<width>.dark.png``).
Look at every PNG: that is the point of it.

``pages()`` and ``notices()`` return the documents (name -> HTML) without writing anything; the unit
test ``tests/unit/test_customer_views.py`` renders them all (no Chromium there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.vocabulary import (
    ACKNOWLEDGED,
    LOCALES,
    MAINTENANCE_KINDS,
    M_CANCELLED,
    M_CHANGED,
    M_COMPLETED,
    M_REMINDER,
    M_STARTED,
    NOTICE_KINDS,
    PROGRESS,
    RESOLVED,
    SCHEDULED,
    TICKET_ACK,
    UNAFFECTED,
)
from domain import maintenance as MR
from domain.audience import NoticeJob
from domain.content import NoticeContent
from notifiers.maintenance import maintenance_content, render_maintenance
from notifiers.pages import FeedbackPage, PreferencesPage, render_feedback_page, render_preferences_page
from notifiers.render import render
from notifiers.status_page import Reader, render_invalid_link, render_status_page
from schemas import Customer
from schemas.maintenance import MaintenanceEvent

NOW = datetime(2026, 12, 4, 7, 30, tzinfo=timezone.utc)     # 16:30 JST
ZONES = {"en": "Europe/London", "ja": "Asia/Tokyo"}
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
# --full: the same widths, a window tall enough for the whole of a long notice (nothing below the fold)
FULL_HEIGHT = {"phone": 2600, "desktop": 1700}
BASE = "https://status.example.com"
LONG = "billing-api-gateway-international"   # a long service name: does it wrap at phone width?


def _iso(at: datetime) -> str:
    return at.isoformat()


def _text(en: str, ja: str) -> dict[str, str]:
    return {"en": en, "ja": ja}


def status_document(now: datetime = NOW) -> dict:
    """A status document (``/status.json``'s shape): two incidents under way (one whose estimate
    has gone by), one resolved, one maintenance ahead and one under way."""
    return {
        "generated_at": _iso(now),
        "active": [
            {"incident_id": "inc-7", "severity": "major", "status": "investigating",
             "title": _text("Billing API errors", "請求APIでエラーが発生しています"),
             "message": _text("We are investigating elevated error rates on the billing API.",
                              "請求APIでエラー率が上昇しており、現在、原因を調査しております。"),
             "components": ["billing-api", LONG], "regions": ["ap-northeast-1"], "eta": None,
             "started_at": _iso(now - timedelta(minutes=40)), "updated_at": _iso(now - timedelta(minutes=10)),
             "resolved_at": None, "seq": 2, "next_update_at": _iso(now + timedelta(minutes=50)), "history": []},
            {"incident_id": "inc-8", "severity": "minor", "status": "monitoring",
             "title": _text("Slow dashboard", "ダッシュボードの表示遅延"),
             "message": _text("A fix is in place; we are monitoring.", "対策を実施し、経過を観察しております。"),
             "components": ["dashboard"], "regions": [], "eta": _iso(now - timedelta(minutes=20)),   # gone by
             "started_at": _iso(now - timedelta(hours=2)), "updated_at": _iso(now - timedelta(minutes=5)),
             "resolved_at": None, "seq": 3, "next_update_at": _iso(now + timedelta(minutes=55)), "history": []},
        ],
        "recently_resolved": [
            {"incident_id": "inc-5", "severity": "critical", "status": "resolved",
             "title": _text("Login failures", "ログインできない障害"),
             "message": _text("Logins work again. We're sorry for the disruption.",
                              "ログインは正常に戻りました。ご不便をおかけし、申し訳ございませんでした。"),
             "components": ["auth"], "regions": ["eu-west-1"], "eta": None,
             "started_at": _iso(now - timedelta(days=1, hours=3)), "updated_at": _iso(now - timedelta(days=1, hours=1)),
             "resolved_at": _iso(now - timedelta(days=1, hours=1)), "seq": 3, "next_update_at": None, "history": []},
        ],
        "maintenance": [
            {"maintenance_id": "mnt-3", "title": _text("Database upgrade", "データベースの更新"),
             "message": _text("Writes pause for up to 10 minutes.", "書き込みが最大10分間停止します。"),
             "components": ["billing-api"], "regions": ["ap-northeast-1"], "status": "scheduled",
             "starts_at": _iso(now + timedelta(days=1)), "ends_at": _iso(now + timedelta(days=1, hours=2))},
            {"maintenance_id": "mnt-4", "title": _text("Search index rebuild", "検索インデックスの再構築"),
             "message": "", "components": ["search"], "regions": [], "status": "scheduled",
             "starts_at": _iso(now - timedelta(minutes=30)), "ends_at": _iso(now + timedelta(minutes=30))},
        ],
    }


SERVICES = (("auth", "ap-northeast-1"), ("billing-api", "ap-northeast-1"), ("dashboard", "ap-northeast-1"),
            (LONG, "ap-northeast-1"), ("search", "ap-northeast-1"))


def pages(now: datetime = NOW) -> dict[str, str]:
    """Every web page a customer opens, by name."""
    doc = status_document(now)
    out: dict[str, str] = {}
    for locale in LOCALES:
        out[f"status-public-{locale}"] = render_status_page(doc, Reader(locale), now)
        out[f"status-customer-{locale}"] = render_status_page(
            doc, Reader(locale, ZONES[locale], zone_named=True), now, services=SERVICES)
        email = "ops-team@example.jp" if locale == "ja" else "ops-team@example.com"
        prefs = dict(action="../preferences/tok", email=email)
        out[f"preferences-form-{locale}"] = render_preferences_page(
            PreferencesPage("form", locale, receive="start-and-end", undo_to="all", **prefs))
        out[f"preferences-saved-{locale}"] = render_preferences_page(
            PreferencesPage("saved", locale, receive="start-and-end", undo_to="all", **prefs))
        out[f"preferences-problem-{locale}"] = render_preferences_page(
            PreferencesPage("form", locale, receive="all", problem="bad-choice", **prefs))
        out[f"unsubscribe-confirm-{locale}"] = render_preferences_page(
            PreferencesPage("unsubscribe", locale, action="../unsubscribe/tok", email=email))
        out[f"unsubscribe-done-{locale}"] = render_preferences_page(
            PreferencesPage("unsubscribed", locale, action="../unsubscribe/tok", email=email, undo_to="all",
                            preferences_url="../preferences/tok2"))
        out[f"unsubscribe-undone-{locale}"] = render_preferences_page(   # undo: receiving again
            PreferencesPage("saved", locale, action="../preferences/tok2", email=email, receive="all"))
        title = "Billing API errors" if locale == "en" else "請求APIでエラーが発生しています"
        out[f"feedback-form-{locale}"] = render_feedback_page(
            FeedbackPage("form", locale, action="../feedback/tok", score=4, incident_title=title))
        out[f"feedback-problem-{locale}"] = render_feedback_page(
            FeedbackPage("form", locale, action="../feedback/tok", problem="bad-score", incident_title=title))
        out[f"feedback-thanks-{locale}"] = render_feedback_page(
            FeedbackPage("thanks", locale, action="../feedback/tok", score=4, comment="", incident_title=title))
    out["invalid-status-link"] = render_invalid_link()
    out["invalid-preferences-link"] = render_preferences_page(PreferencesPage("invalid"))
    out["invalid-feedback-link"] = render_feedback_page(FeedbackPage("invalid"))
    return out


def _incident(kind: str, locale: str, now: datetime, **over) -> NoticeContent:
    final = kind in (RESOLVED, UNAFFECTED)
    en = locale == "en"
    base = dict(
        kind=kind, locale=locale, timezone=ZONES[locale], now=now, incident_id="inc-7", seq=3, severity="major",
        status={RESOLVED: "resolved", PROGRESS: "identified", SCHEDULED: "monitoring"}.get(kind, "investigating"),
        title="Billing API errors" if en else "請求APIでエラーが発生しています",
        message=("We are seeing elevated error rates on billing API requests.\nPayments may fail and need a retry."
                 if en else "請求APIのリクエストでエラー率が上昇しています。\n決済が失敗し、再試行が必要になる場合があります。"),
        services=(("billing-api", "ap-northeast-1"), (LONG, "ap-northeast-1")),
        started_at=now - timedelta(hours=2, minutes=5),
        eta=now + timedelta(hours=1) if kind == PROGRESS else None,
        eta_state="future" if kind == PROGRESS else ("passed" if kind == SCHEDULED else "unknown"),
        next_update_at=None if final else now + timedelta(minutes=30),
        resolved_at=now if kind == RESOLVED else None,
        customer_name="Example Ltd" if en else "株式会社サンプル", contact_name="Alex Smith" if en else "佐藤",
        ticket_id="T-100" if kind == TICKET_ACK else None,
        ticket_subject=("Payments fail with 503" if en else "決済で503エラーが返ります") if kind == TICKET_ACK else None,
        status_url=f"{BASE}/status", customer_status_url=f"{BASE}/status/customer/tok",
        unsubscribe_url=f"{BASE}/unsubscribe/tok", preferences_url=f"{BASE}/preferences/tok",
        feedback_url=f"{BASE}/feedback/tok" if kind == RESOLVED else "", replies=True,
    )
    base.update(over)
    return NoticeContent(**base)


def _event(type_: str, at: datetime, **fields) -> MaintenanceEvent:
    data = {"event_id": f"{type_}-{at.isoformat()}", "maintenance_id": "mnt-1", "type": type_, "at": at.isoformat(),
            **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}}
    return MaintenanceEvent.model_validate(data)


def _fold(*events: MaintenanceEvent) -> MR.MaintenanceState:
    state = None
    for ev in events:
        decision = MR.decide(state, ev)
        if decision.error:
            raise ValueError(decision.error)
        state = decision.state
    return state


def _maintenance(kind: str, locale: str, now: datetime):
    t0 = now
    first = _event("scheduled", t0, title=_text("Database upgrade", "データベースの更新"),
                   message=_text("Writes pause for up to 10 minutes; reads continue as usual.",
                                 "書き込みが最大10分間停止します。読み取りは通常どおりご利用いただけます。"),
                   components=["billing-api", LONG], regions=["ap-northeast-1"],
                   starts_at=t0 + timedelta(hours=20), ends_at=t0 + timedelta(hours=22), reminder_seconds=3600)
    events = [first]
    at = t0
    if kind == M_CHANGED:
        at = t0 + timedelta(minutes=10)
        events.append(_event("updated", at, starts_at=t0 + timedelta(hours=26), ends_at=t0 + timedelta(hours=27)))
    elif kind == M_CANCELLED:
        at = t0 + timedelta(minutes=10)
        events.append(_event("cancelled", at))
    elif kind == M_COMPLETED:
        at = t0 + timedelta(hours=21, minutes=30)
        events.append(_event("completed", at))
    elif kind == M_REMINDER:
        at = t0 + timedelta(hours=19)
    elif kind == M_STARTED:
        at = t0 + timedelta(hours=20)
    m = _fold(*events)
    rnd = MR.snapshot(m, MR.Owed(kind, m.starts_at, m.round), at, 0.0)
    en = locale == "en"
    customer = Customer.model_validate({"customer_id": "c-1", "name": "Example Ltd" if en else "株式会社サンプル",
                                        "locale": locale, "timezone": ZONES[locale],
                                        "contacts": [{"email": "ops@example.com"}]})
    job = NoticeJob(kind=kind, round=rnd, customer=customer, recipient="k", email="ops@example.com",
                    contact_name="Alex Smith" if en else "佐藤", message_id="<m@x>", in_reply_to=None,
                    services=(("billing-api", "ap-northeast-1"), (LONG, "ap-northeast-1")))
    return maintenance_content(job, at, status_url=f"{BASE}/status", unsubscribe_url=f"{BASE}/unsubscribe/tok",
                               replies=True, preferences_url=f"{BASE}/preferences/tok")


def notice_contents(now: datetime = NOW) -> dict[str, tuple[str, object]]:
    """name -> (zone, content) of every notice kind in both languages (incident kinds, a start-and-end
    acknowledgement, the maintenance kinds)."""
    out: dict[str, tuple[str, object]] = {}
    for locale in LOCALES:
        for kind in NOTICE_KINDS:
            out[f"notice-{kind}-{locale}"] = (ZONES[locale], _incident(kind, locale, now))
        out[f"notice-acknowledged-start-and-end-{locale}"] = (
            ZONES[locale], _incident(ACKNOWLEDGED, locale, now, start_and_end=True, next_update_at=None))
        for kind in MAINTENANCE_KINDS:
            out[f"notice-{kind}-{locale}"] = (ZONES[locale], _maintenance(kind, locale, now))
    return out


def render_notice(content) -> object:
    return render(content) if isinstance(content, NoticeContent) else render_maintenance(content)


def notices(now: datetime = NOW) -> dict[str, str]:
    """The HTML part of every notice, by name."""
    return {name: render_notice(content).html for name, (_, content) in notice_contents(now).items()}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium on PATH")


def screenshot(html: Path | str, png: Path, width: int, height: int, *, dark: bool = False) -> None:
    """``html``: a file, or the URL of a page (a live worker's: tests/integration/test_status_shots.py)."""
    args = ["nice", "-n", "19", _chromium(), "--headless", "--no-sandbox", "--hide-scrollbars",
            "--disable-gpu", "--no-first-run", f"--user-data-dir={png.parent / '.chromium'}",
            f"--screenshot={png}", f"--window-size={width},{height}"]
    if dark:
        args += ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]
    # the browser in UTC: the public page's script shows times in the browser's zone, so every run looks alike
    subprocess.run([*args, html if isinstance(html, str) else html.resolve().as_uri()], check=True, timeout=120, env={**os.environ, "TZ": "UTC"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--no-shots", action="store_true", help="write the HTML only")
    parser.add_argument("--only", default="", help="only the documents whose name contains this")
    parser.add_argument("--full", action="store_true", help="a taller window: the whole page in one shot")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    docs = [(name, html, False) for name, html in pages().items()]
    docs += [(name, html, True) for name, html in notices().items()]
    written = []
    for name, html, is_notice in docs:
        if args.only not in name:
            continue
        path = args.outdir / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        if args.no_shots:
            continue
        for size, (width, height) in SIZES.items():
            for dark in ((False, True) if is_notice else (False,)):
                png = args.outdir / f"{name}.{size}{'.dark' if dark else ''}.png"
                screenshot(path, png, width, FULL_HEIGHT[size] if args.full else height, dark=dark)
                written.append(png)
    for png in written:
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
