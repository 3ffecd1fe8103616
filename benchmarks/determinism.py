"""Run the suite N times against each server and report every cell whose verdict changed.

A flaky check is a bug: the same server must give the same matrix run after run.
Exit status 1 if any cell changed.

    python benchmarks/determinism.py -n 10                 # the four foundation servers
    python benchmarks/determinism.py -n 3 uvicorn -k path
    python benchmarks/determinism.py -n 4 --load           # every other run with every core busy

With ``--load`` the odd runs have a CPU-bound process spinning on every core
(tests/_load.py), as a shared CI runner's neighbours would: the matrix must not
move.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import defaultdict
from pathlib import Path

from _runs import FOUNDATION, run_suite


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests._load import busy_cores


def one_run(servers: list[str], extra: list[str]) -> dict[str, dict[str, str]]:
    matrix, _ = run_suite(servers, extra)
    return {
        server: {rid: cell["verdict"] for rid, cell in row.items()}
        for server, row in matrix["results"].items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--runs", type=int, default=10)
    parser.add_argument(
        "--load", action="store_true", help="every other run with every core kept busy"
    )
    parser.add_argument("servers", nargs="*", default=list(FOUNDATION))
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for index in range(args.runs):
        loaded = args.load and index % 2 == 1
        with busy_cores() if loaded else contextlib.nullcontext():
            verdicts = one_run(args.servers, extra)
        for server, row in verdicts.items():
            for rid, verdict in row.items():
                seen[(server, rid)].append(verdict)
        print(
            f"run {index + 1}/{args.runs}{' (every core busy)' if loaded else ''}: "
            f"{sum(len(r) for r in verdicts.values())} cells",
            flush=True,
        )
    changed = {
        key: values
        for key, values in seen.items()
        if len(set(values)) > 1 or len(values) != args.runs
    }
    print(f"{len(seen)} cells x {args.runs} runs: {len(changed)} changed")
    for (server, rid), values in sorted(changed.items()):
        print(f"  {server} {rid}: {values}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
