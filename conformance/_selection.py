"""Which requirements a run judges: ``--asgi-only GLOB`` and ``--asgi-level LEVEL``.

Server authors think in requirement ids and levels, not in the names of test
functions (``-k`` matches those): ``--asgi-only 'http.scope.*' --asgi-level MUST``
keeps the checks of the MUST rows of the HTTP scope.  Globs match the id
(``fnmatch``, case-sensitive as ids are lower case); levels are the catalogue's.
A run that leaves rows out is marked partial, and its matrix lists them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from conformance._catalogue import requirement
from conformance._verdicts import Level


__all__ = ["Selection"]


@dataclass(frozen=True)
class Selection:
    """The requirement ids and levels asked for (empty: all of them)."""

    globs: tuple[str, ...] = ()
    levels: frozenset[Level] = frozenset()

    @classmethod
    def from_options(cls, globs: Sequence[str], levels: Sequence[str]) -> Selection:
        """The selection of the command line; a level nobody knows is a usage error."""
        known = {level.value.lower(): level for level in Level}
        chosen = set()
        for name in levels:
            level = known.get(name.strip().lower())
            if level is None:
                names = ", ".join(level.value for level in Level)
                raise pytest.UsageError(f"--asgi-level {name!r}: not a level (one of {names})")
            chosen.add(level)
        return cls(tuple(globs), frozenset(chosen))

    def wants(self, rid: str) -> bool:
        """Whether the checks of requirement ``rid`` are kept."""
        if self.globs and not any(fnmatch.fnmatchcase(rid, glob) for glob in self.globs):
            return False
        return not self.levels or requirement(rid).level in self.levels
