"""Commands on one written matrix: the CI gate, and its Markdown and HTML renderings.

``check-no-errors`` and ``markdown`` are also ``python -m conformance.report``'s
commands (that module delegates here).  Both exit 1, not 2, for a matrix they cannot
read, as they always have: CI jobs gate on it, and for the gate an unreadable matrix
is one more thing it cannot vouch for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance._matrix import counts, iter_cells, render_markdown
from conformance.cli._input import read_matrix, write_text


__all__ = ["configure_check_no_errors", "configure_html", "configure_markdown"]

#: The status of an unreadable matrix for the two commands older than ``asgi-conformance``.
_GATE_STATUS = 1


def configure_check_no_errors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrix", type=Path)
    parser.set_defaults(handler=_check_no_errors)


def configure_markdown(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrix", type=Path)
    parser.set_defaults(handler=_markdown)


def configure_html(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrix", type=Path)
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="created if missing"
    )
    parser.set_defaults(handler=_html)


def _check_no_errors(args: argparse.Namespace) -> int:
    """Exit 1 if any cell is ``error`` or a column has no result: an error means the
    harness could not judge, which must never pass silently."""
    matrix = read_matrix(args.matrix, status=_GATE_STATUS)
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


def _markdown(args: argparse.Namespace) -> int:
    print(render_markdown(read_matrix(args.matrix, status=_GATE_STATUS)))
    return 0


def _html(args: argparse.Namespace) -> int:
    from conformance.report._html import render_html  # jinja2 only for the commands using it

    matrix = read_matrix(args.matrix)
    print(f"wrote {write_text(args.output / 'matrix.html', render_html(matrix))}")
    return 0
