"""The bench's report code: verdicts, ratios, the table, the JSON files, the profile summary."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from bench import report as R
from bench import takeover as TK
from bench.kafkaio import Notice
from bench.procs import parse_metrics, metric_sum


def test_ratio_and_verdict_on_ratio_target():
    row = R.Row("2a", "fan-out", "msg/s", value=1000.0, reference=4000.0, target=R.Target("ratio", ">=", 0.5)).finish()
    assert row.ratio == pytest.approx(0.25)
    assert row.status == R.FAIL
    row = R.Row("2a", "fan-out", "msg/s", value=3000.0, reference=4000.0, target=R.Target("ratio", ">=", 0.5)).finish()
    assert row.status == R.PASS


def test_verdict_on_value_target_and_boundaries():
    assert R.Row("2b", "first", "s", value=0.99, target=R.Target("value", "<", 1.0)).finish().status == R.PASS
    assert R.Row("2b", "first", "s", value=1.0, target=R.Target("value", "<", 1.0)).finish().status == R.FAIL
    assert R.Row("5", "on time", "count", value=10, reference=10, target=R.Target("ratio", ">=", 1.0)).finish().status == R.PASS


def test_rows_without_value_or_target():
    assert R.Row("1b", "ceiling", "msg/s", value=19000.0).finish().status == R.INFO
    assert R.Row("2a", "fan-out", "msg/s", target=R.Target("ratio", ">=", 0.5)).finish().status == R.ERROR
    skipped = R.skipped("2a", "fan-out", "msg/s", "no smtp-sink").finish()
    assert skipped.status == R.SKIP and skipped.note == "no smtp-sink"
    # a zero reference gives no ratio rather than a division error
    assert R.Row("x", "t", "msg/s", value=1.0, reference=0.0).finish().ratio is None


def test_explicit_ratio_is_kept():
    row = R.Row("x", "t", "s", value=2.0, reference=4.0, ratio=0.9, target=R.Target("ratio", ">", 0.8)).finish()
    assert row.ratio == 0.9 and row.status == R.PASS


def test_bad_target():
    with pytest.raises(ValueError):
        R.Target("speed", ">=", 1)
    with pytest.raises(ValueError):
        R.Target("value", "=>", 1)


@pytest.mark.parametrize("value,unit,text", [
    (1_234.5, "msg/s", "1,234 msg/s"),
    (12.345, "msg/s", "12.35 msg/s"),
    (0.412, "s", "412 ms"),
    (11.38, "s", "11.38 s"),
    (0.11, "ms", "0.11 ms"),
    (36.04, "ms", "36.0 ms"),
    (1.6e9, "bytes", "1.60 GB"),
    (409_130_000, "bytes", "409.13 MB"),
    (100_000, "count", "100,000"),
    (None, "s", "—"),
    (float("nan"), "s", "—"),
])
def test_fmt(value, unit, text):
    assert R.fmt(value, unit) == text


def test_target_text():
    assert R.target_text(R.Target("ratio", ">=", 0.5), "msg/s") == "ratio ≥ 0.5"
    assert R.target_text(R.Target("value", "<", 1.0), "s") == "< 1.00 s"
    assert R.target_text(R.Target("value", "<", 1.5e9), "bytes") == "< 1.50 GB"
    assert R.target_text(R.Target("ratio", ">=", 1.0), "count") == "ratio ≥ 100 %"
    assert R.target_text(None, "s") == "—"


def test_table_lists_every_row_with_its_verdict_and_notes():
    rows = [
        R.Row("1a", "raw sendmail", "msg/s", value=4000.0, reference=19000.0, reference_title="sink").finish(),
        R.Row("2a", "fan-out emails/s", "msg/s", value=500.0, reference=4000.0, reference_title="raw 1a",
              target=R.Target("ratio", ">=", 0.5), note="incomplete").finish(),
        R.skipped("4", "two workers", "msg/s", "no sink").finish(),
    ]
    text = R.table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["#", "measurement", "value", "reference", "ratio", "target", "result"]
    assert any(line.startswith("2a") and "FAIL" in line and "0.125" in line and "ratio ≥ 0.5" in line for line in lines)
    assert any(line.startswith("1a") and "INFO" in line and "(sink)" in line for line in lines)
    assert any(line.startswith("4 ") and "SKIP" in line for line in lines)
    assert "  2a: incomplete" in lines and "  4: no sink" in lines


def test_document_and_files(tmp_path):
    rows = [R.Row("2a", "fan-out", "msg/s", value=500.0, reference=4000.0, target=R.Target("ratio", ">=", 0.5),
                  details={"nan": float("nan"), "when": datetime(2026, 11, 25, tzinfo=timezone.utc)}).finish(),
            R.Row("1b", "ceiling", "msg/s", value=19000.0).finish()]
    doc = R.clean(R.document(rows, meta={"scale": 0.05}, profile=None))
    stamp = R.timestamp(datetime(2026, 11, 25, 10, 0, 0, tzinfo=timezone.utc))
    assert stamp == "20261125T100000Z"
    stamped, latest = R.write_results(doc, tmp_path / "results", stamp)
    assert stamped.name == "20261125T100000Z.json" and latest.name == "latest.json"
    for path in (stamped, latest):
        data = json.loads(path.read_text())
        assert data["schema"] == "outage-bench/1" and data["scale"] == 0.05
        assert data["summary"] == {"fail": 1, "info": 1}
        first = data["rows"][0]
        assert first["key"] == "2a" and first["status"] == "fail" and first["ratio"] == pytest.approx(0.125)
        assert first["target"] == {"on": "ratio", "op": ">=", "threshold": 0.5}
        assert first["target_text"] == "ratio ≥ 0.5"
        assert first["details"]["nan"] is None            # JSON has no NaN
        assert first["details"]["when"].startswith("2026-11-25")
    assert not list((tmp_path / "results").glob("*.tmp"))


def test_percentile_and_rate():
    assert R.percentile([], 50) is None
    assert R.percentile([3.0], 50) == 3.0
    assert R.percentile([1.0, 2.0, 3.0, 10.0], 50) == pytest.approx(2.5)
    assert R.percentile([1.0, 2.0, 3.0], 100) == 3.0
    assert R.rate([1.0]) is None
    assert R.rate([10.0, 10.5, 11.0, 12.0]) == pytest.approx(1.5)


def test_profile_summary_self_and_total():
    collapsed = "\n".join([
        "process 1:\"python\";thread (0x1);<module> (app.py:1);run (streams/sender.py:10);compose (notifiers/notice.py:5) 6",
        "<module> (app.py:1);run (streams/sender.py:10);send (aiosmtplib/smtp.py:99) 3",
        "<module> (app.py:1);run (streams/sender.py:12);run (streams/sender.py:10) 1",
        "",
        "garbage line",
    ])
    s = R.profile_summary(collapsed, top=10)
    assert s["samples"] == 10
    self_ = {e["function"]: e["share"] for e in s["self"]}
    total = {e["function"]: e["share"] for e in s["total"]}
    assert self_["compose (notifiers/notice.py)"] == pytest.approx(0.6)
    assert self_["send (aiosmtplib/smtp.py)"] == pytest.approx(0.3)
    # a recursive frame counts once per sample
    assert total["run (streams/sender.py)"] == pytest.approx(1.0)
    assert total["<module> (app.py)"] == pytest.approx(1.0)
    assert "10 samples" in R.profile_text(s)
    assert R.profile_summary("")["samples"] == 0


def test_profile_paths_are_shortened():
    line = "send (/x/.venv/lib/python3.11/site-packages/aiokafka/producer/producer.py:123) 2"
    s = R.profile_summary(line)
    assert s["self"][0]["function"] == "send (aiokafka/producer/producer.py)"


def test_parse_metrics():
    text = "# HELP x\n# TYPE x counter\nx_total{kind=\"acknowledged\"} 3.0\nx_total{kind=\"scheduled\"} 2.0\ny 1.5e3\n"
    m = parse_metrics(text)
    assert m["y"] == 1500.0
    assert metric_sum(m, "x_total") == 5.0
    assert metric_sum(m, "missing") == 0


def test_delivery_text_says_whether_the_product_default_was_used():
    assert R.delivery_text(None, 1) == "product default (OUTAGE_DELIVERY_PROCESSES unset: auto, 1 delivery helper here)"
    assert "auto, no delivery helper" in R.delivery_text(None, 0)
    assert "unknown" in R.delivery_text(None, None)
    assert R.delivery_text(0, 1) == "OUTAGE_DELIVERY_PROCESSES=0 (no delivery helper)"
    assert R.delivery_text(2, 1) == "OUTAGE_DELIVERY_PROCESSES=2 (2 delivery helpers)"


# -- row 7: what a kill -9 mid fan-out did (bench/takeover.py) ----------------------------------

def _n(cid: str, p: int, at: float, nid: str | None = None) -> Notice:
    return Notice("inc", "acknowledged", 1, at, None, cid, nid or f"<{cid}@x>", p)


def _takeover_notices():
    """Partitions 0, 1 on the survivor (10 emails/s each from t=100), 2, 3 on the dead worker
    (killed at t=103 after sending 3 of its 8 each); the survivor resumes 2 and 3 at t=110."""
    out = []
    for p in (0, 1):
        out += [_n(f"s{p}-{i}", p, 100.05 + i * 0.1) for i in range(80)]
    for p in (2, 3):
        out += [_n(f"d{p}-{i}", p, 100.5 + i) for i in range(3)]                 # before the kill
        out += [_n(f"d{p}-{i}", p, 110.0 + (i - 3) * 0.5) for i in range(3, 8)]  # resumed
    out.append(_n("d2-2", 2, 110.1))  # a repeat: sent before the kill, again after the takeover
    return out


def test_takeover_split_finds_the_partitions_that_went_silent_at_the_kill():
    survivor, dead, resumed = TK.split_partitions(_takeover_notices(), killed_at=103.0)
    assert survivor == {0, 1} and dead == {2, 3}
    assert resumed[2] == pytest.approx(7.0) and resumed[0] < 0.1
    # no gap after the kill (e.g. nothing was killed): nothing is called dead
    steady = [_n(f"c{p}-{i}", p, 100 + i * 0.1) for p in range(4) for i in range(60)]
    assert TK.split_partitions(steady, killed_at=103.0)[1] == set()


def test_takeover_figures():
    a = TK.analyse(_takeover_notices(), killed_at=103.0, declared_at=100.0, expected=176, sink_delivered=177,
                   survivor_customers=160)
    assert a["dead"]["partitions"] == [2, 3] and a["dead"]["remaining_at_kill"] == 10
    assert a["dead"]["sent_before_kill"] == 6 and a["survivor"]["sent_before_kill"] == 60
    assert a["dead_share_done_s"] == pytest.approx(9.0)          # last resumed email at t=112
    assert a["dead"]["resumed_s"] == pytest.approx(7.0)
    assert a["survivor_rate_before_kill"] == pytest.approx(20.0, rel=0.05)
    assert a["dead_share_at_survivor_rate_s"] == pytest.approx(0.5, rel=0.05)   # 10 contacts at 20/s
    assert a["split"] == "customers"
    assert a["reached"] == 176 and a["missing"] == 0
    assert a["repeats_sink"] == 1 and a["repeats_notices"] == 1 and a["customers_with_several_message_ids"] == 0
    assert TK.analyse(_takeover_notices(), killed_at=103.0, declared_at=100.0, expected=180,
                      survivor_customers=150)["split"] == "gap (NOT matching the survivor's customers)"


def test_takeover_split_by_the_survivors_customers_when_one_of_its_own_partitions_waited():
    """Measured: the survivor left its own partition 3 waiting 28 s after the kill while it sent
    partition 1; the gap alone would call partition 3 the dead worker's."""
    notices = [_n(f"s1-{i}", 1, 100.05 + i * 0.1) for i in range(80)]                 # sends on
    notices += [_n(f"s3-{i}", 3, 100.0 + i * 0.5) for i in range(4)]                  # then waits
    notices += [_n(f"s3-{i}", 3, 125.0 + i * 0.1) for i in range(4, 40)]
    for p, count in ((0, 20), (2, 17)):
        notices += [_n(f"d{p}-{i}", p, 100.5 + i) for i in range(3)]
        notices += [_n(f"d{p}-{i}", p, 130.0 + i * 0.1) for i in range(3, count)]
    assert TK.split_partitions(notices, killed_at=103.0)[1] == {0, 2, 3}            # the gap is wrong here
    assert TK.split_by_customers({0: 20, 1: 80, 2: 17, 3: 40}, 120) == ({1, 3}, {0, 2})
    assert TK.split_by_customers({0: 20, 1: 80, 2: 20, 3: 40}, 120) is None       # {1, 3} or {0, 1, 2}
    a = TK.analyse(notices, killed_at=103.0, declared_at=100.0, expected=157, survivor_customers=120)
    assert a["split"] == "customers (not the gap)"
    assert a["dead"]["partitions"] == [0, 2] and a["survivor"]["partitions"] == [1, 3]
    assert a["dead"]["remaining_at_kill"] == 31 and a["dead_share_done_s"] == pytest.approx(28.9)   # d0-19 at t=131.9


def test_takeover_rows_verdicts():
    from bench.rows import takeover_rows

    a = TK.analyse(_takeover_notices(), killed_at=103.0, declared_at=100.0, expected=176, sink_delivered=177,
                   survivor_customers=160)
    details = {"victim": "t-worker-1", "victim_was_round_owner": True, "emails_at_kill": 66, "sink_delivered": 177}
    titles = [("7a", "takeover", "s"), ("7b", "repeats", "count"), ("7c", "reached", "count")]
    rows = [r.finish() for r in takeover_rows(titles, a, details, 8, True, "", {})]
    assert [r.status for r in rows] == [R.FAIL, R.PASS, R.PASS]   # 9 s for a 0.5 s share: ratio 18
    assert rows[0].ratio == pytest.approx(18.0, rel=0.05) and "[2, 3]" in rows[0].note
    assert rows[1].value == 1 and rows[1].reference == 16
