"""Known failures: the requirements a server author has accepted, for now, per column.

A server's CI should go red on a new violation, not on the ones already filed
upstream.  ``--asgi-known-failures FILE`` names them, by column and requirement
id, each with its reason and, optionally, the issue that tracks it::

    ["myserver*"]                      # a column name, or a glob of them
    "http.disconnect.repeats" = { reason = "sends one disconnect only", issue = "https://..." }

A check that fails (or warns) on a known entry is an expected failure: the
matrix still says ``fail`` (it is the truth about the server), with the entry
beside it.  An entry whose cell now passes is *stale*, and fails the run, so the
file never outlives the bug it excuses (the rule connect-conformance's runner
has for its known-failing lists).
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


__all__ = ["KNOWN", "KnownFailure", "KnownFailures", "load_known_failures"]

#: The verdicts a known failure excuses: what fails a run, or would under --asgi-strict.
EXCUSED = frozenset({"fail", "warn"})
#: The verdicts that make an entry stale: the requirement is met now.
MET = frozenset({"pass", "info"})


@dataclass(frozen=True)
class KnownFailure:
    """One accepted failure: which columns, which requirement, and why."""

    target: str
    requirement: str
    reason: str
    issue: str = ""

    def matches(self, column: str, rid: str) -> bool:
        return rid == self.requirement and fnmatch.fnmatchcase(column, self.target)

    def describe(self) -> str:
        return self.reason + (f" ({self.issue})" if self.issue else "")

    def to_json(self) -> dict[str, str]:
        return {"target": self.target, "reason": self.reason, "issue": self.issue}


@dataclass(frozen=True)
class KnownFailures:
    """Every entry of a known-failures file, in the file's order."""

    entries: tuple[KnownFailure, ...] = ()
    source: str = ""

    def lookup(self, column: str, rid: str) -> KnownFailure | None:
        return next((e for e in self.entries if e.matches(column, rid)), None)

    def stale(
        self, results: Mapping[str, Mapping[str, Mapping[str, Any]]]
    ) -> list[tuple[str, str, str, KnownFailure]]:
        """(column, requirement, verdict, entry) for every known failure that is met now."""
        found = []
        for column, row in results.items():
            for rid, cell in row.items():
                entry = self.lookup(column, rid)
                if entry is not None and cell["verdict"] in MET:
                    found.append((column, rid, str(cell["verdict"]), entry))
        return found

    def unused(self, columns: Iterable[str]) -> list[KnownFailure]:
        """Entries that name no column of this run (a file shared by several jobs has some)."""
        names = list(columns)
        return [e for e in self.entries if not fnmatch.filter(names, e.target)]


#: The run's known failures, on the controller and on every worker (each reads the file).
KNOWN: pytest.StashKey[KnownFailures] = pytest.StashKey()


def load_known_failures(path: Path) -> KnownFailures:
    """Read and validate ``path``; every mistake is a one-line usage error naming the file."""
    from conformance._catalogue import catalogue

    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise pytest.UsageError(
            f"--asgi-known-failures: cannot read {where}: {exc.strerror}"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"--asgi-known-failures: {where} is not TOML: {exc}") from None
    known = catalogue()
    entries = []
    for target, table in data.items():
        if not isinstance(table, dict):
            raise pytest.UsageError(
                f"{where}: {target!r} must be a table of requirement ids, "
                f'["{target}"] then "REQUIREMENT" = {{ reason = "..." }}'
            )
        for rid, spec in table.items():
            here = f"{where}: [{target}] {rid}"
            if rid not in known:
                raise pytest.UsageError(f"{here}: not a requirement id of the catalogue")
            if not isinstance(spec, dict) or not isinstance(spec.get("reason"), str):
                raise pytest.UsageError(
                    f'{here}: needs {{ reason = "..." }} (and optionally issue)'
                )
            extra = sorted(set(spec) - {"reason", "issue"})
            if extra:
                raise pytest.UsageError(f"{here}: unknown key(s) {', '.join(extra)}")
            issue = spec.get("issue", "")
            if not isinstance(issue, str):
                raise pytest.UsageError(f"{here}: issue must be a string (a link)")
            entries.append(KnownFailure(target, rid, spec["reason"].strip(), issue))
    return KnownFailures(tuple(entries), where)
