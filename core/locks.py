"""A lock file held for the life of the process: the kernel releases it when the process ends,
also on ``kill -9``. Used for a worker's state slot (streams/kafka/tables.py) and for ``outage dev``'s
data dir (devtools/dev.py)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_held: list[int] = []   # the open lock files: closing one would release its lock


def hold(path: Path) -> bool:
    """Whether this process now holds ``path``'s lock (False: another process holds it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held.append(fd)
    return True
