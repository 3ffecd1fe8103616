"""``diff OLD NEW``: what changed between two matrices, and whether anything got worse.

Worse is defined once, by :data:`RANK`.  A cell got worse when its verdict moved to a
higher rank; a move within a rank (pass to unsupported, fail to error) is listed but
is neither worse nor better.  Exit status: 1 when some cell got worse, else 0 (2 for
an input that cannot be read).

Only cells of columns present in both matrices, and of rows present in both, are
compared one by one; columns and rows that appeared or disappeared are listed once
each.  A row one matrix does not have but lists in its ``left_out`` (a subset run) is
not a removed row: its cells are compared, and a cell that OLD had and NEW lacks is
listed as "no longer judged" without counting as worse (a run of fewer checks is not
a regression).  For the same reason a cell NEW judged and OLD did not ("not judged")
is never worse, whatever its verdict.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.cli._input import columns, read_matrix


__all__ = ["RANK", "Change", "MatrixDiff", "configure", "diff_matrices"]

#: How far from conformant a verdict is.  pass, info and unsupported are not violations
#: (unsupported: an optional feature not offered); warn is a SHOULD not met; fail breaks a
#: MUST, and error means the cell can no longer be judged at all, so a cell that used to
#: pass must not turn into one unnoticed.  Neither of the last two is worse than the other.
RANK: Mapping[str, int] = {
    "pass": 0,
    "info": 0,
    "unsupported": 0,
    "warn": 1,
    "fail": 2,
    "error": 2,
}


@dataclass(frozen=True)
class Change:
    """One cell whose verdict differs; None: the matrix has no cell there."""

    server: str
    rid: str
    old: str | None
    new: str | None

    @property
    def worse(self) -> bool:
        return self.old is not None and self.new is not None and RANK[self.new] > RANK[self.old]

    @property
    def better(self) -> bool:
        return self.old is not None and self.new is not None and RANK[self.new] < RANK[self.old]

    def line(self) -> str:
        old = self.old or "not judged"
        new = self.new or "no longer judged"
        mark = " (worse)" if self.worse else " (better)" if self.better else ""
        return f"{self.server} {self.rid}: {old} → {new}{mark}"


@dataclass
class MatrixDiff:
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    added_rows: list[str] = field(default_factory=list)
    removed_rows: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    #: ``(what, old, new)`` for the suite version and catalogue, where they differ.
    provenance: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def worse(self) -> list[Change]:
        return [change for change in self.changes if change.worse]

    def lines(self) -> list[str]:
        out = [f"{what}: {old} → {new}" for what, old, new in self.provenance]
        out += [f"column added: {name}" for name in self.added_columns]
        out += [f"column removed: {name}" for name in self.removed_columns]
        out += [f"row added: {rid}" for rid in self.added_rows]
        out += [f"row removed: {rid}" for rid in self.removed_rows]
        out += [change.line() for change in self.changes]
        changed, worse = len(self.changes), len(self.worse)
        out.append(f"{changed} {'cell' if changed == 1 else 'cells'} changed, {worse} worse")
        return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD")
    parser.add_argument("new", type=Path, metavar="NEW")
    parser.set_defaults(handler=_diff)


def _diff(args: argparse.Namespace) -> int:
    result = diff_matrices(read_matrix(args.old), read_matrix(args.new))
    for line in result.lines():
        print(line)
    return 1 if result.worse else 0


def diff_matrices(old: Mapping[str, Any], new: Mapping[str, Any]) -> MatrixDiff:
    result = MatrixDiff()
    for what, key in (("suite version", "suite_version"), ("catalogue", "catalogue")):
        before, after = old.get(key), new.get(key)
        if before != after:
            result.provenance.append((what, str(before or "?"), str(after or "?")))
    old_columns, new_columns = columns(old), columns(new)
    result.added_columns = [name for name in new_columns if name not in old_columns]
    result.removed_columns = [name for name in old_columns if name not in new_columns]
    old_rows, new_rows = _rows(old), _rows(new)
    old_left_out, new_left_out = set(old.get("left_out") or ()), set(new.get("left_out") or ())
    result.added_rows = [rid for rid in new_rows if rid not in old_rows and rid not in old_left_out]
    result.removed_rows = [
        rid for rid in old_rows if rid not in new_rows and rid not in new_left_out
    ]
    skipped = set(result.added_rows) | set(result.removed_rows)
    rows = [rid for rid in dict.fromkeys([*old_rows, *new_rows]) if rid not in skipped]
    for server in old_columns:
        if server not in new_columns:
            continue
        before, after = old["results"].get(server, {}), new["results"].get(server, {})
        for rid in rows:
            was = before[rid]["verdict"] if rid in before else None
            now = after[rid]["verdict"] if rid in after else None
            if was != now:
                result.changes.append(Change(server, rid, was, now))
    return result


def _rows(matrix: Mapping[str, Any]) -> dict[str, None]:
    """The rows a matrix has: its ``checks``, then ids only its results name."""
    extra = [rid for row in matrix["results"].values() for rid in row]
    return dict.fromkeys([*matrix["checks"], *extra])
