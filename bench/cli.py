"""``python -m bench`` (``make bench``): run the rows, print the table, write the JSON.

    python -m bench                 # the issue's full size (--scale 1.0); tens of minutes
    python -m bench --quick         # ~5 % of it, to check that everything works
    python -m bench --rows 1,2      # some rows only (2 and 4 also run the rows they compare with)
    python -m bench --broker kafka  # rows 2-9 on Apache Kafka only (default: both, embedded then Kafka per scenario)
    python -m bench --py-spy /path/to/py-spy --rows 2,4 --scale 0.3   # profile a worker during the fan-outs

Rows 2 to 9 run on each broker asked for (``--broker``): the embedded Tansu broker and a one-node
Apache Kafka (KRaft, from its jars: devtools/kafka.py), a fresh one per scenario; each row's
reference is measured on the same broker in the same run, except row 1's (raw SMTP, composing),
which use no broker and are measured once. Each row of the JSON says its ``broker``; the table
has one section per broker.

Results: ``bench/results/<UTC timestamp>.json`` and ``bench/results/latest.json``; logs of every
process in ``bench/results/<timestamp>-work/<broker>/``. Exit status 0 when the bench ran (missed targets
are results, shown as FAIL), 1 on an error of the bench itself, 130 when interrupted;
``--strict`` also exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import procs as P
from bench import report as R
from bench import rows as B
from bench.import_row import scenario_import

RESULTS = Path(__file__).resolve().parent / "results"
ALL_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
NEEDS = {2: {1}, 4: {1}}  # the rows whose measurements a row uses as its reference


def _env_int(name: str) -> int | None:
    value = (os.environ.get(name) or "").strip()
    return None if value in ("", "auto") else int(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=None,
                   help="size relative to the issue's (1.0 = 100k-contact fan-out, 1M customers); default 1.0; "
                        "row 8's audiences are not scaled: below 1.0 it runs 2 of its 5 trials")
    p.add_argument("--quick", action="store_true", help="a quick run at --scale 0.05 (unless --scale is given)")
    p.add_argument("--rows", default=",".join(map(str, ALL_ROWS)), help="rows to run, e.g. 1,2,5 (default: all)")
    p.add_argument("--broker", choices=("embedded", "kafka", "both"), default="both",
                   help="the broker of rows 2-9: embedded (Tansu), kafka (Apache Kafka, one node) or both "
                        "(default; each scenario on the embedded broker, then on Kafka)")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("OUTAGE_SMTP_CONCURRENCY") or 8),
                   help="SMTP connections of the worker and of the raw reference (default OUTAGE_SMTP_CONCURRENCY or 8)")
    p.add_argument("--delivery-processes", type=int, default=_env_int("OUTAGE_DELIVERY_PROCESSES"),
                   help="OUTAGE_DELIVERY_PROCESSES of the workers of rows 2 and 5 (default: "
                        "OUTAGE_DELIVERY_PROCESSES if set, else not set: the product's default, auto = one "
                        "helper per core beyond the first, at most 4); rows 4, 7 and 8 run single-process workers "
                        "(several workers on one machine), row 6 too")
    p.add_argument("--max-wait", type=float, default=1800.0,
                   help="upper bound in seconds of any single wait for a round of emails (default 1800)")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install postfix when smtp-sink is missing (its rows are skipped)")
    p.add_argument("--py-spy", default=os.environ.get("BENCH_PY_SPY"),
                   help="path of a py-spy binary (install it outside the repo): record the worker during the fan-outs "
                        "of rows 2 and 4 (py-spy --gil; perturbs them a little)")
    p.add_argument("--results", type=Path, default=RESULTS, help="directory of the JSON results (default bench/results)")
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.scale is None:
        args.scale = 0.05 if args.quick else 1.0
    if args.scale <= 0:
        p.error("--scale must be positive")
    try:
        wanted = {int(x) for x in args.rows.split(",") if x.strip()}
    except ValueError:
        p.error("--rows takes numbers, e.g. 1,2,5")
    if not wanted or not wanted <= set(ALL_ROWS):
        p.error(f"--rows must be a subset of {ALL_ROWS}")
    for row in sorted(wanted):
        wanted |= NEEDS.get(row, set())
    args.wanted = wanted
    args.brokers = list(P.BROKERS) if args.broker == "both" else [args.broker]
    return args


def machine() -> dict:
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    versions = {}
    for name in ("faust", "aiokafka", "kafka", "aiosmtplib", "pydantic"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", None)
        except Exception:  # noqa: BLE001
            versions[name] = None
    return {"cpus": os.cpu_count(), "memory_bytes": mem, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


def code_version() -> dict:
    """The commit measured and the files changed since (read-only git commands)."""
    def git(*argv: str) -> str | None:
        try:
            return subprocess.run(["git", *argv], cwd=P.ROOT, capture_output=True, text=True, timeout=10).stdout
        except Exception:  # noqa: BLE001
            return None

    commit = (git("rev-parse", "--short", "HEAD") or "").strip() or None
    status = git("status", "--porcelain", "--untracked-files=no") or ""
    return {"commit": commit, "modified": [line[3:] for line in status.splitlines() if line.strip()]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = R.timestamp()
    workdir = args.results / f"{stamp}-work"
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    started_at = datetime.now(timezone.utc)

    def log(msg: str) -> None:
        print(f"[bench +{time.monotonic() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    procs = P.Processes()
    ctx = B.Ctx(scale=args.scale, concurrency=args.concurrency, workdir=workdir, procs=procs, log=log,
                py_spy=args.py_spy, seed=args.seed, max_wait=args.max_wait,
                delivery_processes=args.delivery_processes)
    rows: list[R.Row] = []
    failures: list[str] = []   # scenarios that failed as a whole (their rows are missing)
    on: dict[str, B.Ctx] = {}  # the context of each broker's rows
    interrupted, error = False, None
    code_at_start = code_version()
    log(f"rows {sorted(args.wanted)} on {' and '.join(args.brokers)}, scale {args.scale:g}, "
        f"SMTP concurrency {args.concurrency}, "
        f"rows 2 and 5: {R.delivery_text(args.delivery_processes, ctx.default_helpers())}, code "
        f"{code_at_start['commit']}{' + local changes' if code_at_start['modified'] else ''}; logs in {workdir}")
    try:
        try:
            sink_path, ctx.source_path = P.postfix_tools(install=not args.no_install, log=log)
            ctx.sink = procs.add(P.SmtpSink(sink_path))
            ctx.sink.start()
            log(f"smtp-sink on 127.0.0.1:{ctx.sink.port}")
        except (P.Unavailable, RuntimeError) as exc:
            ctx.tools_error = str(exc)
            ctx.sink = None
            log(f"SKIPPING the rows that need an SMTP sink: {exc}")
        if 1 in args.wanted:
            rows += B.row_references(ctx)
        on = {kind: ctx.for_broker(kind) for kind in args.brokers}
        scenarios = [
            (2 in args.wanted or 5 in args.wanted,
             "one worker", lambda c: B.scenario_one_worker(c, 2 in args.wanted, 5 in args.wanted)),
            (4 in args.wanted, "two workers", B.scenario_two_workers),
            (3 in args.wanted, "a million customers", B.scenario_million),
            (6 in args.wanted, "start-up", B.scenario_startup),
            (7 in args.wanted, "takeover", B.scenario_takeover),
            (8 in args.wanted, "relay limit", B.scenario_relay_limit),
            (9 in args.wanted, "customers import", scenario_import),
        ]
        for wanted, name, run in scenarios:
            if not wanted:
                continue
            for kind, c in on.items():   # the same scenario on each broker, one after the other
                log(f"scenario {name!r} on the {kind} broker")
                try:
                    got = run(c)
                except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - e.g. a broker that did
                    # not start, or an asyncio client cancelled inside a row: the rest goes on
                    failures.append(f"{name} on {kind}: {(repr(exc).splitlines() or [''])[0][:300]}")
                    log(f"scenario {name!r} on {kind} failed:\n{traceback.format_exc()}")
                    continue
                for r in got:
                    r.broker = kind
                rows += got
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything the bench started")
    except Exception:  # noqa: BLE001 - a bug of the bench: still stop everything and write what we have
        error = traceback.format_exc()
        log(f"bench error:\n{error}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup_errors = procs.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    code_at_end = code_version()
    code_changed = code_at_end != code_at_start
    for r in rows:
        r.finish()
    order = {kind: i for i, kind in enumerate(P.BROKERS)}
    rows.sort(key=lambda r: (-1 if r.broker is None else order.get(r.broker, 99), int(r.key[0]), r.key))
    meta = {
        "started_at": started_at.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
        "duration_s": round(time.monotonic() - t_start, 1), "scale": args.scale, "quick": args.quick,
        "rows_run": sorted(args.wanted), "brokers": args.brokers, "broker_titles": {
            k: P.BROKER_TITLES[k] for k in args.brokers}, "smtp_concurrency": args.concurrency, "delivery_processes": args.delivery_processes,
        "delivery_helpers_default": ctx.default_helpers(), "machine": machine(),
        "code": code_at_start, "code_at_end": code_at_end, "code_changed_during_run": code_changed,
        "sink": {"error": ctx.tools_error, "port": ctx.sink.port if ctx.sink else None},
        "workdir": str(workdir), "references": {"no broker": ctx.refs, **{k: c.refs for k, c in on.items()}},
        "summary_by_broker": {str(b): R.summary(rs) for b, rs in R.by_broker(rows, args.brokers)},
        "interrupted": interrupted, "error": error or ("\n".join(failures) if failures else None),
        "cleanup_errors": cleanup_errors,
    }
    doc = R.clean(R.document(rows, meta=meta, profile=ctx.profiles or None))
    stamped, latest = R.write_results(doc, args.results, stamp)
    print()
    print(f"outage pipeline bench — scale {args.scale:g}, {os.cpu_count()} CPUs, code {code_at_start['commit']}"
          f"{' + local changes' if code_at_start['modified'] else ''}, {meta['duration_s']:.0f}s"
          f"{' (INTERRUPTED)' if interrupted else ''}")
    print(f"workers of rows 2 and 5: {R.delivery_text(args.delivery_processes, ctx.default_helpers())}; "
          f"SMTP concurrency {args.concurrency}")
    if code_changed:
        print(f"WARNING: the code changed during the run (now {code_at_end['commit']}): rows may mix versions")
    for kind, group in R.by_broker(rows, args.brokers):
        print()
        print(f"== {P.BROKER_TITLES.get(kind, kind) if kind else 'references (no broker)'} ==")
        print(R.table(group))
    if failures:
        print()
        print(f"FAILED scenarios (their rows are missing): {'; '.join(failures)}")
    for name, prof in ctx.profiles.items():
        print()
        print(f"{name}: {prof.get('note', '')}")
        print(R.profile_text(prof))
    print()
    print(f"results: {stamped} (and {latest.name}); logs: {workdir}")
    if cleanup_errors:
        print(f"clean-up errors: {cleanup_errors}", file=sys.stderr)
    if interrupted:
        return 130
    if error or failures:
        return 1
    if args.strict and any(r.status in (R.FAIL, R.ERROR) for r in rows):
        return 1
    return 0
