"""The customers index of partitions kept on disk, rebuilt in a child process at a restart.

A restarted worker needs the (component, region) index of every customers partition it held
before it can plan a round. Rebuilding it means reading every customer's services from the
partition's RocksDB database: about a second per 250,000 customers of pure Python, which on
the worker's event loop also slowed faust's own start (the tables, the group join) by as much.
So the worker starts a child process (``python -m streams.customers_index``) as soon as it knows
its state directory, before faust starts: the child opens the databases read-only (no lock is
taken, and a database left by a ``kill -9`` is read with its write-ahead log), groups the
customers by their services and writes one frame per partition to its stdout:

    8 bytes (big-endian length) + marshal of (partition, {services: [customer ids]})

where ``services`` is a tuple of (component, region) pairs. The worker then only unpacks the
groups into its index (a few set updates per group, a fifth of the work); nothing is written to
a database before the worker opens it itself, so the child's view and the worker's agree.

Only the standard library and rocksdict are imported here: the child starts in a tenth of a
second. A child that fails costs nothing but time: the worker rebuilds those partitions itself.
"""

from __future__ import annotations

import marshal
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Iterable

__all__ = ["SERVICES", "encode_services", "decode_services", "read_groups", "IndexChildren"]

SERVICES = b"s:"   # s:<customer_id> -> its services (streams/customers.py writes them)
_FRAME = struct.Struct(">Q")

Groups = dict[tuple[tuple[str, str], ...], list[str]]


def encode_services(services: Iterable[tuple[str, str]]) -> bytes:
    # labels reject control characters (schemas/common.py), so these separators cannot occur
    return "\x1e".join(f"{c}\x1f{r}" for c, r in services).encode()


def decode_services(raw: bytes | None) -> list[tuple[str, str]]:
    if not raw:
        return []
    return [tuple(s.split("\x1f", 1)) for s in raw.decode().split("\x1e")]  # type: ignore[misc]


def read_groups(db) -> Groups:
    """Every customer of the database, grouped by its services (customers have few different
    sets of services: grouping by the stored bytes first decodes each set once)."""
    raw_groups: dict[bytes, list[bytes]] = {}
    get = raw_groups.get
    for key, raw in db.items(from_key=SERVICES):
        if not key.startswith(SERVICES):
            break
        group = get(raw)
        if group is None:
            group = raw_groups[raw] = []
        group.append(key[2:])
    return {tuple(decode_services(raw)): [k.decode() for k in ids] for raw, ids in raw_groups.items()}


def _open_read_only(path: Path):
    from rocksdict import AccessType, Options, Rdict

    return Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())


class IndexChildren:
    """Child processes rebuilding the index of partitions kept on disk; started at once, their
    groups collected later (``collect``) by the worker's event loop."""

    def __init__(self, paths: dict[int, Path], processes: int) -> None:
        self.partitions = sorted(paths)
        shares: list[list[int]] = [[] for _ in range(max(1, min(processes, len(paths))))]
        for i, p in enumerate(self.partitions):
            shares[i % len(shares)].append(p)
        env = dict(os.environ)
        # the child finds this package as the worker did (installed, or on the worker's path)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                          env.get("PYTHONPATH")]))
        self._procs = [subprocess.Popen([sys.executable, "-m", __name__, *(f"{p}={paths[p]}" for p in share)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                       for share in shares if share]

    def collect(self) -> tuple[dict[int, Groups], list[str]]:
        """Wait for the children (blocking: run it in a thread): the groups of each partition
        they read, and what went wrong for those they did not."""
        groups: dict[int, Groups] = {}
        problems: list[str] = []
        for proc in self._procs:
            out, err = proc.communicate()
            at = 0
            while at + _FRAME.size <= len(out):
                (size,) = _FRAME.unpack_from(out, at)
                at += _FRAME.size
                if at + size > len(out):
                    break
                p, part_groups = marshal.loads(out[at:at + size])
                at += size
                groups[p] = part_groups
            if proc.returncode:
                problems.append((err.decode(errors="replace").strip().splitlines() or ["no output"])[-1][:300])
        return groups, problems

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def main(argv: list[str]) -> int:
    out = sys.stdout.buffer
    for arg in argv:
        p, _, path = arg.partition("=")
        db = _open_read_only(Path(path))
        try:
            blob = marshal.dumps((int(p), read_groups(db)))
        finally:
            db.close()
        out.write(_FRAME.pack(len(blob)))
        out.write(blob)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
