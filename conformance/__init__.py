"""asgi-conformance: the conformance suite for ASGI servers.

Run it with ``pytest --asgi-server=uvicorn``.  This module is the small public
surface; everything else is private and may change.

The names are loaded on first use (PEP 562): the probe apps of
``conformance.apps`` run inside every server process the suite starts, and
importing this package must not drag pytest and the catalogue into each of them
(a boot that pays for the test framework is paid dozens of times per column).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from conformance._catalogue import Requirement, catalogue
    from conformance._registry import requirement
    from conformance._verdicts import (
        ConformanceFailure,
        HarnessError,
        Level,
        Unsupported,
        Verdict,
    )


__version__ = "0.1.0"

#: Public name -> the private module that defines it.
_EXPORTS = {
    "ConformanceFailure": "conformance._verdicts",
    "HarnessError": "conformance._verdicts",
    "Level": "conformance._verdicts",
    "Requirement": "conformance._catalogue",
    "Unsupported": "conformance._verdicts",
    "Verdict": "conformance._verdicts",
    "catalogue": "conformance._catalogue",
    "requirement": "conformance._registry",
}

__all__ = [
    "ConformanceFailure",
    "HarnessError",
    "Level",
    "Requirement",
    "Unsupported",
    "Verdict",
    "__version__",
    "catalogue",
    "requirement",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
