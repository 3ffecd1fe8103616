"""One conformance run in a fresh empty directory, as a user runs it (shared by the scripts)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import DEVNULL
from typing import Any


FOUNDATION = ("uvicorn", "hypercorn", "daphne", "granian")


def run_suite(
    servers: list[str], extra: list[str], env: dict[str, str] | None = None
) -> tuple[dict[str, Any], float]:
    """Run pytest against ``servers`` (in ``env``, default ours); the matrix and the wall time in seconds."""
    with tempfile.TemporaryDirectory(prefix="asgi-run-") as tmp:
        report = Path(tmp) / "out"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["--asgi-report", str(report), *(f"--asgi-server={s}" for s in servers), *extra]
        began = time.monotonic()
        subprocess.run(command, cwd=tmp, env=env, stdout=DEVNULL, stderr=DEVNULL, check=False)
        wall = time.monotonic() - began
        matrix: dict[str, Any] = json.loads((report / "matrix.json").read_text())
    return matrix, wall
