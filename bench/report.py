"""The bench's results: rows (value, reference, ratio, target, verdict), the table, the JSON files,
and a summary of a py-spy profile. Pure code, unit-tested in tests/unit/test_bench_report.py."""

from __future__ import annotations

import json
import math
import operator
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

PASS, FAIL, INFO, SKIP, ERROR = "pass", "fail", "info", "skip", "error"

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OP_TEXT = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


@dataclass(frozen=True)
class Target:
    """``on`` ("value" or "ratio") ``op`` ``threshold``, e.g. Target("ratio", ">=", 0.5)."""

    on: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.on not in ("value", "ratio") or self.op not in _OPS:
            raise ValueError(f"bad target {self}")

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        x = value if self.on == "value" else ratio
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return None
        return _OPS[self.op](x, self.threshold)


@dataclass
class Row:
    key: str                          # "2a"
    title: str                        # what is measured
    unit: str                         # unit of value and reference: msg/s, s, ms, bytes, count, /s
    value: float | None = None
    reference: float | None = None
    reference_title: str = ""         # what the reference is
    ratio: float | None = None        # value / reference unless set explicitly
    target: Target | None = None
    status: str = INFO                # pass | fail | info | skip | error (set by finish())
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    broker: str | None = None         # "embedded" or "kafka": the broker the row ran on (None: no broker)

    def finish(self) -> "Row":
        """Compute the ratio (if not given) and the verdict; a skipped/errored row keeps its status."""
        if self.ratio is None and self.value is not None and self.reference:
            self.ratio = self.value / self.reference
        if self.status in (SKIP, ERROR):
            return self
        if self.value is None:
            self.status = ERROR if self.target else INFO
            return self
        if self.target is None:
            self.status = INFO
            return self
        met = self.target.met(self.value, self.ratio)
        self.status = ERROR if met is None else PASS if met else FAIL
        return self

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = asdict(self.target) if self.target else None
        d["target_text"] = target_text(self.target, self.unit)
        return d


def skipped(key: str, title: str, unit: str, why: str, status: str = SKIP) -> Row:
    return Row(key, title, unit, status=status, note=why)


# -- formatting --------------------------------------------------------------------------------

def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "bytes":
        for size, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= size:
                return f"{value / size:.2f} {suffix}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.2f} ms" if abs(value) < 10 else f"{value:.1f} ms"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "%":
        return f"{value:.1f} %"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return "—"
    if abs(ratio) >= 100:
        return f"{ratio:,.0f}×"
    return f"{ratio:.3f}" if abs(ratio) < 1 else f"{ratio:.2f}"


def target_text(target: Target | None, unit: str) -> str:
    if target is None:
        return "—"
    if target.on == "ratio":
        if unit == "count" and target.threshold == 1.0:
            return f"ratio {_OP_TEXT[target.op]} 100 %"
        return f"ratio {_OP_TEXT[target.op]} {target.threshold:g}"
    return f"{_OP_TEXT[target.op]} {fmt(target.threshold, unit)}"


def delivery_text(setting: int | None, default_helpers: int | None) -> str:
    """What the workers' OUTAGE_DELIVERY_PROCESSES was: ``setting`` None means not set (the
    product's default, ``auto``, which starts ``default_helpers`` on this machine)."""
    def helpers(n: int | None) -> str:
        if n is None:
            return "an unknown number of delivery helpers"
        return "no delivery helper" if n == 0 else \
            f"{n} delivery helper{'s' if n != 1 else ''}"
    if setting is None:
        return f"product default (OUTAGE_DELIVERY_PROCESSES unset: auto, {helpers(default_helpers)} here)"
    return f"OUTAGE_DELIVERY_PROCESSES={setting} ({helpers(setting)})"


COLUMNS = ("#", "measurement", "value", "reference", "ratio", "target", "result")


def table(rows: Iterable[Row], width: int = 52) -> str:
    """A plain-text table, one line per row, and the rows' notes under it."""
    lines, notes = [], []
    body = []
    for r in rows:
        ref = fmt(r.reference, r.unit)
        if r.reference_title:
            ref = f"{ref} ({r.reference_title})" if r.reference is not None else f"— ({r.reference_title})"
        body.append((r.key, _cut(r.title, width), fmt(r.value, r.unit), ref, fmt_ratio(r.ratio),
                     target_text(r.target, r.unit), r.status.upper()))
        if r.note:
            notes.append(f"  {r.key}: {r.note}")
    widths = [max(len(COLUMNS[i]), *(len(b[i]) for b in body)) if body else len(COLUMNS[i]) for i in range(7)]
    sep = "  "
    lines.append(sep.join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip())
    lines.append(sep.join("-" * w for w in widths))
    for b in body:
        lines.append(sep.join(c.ljust(w) for c, w in zip(b, widths)).rstrip())
    if notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(rows: Iterable[Row]) -> dict[str, int]:
    return dict(Counter(r.status for r in rows))


def by_broker(rows: Iterable[Row], order: Iterable[str]) -> list[tuple[str | None, list[Row]]]:
    """The rows grouped by the broker they ran on: first those on none (the references), then
    each broker of ``order`` that has rows, each group in its rows' order."""
    rows = list(rows)
    groups = [(None, [r for r in rows if r.broker is None])]
    groups += [(b, [r for r in rows if r.broker == b]) for b in order]
    groups += [(b, [r for r in rows if r.broker == b]) for b in dict.fromkeys(r.broker for r in rows)
               if b is not None and b not in order]
    return [(b, rs) for b, rs in groups if rs]


# -- JSON files ----------------------------------------------------------------------------------

def timestamp(now: datetime | None = None) -> str:
    """File-name-safe UTC timestamp, e.g. 20261125T100000Z."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def document(rows: list[Row], *, meta: dict[str, Any], profile: dict | None = None) -> dict[str, Any]:
    """The JSON document; ``profile``: py-spy summaries by fan-out name (or None)."""
    return {
        "schema": "outage-bench/1",
        **meta,
        "summary": summary(rows),
        "rows": [r.to_json() for r in rows],
        "profile": profile,
    }


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return repr(o)


def write_results(doc: dict[str, Any], directory: Path, stamp: str) -> tuple[Path, Path]:
    """Write ``<stamp>.json`` and ``latest.json`` (each atomically); returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=_default, allow_nan=False) + "\n"
    paths = directory / f"{stamp}.json", directory / "latest.json"
    for path in paths:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return paths


def clean(value: Any) -> Any:
    """NaN/inf -> None (JSON has no NaN), recursively."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


# -- statistics ----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile, q in [0, 100]; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def rate(times: list[float]) -> float | None:
    """Events per second over a list of event times: (n - 1) / (last - first)."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None


# -- py-spy profile summary ----------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _frame_name(frame: str, root: str | None) -> str:
    """"send (aiokafka/producer/producer.py:123)" -> "send (aiokafka/producer/producer.py)"."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        if root and path.startswith(root):
            path = path[len(root):].lstrip("/")
    return f"{m.group('func')} ({path})"


def profile_summary(collapsed: str, *, top: int = 40, root: str | None = None) -> dict[str, Any]:
    """Top functions of a collapsed-stack profile (py-spy ``--format raw``).

    ``self``: share of samples with the function on top of the stack; ``total``: share of samples
    with the function anywhere on it (counted once per sample). Shares are of all samples.
    """
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        # py-spy's raw format may start with the thread ("process 1:\"python\"" / "thread (0x...)")
        names = [_frame_name(f, root) for f in frames if not f.startswith(("process ", "thread "))]
        if not names:
            continue
        samples += n
        self_c[names[-1]] += n
        for name in set(names):
            total_c[name] += n
    if not samples:
        return {"samples": 0, "self": [], "total": []}

    def share(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": k, "share": round(v / samples, 4), "samples": v} for k, v in c.most_common(top)]

    return {"samples": samples, "self": share(self_c), "total": share(total_c)}


def profile_text(summary_: dict[str, Any], top: int = 15) -> str:
    busy = summary_.get("gil_busy_share")
    lines = [f"py-spy --gil: {summary_.get('samples', 0)} samples of the thread holding the GIL"
             + (f"; GIL held {busy:.0%} of {summary_.get('seconds')}s" if busy is not None else "")]
    for kind in ("self", "total"):
        lines.append(f"  top by {kind} time:" + (" (stack roots above 95 % left out)" if kind == "total" else ""))
        entries = [e for e in summary_.get(kind, []) if kind == "self" or e["share"] <= 0.95]
        for e in entries[:top]:
            lines.append(f"    {e['share'] * 100:5.1f} %  {e['function']}")
    return "\n".join(lines)
