"""The ``@requirement`` decorator that ties a check to its catalogue entry.

Every check names the requirement it judges.  The decorator validates the id at
import time (a typo fails loudly, not in a report), records the check in a
registry so that self-tests can prove every requirement has a check, and applies
the ``asgi_requirement`` marker the plugin reads to build the matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from conformance._catalogue import PROTOCOLS
from conformance._catalogue import requirement as lookup


__all__ = ["MARKER", "checks_by_requirement", "judged", "requirement"]

MARKER = "asgi_requirement"

F = TypeVar("F", bound=Callable[..., object])

#: requirement id -> qualified names of the checks that judge it.
_CHECKS: dict[str, list[str]] = {}


def requirement(*requirement_ids: str) -> Callable[[F], F]:
    """Declare which catalogue requirement the decorated check judges.

    One check may judge one requirement per protocol (``h2.reset.disconnect`` and
    ``h3.reset.disconnect``: the same sentence of www.rst, the same observation, over
    RFC 9113 and RFC 9114): each column's cell is the id that applies to its wire, so
    the check is written once and no module is copied per transport.  At most one of
    the ids may apply to any column, which is checked here, at import.
    """
    if not requirement_ids:
        raise TypeError("@requirement needs at least one requirement id")
    rows = [lookup(rid) for rid in requirement_ids]  # KeyError for an unknown id, at import
    for wire in sorted({w for wires in PROTOCOLS.values() for w in wires}):
        for tls in (False, True):
            both = [r.id for r in rows if r.applies(wire, tls)]
            if len(both) > 1:
                raise ValueError(
                    f"{', '.join(both)} all apply to a {wire} column: one check, one cell"
                )

    def decorate(fn: F) -> F:
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        for rid in requirement_ids:
            _CHECKS.setdefault(rid, []).append(name)
        marked: F = getattr(pytest.mark, MARKER)(*requirement_ids)(fn)
        return marked

    return decorate


def judged(requirement_ids: Sequence[object], wire: str, tls: bool) -> str | None:
    """Which of a check's requirement ids a column of ``wire`` (over TLS if ``tls``) judges."""
    for rid in requirement_ids:
        if lookup(str(rid)).applies(wire, tls):
            return str(rid)
    return None


def checks_by_requirement() -> dict[str, list[str]]:
    """What has been registered so far (import the suite modules first)."""
    return {key: list(value) for key, value in _CHECKS.items()}
