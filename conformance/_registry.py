"""The ``@requirement`` decorator that ties a check to its catalogue entry.

Every check names the requirement it judges.  The decorator validates the id at
import time (a typo fails loudly, not in a report), records the check in a
registry so that self-tests can prove every requirement has a check, and applies
the ``asgi_requirement`` marker the plugin reads to build the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from conformance._catalogue import requirement as lookup


__all__ = ["MARKER", "checks_by_requirement", "requirement"]

MARKER = "asgi_requirement"

F = TypeVar("F", bound=Callable[..., object])

#: requirement id -> qualified names of the checks that judge it.
_CHECKS: dict[str, list[str]] = {}


def requirement(requirement_id: str) -> Callable[[F], F]:
    """Declare which catalogue requirement the decorated check judges."""
    lookup(requirement_id)  # raises KeyError for an unknown id, at import

    def decorate(fn: F) -> F:
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        _CHECKS.setdefault(requirement_id, []).append(name)
        marked: F = getattr(pytest.mark, MARKER)(requirement_id)(fn)
        return marked

    return decorate


def checks_by_requirement() -> dict[str, list[str]]:
    """What has been registered so far (import the suite modules first)."""
    return {key: list(value) for key, value in _CHECKS.items()}
