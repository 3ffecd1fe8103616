"""A CPU-bound process on every core, as a shared CI runner's neighbours would be.

A verdict that changes when the machine is busy is a bug in the check (a bound
that pays for the machine's speed, a race between the suite's own signal and
request).  The self-test under load and ``benchmarks/determinism.py --load``
judge a real server while this runs.  Only the processes started here are
stopped, by their ids.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


__all__ = ["busy_cores"]

_SPIN = "while True: pass"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def busy_cores(count: int | None = None) -> Iterator[list[int]]:
    """Keep ``count`` (default: every core) spinning processes running; yields their pids."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL)
        for _ in range(count if count is not None else _cores())
    ]
    try:
        yield [p.pid for p in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
