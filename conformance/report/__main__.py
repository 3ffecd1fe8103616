"""``python -m conformance.report``: check or render a written matrix.

``check-no-errors MATRIX``
    exit 1 if any cell is ``error`` or a server has no result at all (CI's gate:
    an error means the harness could not judge, which must never pass silently).
``markdown MATRIX``
    print the Markdown rendering of the matrix.

The older name of two ``asgi-conformance`` commands; the code is in ``conformance/cli/``.
"""

from __future__ import annotations

import sys

from conformance.cli import dispatch, run_quietly


def main(argv: list[str] | None = None) -> int:
    return dispatch(
        argv, prog="python -m conformance.report", names=("check-no-errors", "markdown")
    )


def _run() -> int:
    return run_quietly(main)


if __name__ == "__main__":
    sys.exit(_run())
