"""Benchmark of the conformance run: wall time per server, checks per second, boot share.

Speed targets are measured here, never asserted in tests.  Each server is run in
its own pytest process from an empty directory, as a user runs it; the figures
come from the wall clock and from the ``boots`` the plugin records in
matrix.json.  A last run compares all the servers at once, optionally with
``-n N`` (pytest-xdist).

    python benchmarks/bench_suite.py                    # the four foundation servers
    python benchmarks/bench_suite.py uvicorn -k path    # extra args go to pytest
    python benchmarks/bench_suite.py --parallel 2       # also the comparison with -n 2
    python benchmarks/bench_suite.py --area lifespan    # one protocol area's checks only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _runs import FOUNDATION, run_suite


#: The suite modules of each protocol area, as a ``-k`` expression over module names.
AREAS = {
    "http": "test_http_ or test_ext_http or test_legacy_app",
    "lifespan": "test_lifespan",
    "websocket": "test_websocket_ or test_ext_websocket",
}


def run(servers: list[str], extra: list[str], parallel: int | None) -> dict[str, Any]:
    matrix, wall = run_suite(servers, [*(["-n", str(parallel)] if parallel else []), *extra])
    cells = sum(len(row) for row in matrix["results"].values())
    checks = sum(len(cell["checks"]) for row in matrix["results"].values() for cell in row.values())
    boots = sum(
        boot["seconds"] for info in matrix["servers"].values() for boot in info.get("boots", [])
    )
    return {
        "servers": servers,
        "parallel": parallel or 1,
        "wall_seconds": round(wall, 2),
        "requirements_judged": cells,
        "checks_run": checks,
        "checks_per_second": round(checks / wall, 1) if wall else 0.0,
        "boot_seconds": round(boots, 2),
        "boot_share": round(boots / wall, 3) if wall else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("servers", nargs="*", default=list(FOUNDATION))
    parser.add_argument(
        "--parallel", type=int, default=None, help="also run the comparison with -n N"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--area", choices=sorted(AREAS), default=None, help="time one area only")
    args, extra = parser.parse_known_args()
    if args.area:
        extra = ["-k", AREAS[args.area], *extra]
    results = [run([server], extra, None) for server in args.servers]
    if len(args.servers) > 1:
        results.append(run(args.servers, extra, None))
        if args.parallel:
            results.append(run(args.servers, extra, args.parallel))
    print(
        f"{'servers':<40} {'-n':>3} {'wall s':>7} {'checks':>7} {'chk/s':>7} {'boot s':>7} {'boot%':>6}"
    )
    for r in results:
        print(
            f"{','.join(r['servers']):<40} {r['parallel']:>3} {r['wall_seconds']:>7} {r['checks_run']:>7}"
            f" {r['checks_per_second']:>7} {r['boot_seconds']:>7} {100 * r['boot_share']:>5.1f}%"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
