"""Row 9: ``outage customers import`` of a million-row JSON-lines file against a local broker.

- 9a: the command's peak RSS (``ru_maxrss`` of the process that ran it) importing the file;
  reference: the same command importing the first 1,000 rows (what it needs at all). Target:
  under 300 MB, whatever the file's size (the import streams).
- 9b: rows/s of the import, from the command's start to its end (validation, producing, the one
  flush); reference: the bench's own bulk producer (``bench.kafkaio.produce_customers``: no
  validation) producing the same customers in the same run.

The file is generated from ``bench.data.CustomerSet`` (1,000,000 rows at ``--scale 1``), in
the work directory; the command runs in a child Python (``python -c``: ``outage.cli.main``), so
that its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import kafkaio as K
from bench.data import CustomerSet
from bench.report import ERROR, Row, Target, skipped
from streams import topics as T

MB = 1e6
RSS_TARGET = 300 * MB
SMALL = 1_000

_CHILD = """
import json, resource, sys, time
from outage.cli import main
started = time.perf_counter()
code = main(["customers", "import", sys.argv[1], "--rejects", sys.argv[2]])
seconds = time.perf_counter() - started
with open(sys.argv[3], "w") as f:
    json.dump({"code": code, "seconds": seconds, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, f)
"""


def write_file(path: Path, customers) -> int:
    """The customers as JSON lines; the file's size in bytes."""
    with open(path, "w", encoding="utf-8") as f:
        for c in customers:
            f.write(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n")
    return path.stat().st_size


def run_import(path: Path, env: dict[str, str], workdir: Path, timeout: float) -> dict:
    """Run ``outage customers import path`` in a child Python: its exit code, seconds and peak RSS."""
    out = workdir / f"{path.stem}.result.json"
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(workdir / f"{path.stem}.rejects.jsonl"),
                           str(out)], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"the import exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
    result = json.loads(out.read_text())
    result["stdout"] = done.stdout.strip().splitlines()[-1:] or [""]
    return result


def scenario_import(ctx) -> list[Row]:
    titles = [("9a", "outage customers import: peak RSS (JSON lines)", "bytes"),
              ("9b", "outage customers import: rows/s", "/s")]
    rows_n = ctx.n(1_000_000, 10_000)
    broker = None
    try:
        broker = ctx.start_broker("i")
        prefix = f"bench-i{uuid.uuid4().hex[:4]}."
        K.create_topics(broker.bootstrap, prefix)
        big, small = ctx.workdir / "import-big.jsonl", ctx.workdir / "import-small.jsonl"
        started = time.monotonic()
        size = write_file(big, CustomerSet(rows_n, 0, seed=ctx.seed))
        write_file(small, CustomerSet(SMALL, 0, seed=ctx.seed + 1))
        ctx.log(f"wrote {rows_n:,} customers ({size / MB:,.0f} MB) in {time.monotonic() - started:.0f}s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGE_")}
        env.update({"OUTAGE_BROKER": broker.bootstrap, "OUTAGE_TOPIC_PREFIX": prefix})
        timeout = min(ctx.max_wait, max(300, rows_n / 1000))
        base = run_import(small, env, ctx.workdir, timeout)
        got = run_import(big, env, ctx.workdir, timeout)
        ctx.log(f"import of {rows_n:,} rows: {got['seconds']:.1f}s, peak RSS {got['maxrss'] / MB:,.0f} MB "
                f"({SMALL:,} rows: {base['maxrss'] / MB:,.0f} MB); {got['stdout'][0]}")
        count, _, produce_s = K.produce_customers(broker.bootstrap, prefix + "ref-" + T.CUSTOMERS,
                                                  CustomerSet(rows_n, 0, seed=ctx.seed), timeout=timeout)
        ctx.log(f"the bench's producer: {count:,} customers in {produce_s:.1f}s")
        rate = rows_n / got["seconds"]
        return [
            Row("9a", titles[0][1], "bytes", value=got["maxrss"], reference=base["maxrss"],
                reference_title=f"same command, {SMALL:,} rows", target=Target("value", "<", RSS_TARGET),
                note=f"{rows_n:,} rows, {size / MB:,.0f} MB of JSON lines; {got['stdout'][0]}",
                details={"rows": rows_n, "file_bytes": size, "maxrss": got["maxrss"], "small_maxrss": base["maxrss"],
                         "code": got["code"]}),
            Row("9b", titles[1][1], "/s", value=rate, reference=count / produce_s,
                reference_title="bench producer, no validation",
                note="from the command's start to its end: read, validate (schemas/customer.py), produce, flush once",
                details={"seconds": got["seconds"], "produce_s": produce_s}),
        ]
    except Exception as exc:  # noqa: BLE001 - the row says why; the rest of the bench goes on
        ctx.log(f"scenario import failed: {exc!r}")
        return [skipped(*t, f"error: {str(exc)[:200]}", status=ERROR) for t in titles]
    finally:
        if broker is not None:
            ctx.procs.stop(broker)
        for name in ("import-big.jsonl", "import-small.jsonl"):
            (ctx.workdir / name).unlink(missing_ok=True)   # a million rows are some 300 MB
