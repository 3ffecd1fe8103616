"""Compiled bytecode for a run in an environment that forbids writing it.

A conformance run starts dozens of server processes per column, each importing
its server, its event loop and the probe app; the pytest process itself
imports the suite and hypothesis through pytest's assertion rewriting.  With
``PYTHONDONTWRITEBYTECODE`` set (common in containers and CI images) every one
of those imports compiles from source, every time: on a 2-core machine that
was a second of CPU per pytest process and a large share of every boot.

The wish behind the variable is that nothing is written next to the sources.
It is kept: bytecode goes to a cache directory of the suite's own
(``sys.pycache_prefix``, PEP 3147's ``PYTHONPYCACHEPREFIX``), never into the
user's tree or site-packages, and the servers the suite starts inherit the
same prefix.  An environment that already names a prefix is left alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


__all__ = ["cache_bytecode"]

_DISABLE = "PYTHONDONTWRITEBYTECODE"
_PREFIX = "PYTHONPYCACHEPREFIX"


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_bytecode() -> str | None:
    """Write and read bytecode under the suite's cache; the prefix chosen, or None if unchanged."""
    if not sys.dont_write_bytecode or sys.pycache_prefix is not None:
        return None
    try:
        prefix = _cache_home() / "asgi-conformance" / "pycache"
        prefix.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home directory to be found
        return None  # nowhere to write: compile from source as asked
    sys.pycache_prefix = str(prefix)
    sys.dont_write_bytecode = False
    os.environ[_PREFIX] = str(prefix)  # for the servers and the xdist workers
    os.environ.pop(_DISABLE, None)
    return str(prefix)


def keep_hypothesis_home() -> None:
    """Hypothesis keeps a cache (``.hypothesis/``) in the working directory; a server
    author's checkout is no place for the suite's: it goes beside the bytecode cache,
    unless the user chose a place (``HYPOTHESIS_STORAGE_DIRECTORY``)."""
    try:
        home = _cache_home() / "asgi-conformance" / "hypothesis"
    except RuntimeError:  # no home directory to be found
        return
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(home))
