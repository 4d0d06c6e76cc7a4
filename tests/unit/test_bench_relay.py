"""Row 8's pieces: the judge of the promises kept, the throttling relay, the row from its trials."""

from __future__ import annotations

import smtplib
import threading
import time
from email.message import EmailMessage

import pytest

from bench import report as R
from bench.relay import RelayMail, ThrottledRelay, judge

INTERVAL = 60.0


def _m(rcpt: str, mid: str, kind: str, received: float, next_update: float | None) -> RelayMail:
    return RelayMail(rcpt=rcpt, message_id=mid, kind=kind, incident="inc-1", next_update=next_update,
                     received=received)


def test_a_notice_arriving_by_the_promise_keeps_it():
    mails = [_m("a@x.jp", "<a1>", "acknowledged", 0.0, 60.0), _m("a@x.jp", "<a2>", "scheduled", 59.5, 119.5)]
    assert judge(mails, interval=INTERVAL, until=100.0) == {
        "notices": 2, "kept": 1, "missed": 0, "worst_missed_s": None, "close": 0, "close_examples": [],
        "missed_examples": [], "repeats": 0, "contacts": 1}
    # within the slack (1 s) past the promise still counts as kept
    late_but_slack = [_m("a@x.jp", "<a1>", "acknowledged", 0.0, 60.0), _m("a@x.jp", "<a2>", "scheduled", 60.9, 120.9)]
    assert judge(late_but_slack, interval=INTERVAL, until=100.0)["kept"] == 1


def test_a_notice_arriving_after_the_promise_misses_it():
    mails = [_m("b@x.jp", "<b1>", "acknowledged", 0.0, 60.0), _m("b@x.jp", "<b2>", "scheduled", 63.5, 123.5),
             _m("c@x.jp", "<c1>", "acknowledged", 1.0, 61.0), _m("c@x.jp", "<c2>", "scheduled", 62.5, 122.5)]
    j = judge(mails, interval=INTERVAL, until=100.0)
    assert j["missed"] == 2 and j["kept"] == 0 and j["contacts"] == 2
    assert j["worst_missed_s"] == pytest.approx(3.5)
    assert j["missed_examples"] == [
        {"before_kind": "acknowledged", "after_kind": "scheduled", "before_at_s": 0.0, "promise_ahead_s": 60.0,
         "late_s": 3.5},
        {"before_kind": "acknowledged", "after_kind": "scheduled", "before_at_s": 1.0, "promise_ahead_s": 60.0,
         "late_s": 1.5}]


def test_a_holding_update_too_soon_after_the_notice_before_it_is_close():
    # kept (it came before the promise) but 30 s after the acknowledgement: less than 2/3 of 60 s (- 1 s)
    mails = [_m("d@x.jp", "<d1>", "acknowledged", 0.0, 60.0), _m("d@x.jp", "<d2>", "scheduled", 30.0, 90.0)]
    j = judge(mails, interval=INTERVAL, until=80.0)
    assert j["close"] == 1 and j["kept"] == 1 and j["missed"] == 0
    assert j["close_examples"] == [{"gap_s": 30.0, "before_kind": "acknowledged", "before_promise_ahead_s": 60.0,
                                    "before_copies": 1}]
    # 39.5 s is within the slack of 40 s; a progress notice may come any time
    assert judge([_m("d@x.jp", "<d1>", "acknowledged", 0.0, 60.0), _m("d@x.jp", "<d2>", "scheduled", 39.5, 99.5)],
                 interval=INTERVAL, until=80.0)["close"] == 0
    assert judge([_m("d@x.jp", "<d1>", "acknowledged", 0.0, 60.0), _m("d@x.jp", "<d2>", "progress", 5.0, 65.0)],
                 interval=INTERVAL, until=60.0)["close"] == 0


def test_a_copy_of_a_message_is_a_repeat_not_a_notice():
    mails = [_m("e@x.jp", "<e1>", "acknowledged", 0.0, 60.0), _m("e@x.jp", "<e1>", "acknowledged", 2.0, 62.0),
             _m("e@x.jp", "<e2>", "scheduled", 59.0, 119.0)]
    j = judge(mails, interval=INTERVAL, until=100.0)
    # the copy is not a notice of its own: <e2> is measured against <e1>'s first arrival
    assert j["repeats"] == 1 and j["notices"] == 2 and j["kept"] == 1 and j["close"] == 0


def test_the_latest_copy_received_before_the_next_notice_states_the_promise_in_force():
    # a copy resent after a kill -9, 14 s later, promises 14 s later: the contact holds that time
    mails = [_m("e@x.jp", "<e1>", "acknowledged", 0.0, 60.0), _m("e@x.jp", "<e1>", "acknowledged", 14.0, 74.0),
             _m("e@x.jp", "<e2>", "scheduled", 73.0, 133.0)]
    assert judge(mails, interval=INTERVAL, until=100.0)["missed"] == 0
    # but a copy that came after the next notice does not excuse it
    late_copy = [_m("e@x.jp", "<e1>", "acknowledged", 0.0, 60.0), _m("e@x.jp", "<e2>", "scheduled", 73.0, 133.0),
                 _m("e@x.jp", "<e1>", "acknowledged", 80.0, 140.0)]
    assert judge(late_copy, interval=INTERVAL, until=100.0)["missed"] == 1


def test_a_promise_that_fell_before_the_end_with_nothing_after_it_is_missed():
    mails = [_m("f@x.jp", "<f1>", "acknowledged", 0.0, 60.0)]
    j = judge(mails, interval=INTERVAL, until=100.0)
    assert j["missed"] == 1 and j["worst_missed_s"] == pytest.approx(40.0)
    # a promise after the end (or within the slack of it) is not judged
    assert judge(mails, interval=INTERVAL, until=60.5)["missed"] == 0
    assert judge(mails, interval=INTERVAL, until=30.0)["missed"] == 0
    # arrival order decides, not the order given
    j = judge(list(reversed(mails + [_m("f@x.jp", "<f2>", "scheduled", 58.0, 118.0)])), interval=INTERVAL,
              until=100.0)
    assert j["kept"] == 1 and j["missed"] == 0


def _notice(to: str, n: int) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "status@example.com", to, f"notice {n}"
    msg["Message-ID"] = f"<n{n}@example.com>"
    msg["X-Outage-Incident"], msg["X-Outage-Notice"] = "inc-r", "acknowledged"
    msg["X-Outage-Next-Update"] = "2026-12-02T10:00:00Z"
    msg.set_content("An update is coming.")
    return msg.as_bytes()


def test_the_relay_accepts_no_more_than_its_rate_across_connections():
    relay = ThrottledRelay(rate=20).start()
    errors: list[BaseException] = []

    def send(numbers: range) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as client:
                for n in numbers:
                    client.sendmail("status@example.com", [f"C{n}@Example.jp"], _notice(f"c{n}@example.jp", n))
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(r,)) for r in (range(0, 3), range(3, 5))]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while relay.count < 5 and not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        for t in threads:
            t.join(timeout=10)
        mails = relay.mails("inc-r")
    finally:
        relay.stop()
    assert not errors, errors
    assert len(mails) == 5 and relay.mails("other") == []
    times = [m.received for m in mails]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.04, gaps    # 1/20 s apart, less the event loop's lateness in waking
    assert times[-1] - times[0] >= 0.19
    assert {m.rcpt for m in mails} == {f"c{n}@example.jp" for n in range(5)}
    assert mails[0].next_update == pytest.approx(1796205600.0) and mails[0].kind == "acknowledged"


def _trial(capacity: float, passed: bool, **figures) -> dict:
    return {"capacity": capacity, "passed": passed, "contacts": round(3600 / capacity), "missing": 0, "kept": 100,
            "missed": 0 if passed else 3, "close": 0, "repeats": 1, "worst_missed_s": None if passed else 4.2,
            "session_timeout_s": 6.0, **figures}


def test_relay_row_is_the_lowest_capacity_that_passed():
    from bench.rows import RELAY_CAPACITIES, relay_row

    title = ("8", "relay", "x")
    row = relay_row(title, [_trial(2.0, True), _trial(1.5, True), _trial(1.3, False)], RELAY_CAPACITIES, 8,
                    True).finish()
    assert row.value == 1.5 and row.status == R.FAIL and row.ratio == pytest.approx(1.5)
    assert "1.3x FAIL" in row.note and "worst miss 4.2s" in row.note and "as the tests set it" in row.note
    row = relay_row(title, [_trial(c, True) for c in RELAY_CAPACITIES], RELAY_CAPACITIES, 8, False).finish()
    assert row.value == 1.05 and row.status == R.PASS and "below --scale 1" not in row.note
    row = relay_row(title, [_trial(2.0, True), _trial(1.15, True)], (2.0, 1.15), 8, False).finish()
    assert row.value == 1.15 and row.status == R.PASS and "below --scale 1 only 2x and 1.15x" in row.note
    row = relay_row(title, [_trial(2.0, False)], RELAY_CAPACITIES, 8, False).finish()
    assert row.value is None and row.note.startswith("even 2x failed")
