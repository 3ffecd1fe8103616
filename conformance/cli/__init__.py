"""``asgi-conformance`` (also ``python -m conformance``): commands on written matrices.

No command starts a server: they read the ``matrix.json`` a run wrote.  One module a
concern, each with a ``configure(parser)`` that declares its arguments and its handler:

=================  ========================  ===============================================
command            module                    does
=================  ========================  ===============================================
check-no-errors    ``_report``               CI's gate: exit 1 on an error cell
markdown           ``_report``               print the Markdown rendering
html               ``_report``               write ``matrix.html`` into a directory
merge              ``_merge``                one matrix from the runs of separate CI jobs
diff               ``_diff``                 changed cells; exit 1 when one got worse
badge              ``_badge``                a shields-style SVG of a server's MUST score
=================  ========================  ===============================================

``python -m conformance.report`` is the older name of the first two and runs the same
code.  What a user can get wrong (a missing file, bad JSON, runs that do not mix) ends
a command with one line on stderr, never a traceback (``_input.CommandError``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from conformance.cli import _badge, _diff, _merge, _report
from conformance.cli._input import USAGE_STATUS, CommandError


__all__ = ["dispatch", "main", "run", "run_quietly"]

PROG = "asgi-conformance"

#: name -> (help, what declares its arguments and handler), in ``--help`` order.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "check-no-errors": (
        "exit 1 if any cell is error or a column has no result",
        _report.configure_check_no_errors,
    ),
    "markdown": ("print the matrix as Markdown", _report.configure_markdown),
    "html": ("write matrix.html into a directory", _report.configure_html),
    "merge": ("combine the matrices of separate runs into one", _merge.configure),
    "diff": ("list changed cells; exit 1 if any got worse", _diff.configure),
    "badge": ("write an SVG badge of a server's MUST score", _badge.configure),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_STATUS, f"{self.prog}: {message} (see {self.prog} --help)\n")


def dispatch(argv: Sequence[str] | None, *, prog: str, names: Sequence[str]) -> int:
    """Parse ``argv`` for the commands ``names`` of :data:`COMMANDS` and run the one chosen."""
    parser = _Parser(prog=prog, description="Commands on the matrix.json a conformance run wrote.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in names:
        help_text, configure = COMMANDS[name]
        configure(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as exc:
        # One line whatever the message holds: a file or server name may have a newline.
        print(" ".join(str(exc).splitlines()), file=sys.stderr)
        return exc.status


def main(argv: list[str] | None = None) -> int:
    return dispatch(argv, prog=PROG, names=list(COMMANDS))


def run_quietly(entry: Callable[[], int]) -> int:
    """``entry()``, where a reader that stops early (``| head``) ends the output quietly."""
    try:
        status = entry()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the pipe again when it flushes at exit: point stdout nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


def run() -> int:
    """The console script: :func:`main` on ``sys.argv``, quiet on a closed pipe."""
    return run_quietly(main)
