"""The verdicts of a real server do not move when every core is busy.

A server author's CI runner is shared: a check whose verdict depends on how fast
the machine is that moment (a bound that also pays for moving megabytes, a race
between the suite's signal and its request) blames the server for its
neighbours.  One full uvicorn column is judged on a quiet machine and again with
a CPU-bound process spinning on every core (tests/_load.py); every cell must
read the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests._load import busy_cores
from tests._processes import processes_with


#: Generous: a loaded run is slower, a hang must still fail rather than block CI.
RUN_TIMEOUT = 180.0
_OUTER = ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT")
#: In the environment of every process of an inner run, so that a run cut off by its
#: timeout leaves nothing behind (its servers are in sessions of their own).
TOKEN_VARIABLE = "ASGI_CONFORMANCE_UNDER_LOAD"


def _verdicts(directory: Path) -> dict[str, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["--asgi-server=uvicorn", "--asgi-report", "report"]
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in _OUTER}
    env[TOKEN_VARIABLE] = token
    directory.mkdir()
    try:
        subprocess.run(
            command, cwd=directory, env=env, capture_output=True, timeout=RUN_TIMEOUT, check=False
        )
    finally:
        for pid, _ in processes_with(TOKEN_VARIABLE, token):  # only ever this run's processes
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    matrix = json.loads((directory / "report" / "matrix.json").read_text(encoding="utf-8"))
    return {rid: cell["verdict"] for rid, cell in matrix["results"]["uvicorn"].items()}


def test_a_busy_machine_changes_no_verdict(tmp_path: Path) -> None:
    quiet = _verdicts(tmp_path / "quiet")
    with busy_cores() as spinners:
        loaded = _verdicts(tmp_path / "loaded")
        assert all(Path(f"/proc/{pid}").exists() for pid in spinners), "a spinner stopped early"
    moved = {rid: (quiet.get(rid), loaded.get(rid)) for rid in quiet.keys() | loaded.keys()}
    moved = {rid: pair for rid, pair in moved.items() if pair[0] != pair[1]}
    assert "error" not in quiet.values()
    assert moved == {}
