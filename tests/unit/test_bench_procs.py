"""The bench's workers run the code of the checkout the bench runs from, not the checkout an
editable install points at (from their work directory, another worktree's code was imported)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.procs import ROOT, Worker


def test_a_bench_worker_imports_this_checkout_first(tmp_path):
    worker = Worker({"PYTHONPATH": "/elsewhere"}, tmp_path, "w")
    assert worker.env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/elsewhere"]
    assert (Path(worker.env["PYTHONPATH"].split(os.pathsep)[0]) / "streams" / "app.py").exists()
    assert worker.cwd == tmp_path and worker.env["OUTAGE_DATA_DIR"] == str(tmp_path / "w-data")
