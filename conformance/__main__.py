"""``python -m conformance``: the ``asgi-conformance`` command (``conformance/cli/``)."""

from __future__ import annotations

import sys

from conformance.cli import run


if __name__ == "__main__":
    sys.exit(run())
