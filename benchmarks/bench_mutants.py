"""Benchmark of the mutant self-test session: how long proving every check takes.

``tests/test_mutants.py`` runs one pytest session over plain uvicorn, the two
controls and every mutant.  Its duration is measured here rather than asserted
in the self-tests (a timed assertion would be flaky on a loaded machine).

    python benchmarks/bench_mutants.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["tests/test_mutants.py", "-k", "every_requirement_is_proven"]
    began = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:])
    print(f"mutant session (with its pytest wrapper): {wall:.1f} s")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
