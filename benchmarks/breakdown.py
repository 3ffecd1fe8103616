"""Where one server's conformance run spends its wall time and its CPU: the table.

    python benchmarks/breakdown.py                 # uvicorn
    python benchmarks/breakdown.py hypercorn -k http_
    python benchmarks/breakdown.py daphne --runs 3 # medians of 3 runs

One column is run as a user runs it (``pytest --asgi-server=SERVER`` in an empty
directory) with ``benchmarks/_breakdown_plugin.py`` loaded, which sums the time of
each kind of work: pytest's start and collection, every server instance's boot and
stop by the app it serves, the side channel's round trips and the bounded waits
that ran out (what proves a negative), each scenario and check run ahead, and the
checks of each suite module.  Rows overlap (scenarios run in a thread beside the
checks, instances boot at once), so a row's sum can exceed its share of the wall:
the wall and CPU lines are the truth, the rows say where to look.  The last rows
give the floor (the critical path: start-up, collection, the main boot, the longest
scenario, the main stop) and how far the wall is above it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _breakdown_plugin import OUTPUT_VARIABLE
from _runs import run_suite


HERE = Path(__file__).resolve().parent


def one_run(server: str, extra: list[str]) -> dict[str, tuple[int, float]]:
    with tempfile.TemporaryDirectory(prefix="asgi-breakdown-") as tmp:
        output = Path(tmp) / "breakdown.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        env[OUTPUT_VARIABLE] = str(output)
        began = time.monotonic()
        _, wall = run_suite([server], ["-p", "_breakdown_plugin", *extra], env)
        record: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    marks = record["marks"]
    rows = {
        "pytest start (interpreter, plugins)": (1, marks["configured"] - began),
        "collection (suite modules, hypothesis)": (1, marks["collected"] - marks["configured"]),
    }
    for key in sorted(record["sums"], key=lambda k: (k.split(":")[0], -record["sums"][k])):
        rows[key] = (record["counts"][key], record["sums"][key])
    rows["wall"] = (1, wall)
    rows.update(_floor(rows, wall))
    rows["CPU: pytest process"] = (1, record["cpu"]["pytest"])
    rows["CPU: servers (reaped children)"] = (1, record["cpu"]["servers"])
    return rows


def _floor(rows: dict[str, tuple[int, float]], wall: float) -> dict[str, tuple[int, float]]:
    """The critical path no scheduling can shorten, and what the run spent above it.

    Start-up and collection, the main instance's boot, then the longest scenario
    (its own boot and the watch it must wait out, which everything else overlaps)
    and the main instance's stop, unless the shared instances retired early (then
    their stops overlapped the lifespan watches).
    """
    scenarios = {k: v[1] for k, v in rows.items() if k.startswith("scenario: ")}
    if not scenarios:
        return {}
    longest = max(scenarios, key=lambda k: scenarios[k])
    parts = [
        rows["pytest start (interpreter, plugins)"][1],
        rows["collection (suite modules, hypothesis)"][1],
        rows.get("boot: app", (1, 0.0))[1],
        scenarios[longest],
    ]
    retired = "retired early (shared instances)" in rows
    if not retired:
        parts.append(rows.get("stop: app", (1, 0.0))[1])
    stop = "" if retired else " + stop"
    floor = sum(parts)
    return {
        f"floor: start + collection + main boot + {longest.removeprefix('scenario: ')}{stop}": (
            1,
            floor,
        ),
        "above the floor (wall - floor)": (1, wall - floor),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("server", nargs="?", default="uvicorn")
    parser.add_argument("--runs", type=int, default=1, help="report medians of this many runs")
    args, extra = parser.parse_known_args()
    runs = [one_run(args.server, extra) for _ in range(args.runs)]
    keys = list(dict.fromkeys(key for run in runs for key in run))
    print(f"{args.server}: median of {args.runs} run(s); seconds are sums of durations")
    print(f"{'where':<52} {'count':>6} {'seconds':>8}")
    for key in keys:
        counts = [run[key][0] for run in runs if key in run]
        seconds = [run[key][1] for run in runs if key in run]
        print(f"{key:<52} {statistics.median(counts):>6g} {statistics.median(seconds):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
