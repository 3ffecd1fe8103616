"""Finding the processes of one self-test run, by a token in their environment.

A self-test that starts a pytest session (which starts servers, which may start
workers) puts a unique token in the session's environment; every descendant
inherits it, whatever its process group or session.  Scanning ``/proc`` for it
afterwards proves that nothing of the run outlived it (Linux only).
"""

from __future__ import annotations

import os
from pathlib import Path


__all__ = ["processes_with"]


def processes_with(variable: str, token: str) -> list[tuple[int, str]]:
    """Live processes whose environment has ``variable=token``, with their command lines."""
    marker = f"{variable}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found
