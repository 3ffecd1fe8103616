"""asgi-conformance: the conformance suite for ASGI servers.

Run it with ``pytest --asgi-server=uvicorn``.  This module is the small public
surface; everything else is private and may change.
"""

from conformance._catalogue import Requirement, catalogue
from conformance._registry import requirement
from conformance._verdicts import ConformanceFailure, HarnessError, Level, Unsupported, Verdict


__version__ = "0.1.0"

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
