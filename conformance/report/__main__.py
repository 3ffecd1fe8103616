"""``python -m conformance.report``: check or render a written matrix.

``check-no-errors MATRIX``
    exit 1 if any cell is ``error`` or a server has no result at all (CI's gate:
    an error means the harness could not judge, which must never pass silently).
``markdown MATRIX``
    print the Markdown rendering of the matrix.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from conformance._matrix import counts, iter_cells, load_matrix, render_markdown


def _check_no_errors(path: Path) -> int:
    try:
        matrix = load_matrix(path)
    except (OSError, ValueError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    problems = [
        f"{server} {rid}: {cell['detail'].splitlines()[0] if cell['detail'] else ''}"
        for server, rid, cell in iter_cells(matrix)
        if cell["verdict"] == "error"
    ]
    problems += [f"{server}: no result" for server, row in matrix["results"].items() if not row]
    if not matrix["results"]:
        problems.append("the matrix has no server")
    for server, row in matrix["results"].items():
        tally = ", ".join(f"{n} {v}" for v, n in counts(row).items() if n)
        print(f"{server}: {tally}")
    if problems:
        print(f"{len(problems)} error cell(s):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.report")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-no-errors", help="fail if any verdict is error")
    check.add_argument("matrix", type=Path)
    markdown = commands.add_parser("markdown", help="print the matrix as Markdown")
    markdown.add_argument("matrix", type=Path)
    args = parser.parse_args(argv)
    if args.command == "check-no-errors":
        return _check_no_errors(args.matrix)
    try:
        matrix = load_matrix(args.matrix)
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.matrix}: {exc}", file=sys.stderr)
        return 1
    print(render_markdown(matrix))
    return 0


def _run() -> int:
    """``main``, where a reader that stops early (``| head``) ends the output quietly."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the pipe again when it flushes at exit: point stdout nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":
    sys.exit(_run())
