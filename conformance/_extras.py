"""Optional client libraries: which columns need which, and how to install them.

The HTTP/1.1 suite needs none of them.  ``h2`` drives the HTTP/2 columns, ``trustme``
makes the session's certificates for every TLS column, and ``aioquic`` drives
HTTP/3; each is an extra of the distribution (``asgi-conformance[http2]``,
``[tls]``, ``[http3]``; ``[all]`` for every one), imported only where it is used.
A column whose library is missing is refused before anything runs, in one line
that says what to install, rather than erroring in each of its checks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from conformance._profiles import Target


__all__ = ["Extra", "missing_for"]


@dataclass(frozen=True)
class Extra:
    """An optional dependency: the module imported, and the extra that installs it."""

    module: str
    extra: str


HTTP2 = Extra("h2", "http2")
TLS = Extra("trustme", "tls")
HTTP3 = Extra("aioquic", "http3")


def needs(target: Target) -> list[Extra]:
    """The optional libraries the suite's clients use on ``target``'s column."""
    found = []
    if target.wire == "h2":
        found.append(HTTP2)
    if target.wire == "h3":
        found.append(HTTP3)
    if target.tls:
        found.append(TLS)
    return found


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken one
        return False


def missing_for(targets: Sequence[Target]) -> str:
    """The one-line usage error for the columns whose libraries are missing, or ``""``."""
    missing: dict[Extra, list[str]] = {}
    for target in targets:
        for extra in needs(target):
            if not _installed(extra.module):
                missing.setdefault(extra, []).append(target.name)
    if not missing:
        return ""
    parts = [
        f"{_listed(names)} need{'s' if len(names) == 1 else ''} {extra.module}"
        for extra, names in missing.items()
    ]
    extras = ",".join(extra.extra for extra in missing)
    return f"{'; '.join(parts)}: pip install 'asgi-conformance[{extras}]'"


def _listed(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
