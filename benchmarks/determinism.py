"""Run the suite N times against each server and report every cell whose verdict changed.

A flaky check is a bug: the same server must give the same matrix run after run.
Exit status 1 if any cell changed.

    python benchmarks/determinism.py -n 10                 # the four foundation servers
    python benchmarks/determinism.py -n 3 uvicorn -k path
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from _runs import FOUNDATION, run_suite


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
    parser.add_argument("servers", nargs="*", default=list(FOUNDATION))
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for index in range(args.runs):
        verdicts = one_run(args.servers, extra)
        for server, row in verdicts.items():
            for rid, verdict in row.items():
                seen[(server, rid)].append(verdict)
        print(
            f"run {index + 1}/{args.runs}: {sum(len(r) for r in verdicts.values())} cells",
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
