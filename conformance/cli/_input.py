"""Reading a ``matrix.json`` for a command, and the one error a command may end with.

A command never shows a traceback for what a user can cause (a missing file, a file
that is not JSON, JSON that is not a matrix, two runs that cannot be compared): it
raises :class:`CommandError`, and ``main`` prints its message as one line on stderr
and exits with its status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance._matrix import VERDICT_ORDER


__all__ = ["USAGE_STATUS", "CommandError", "columns", "read_matrix", "write_text"]

#: The exit status of an input that cannot be used, as argparse's for a bad command line.
USAGE_STATUS = 2
#: What every matrix has, whichever suite version wrote it (schema version 1).
_REQUIRED = ("schema_version", "generated_at", "suite_version", "servers", "checks", "results")
#: What every row of ``checks`` has: the renderings show them.
_ROW_KEYS = ("level", "title", "url")


class CommandError(Exception):
    """What stopped a command, said in one line, and the status to exit with."""

    def __init__(self, message: str, status: int = USAGE_STATUS) -> None:
        super().__init__(message)
        self.status = status


def read_matrix(path: Path, *, status: int = USAGE_STATUS) -> dict[str, Any]:
    """The matrix in ``path``, checked for the shape the commands read, or a CommandError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", status) from None
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {path}: not UTF-8 text", status) from None
    try:
        data = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError, and a number too long to convert
        raise CommandError(f"cannot read {path}: not JSON ({exc})", status) from None
    problem = _shape_problem(data)
    if problem:
        raise CommandError(f"cannot read {path}: not a conformance matrix ({problem})", status)
    matrix: dict[str, Any] = data
    return matrix


def _shape_problem(data: object) -> str:
    """Why ``data`` is not a matrix the renderings can walk, or ``""``."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not an object"
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        return "no " + ", ".join(repr(key) for key in missing)
    for key in ("servers", "checks", "results"):
        if not isinstance(data[key], dict):
            return f"{key!r} is not an object"
    for rid, entry in data["checks"].items():
        if not isinstance(entry, dict):
            return f"checks[{rid!r}] is not an object"
        for key in _ROW_KEYS:
            if not isinstance(entry.get(key), str):
                return f"checks[{rid!r}] has no {key!r}"
    for server, row in data["results"].items():
        if not isinstance(row, dict):
            return f"results[{server!r}] is not an object"
        for rid, cell in row.items():
            if not isinstance(cell, dict) or cell.get("verdict") not in VERDICT_ORDER:
                return f"results[{server!r}][{rid!r}] has no known verdict"
            if not isinstance(cell.get("detail"), str):
                return f"results[{server!r}][{rid!r}] has no detail text"
    return ""


def columns(matrix: Mapping[str, Any]) -> list[str]:
    """A matrix's columns: a server with no result at all is still one (an empty row)."""
    return list(dict.fromkeys([*matrix["servers"], *matrix["results"]]))


def write_text(path: Path, text: str) -> Path:
    """Write one output file, creating its directory; a failure is a CommandError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
