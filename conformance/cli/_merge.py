"""``merge``: the matrices of separate CI jobs (one job a server) as one comparison.

Columns only sit side by side when their rows mean the same thing, so a merge is
refused, naming both files, when the runs differ in schema or suite version, or were
judged against different catalogues (``catalogue``, the digest of
:func:`conformance._catalogue.catalogue_digest`); a matrix written before that key
existed cannot show which catalogue it used, and is refused too.  Two inputs with the
same column are refused: one of the two sets of cells would silently be lost.

The merged matrix is what one run judging every column would have written:

- ``servers`` and ``results`` in input order;
- ``checks``, the union of the inputs' rows, in catalogue order (rows this catalogue
  does not know last, sorted, as :class:`conformance._matrix.MatrixBuilder` orders them);
- ``partial`` if any input is, ``notes`` concatenated without repeats, ``left_out`` the
  rows any input left out (they are still unjudged on that input's columns, even if
  another input judged them);
- ``generated_at`` now, and ``merged_from``: the input paths, as given.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from conformance._catalogue import catalogue
from conformance._matrix import write_matrix
from conformance.cli._input import CommandError, columns, read_matrix


__all__ = ["catalogue_order", "configure", "merge_matrices"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrices", type=Path, nargs="+", metavar="MATRIX")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="created if missing"
    )
    parser.set_defaults(handler=_merge)


def _merge(args: argparse.Namespace) -> int:
    paths: list[Path] = args.matrices
    if len(paths) < 2:
        raise CommandError(f"merge needs at least two matrices, got only {paths[0]}")
    merged = merge_matrices([(str(path), read_matrix(path)) for path in paths])
    try:
        written = write_matrix(merged, args.output)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    for path in written:
        print(f"wrote {path}")
    return 0


def merge_matrices(inputs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """One matrix from ``(name, matrix)`` pairs, or a CommandError saying why they do not mix."""
    _refuse_unmixable(inputs)
    first = inputs[0][1]
    checks: dict[str, Any] = {}
    for _, matrix in inputs:
        for rid, entry in matrix["checks"].items():
            checks.setdefault(rid, entry)
    servers: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for _, matrix in inputs:
        for column in columns(matrix):
            servers[column] = matrix["servers"].get(column, {"name": column})
            results[column] = matrix["results"].get(column, {})
    notes = [note for _, matrix in inputs for note in matrix.get("notes") or ()]
    left_out = {rid for _, matrix in inputs for rid in matrix.get("left_out") or ()}
    return {
        "schema_version": first["schema_version"],
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "suite_version": first["suite_version"],
        "catalogue": first["catalogue"],
        "partial": any(bool(matrix.get("partial")) for _, matrix in inputs),
        "notes": list(dict.fromkeys(notes)),
        "left_out": catalogue_order(left_out),
        "servers": servers,
        "checks": {rid: checks[rid] for rid in catalogue_order(checks)},
        "results": results,
        "merged_from": [name for name, _ in inputs],
    }


def _refuse_unmixable(inputs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    first_name, first = inputs[0]
    # The version first: a different suite usually has a different catalogue too, and
    # "suite versions differ" says more about why.
    for key, what in (("schema_version", "schema versions"), ("suite_version", "suite versions")):
        for name, matrix in inputs[1:]:
            if matrix[key] != first[key]:
                raise CommandError(
                    f"cannot merge {first_name} and {name}: {what} differ "
                    f"({first[key]} vs {matrix[key]})"
                )
    for name, matrix in inputs:
        if "catalogue" not in matrix:
            raise CommandError(
                f"cannot merge {name}: it has no 'catalogue' digest (written by an older "
                "asgi-conformance), so nothing shows its rows mean what the others' do; "
                "re-run it"
            )
    for name, matrix in inputs[1:]:
        if matrix["catalogue"] != first["catalogue"]:
            raise CommandError(
                f"cannot merge {first_name} and {name}: they were judged against different "
                f"catalogues ({first['catalogue']} vs {matrix['catalogue']})"
            )
    owner: dict[str, str] = {}
    for name, matrix in inputs:
        for column in columns(matrix):
            if column in owner:
                raise CommandError(
                    f"cannot merge {owner[column]} and {name}: both have the column {column!r}"
                )
            owner[column] = name


def catalogue_order(rids: Iterable[str]) -> list[str]:
    """``rids`` in catalogue order, then the ids this catalogue does not know, sorted."""
    known = catalogue()
    given = set(rids)
    return [rid for rid in known if rid in given] + sorted(given - set(known))
