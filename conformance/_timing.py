"""The suite's one time unit.

Every wait in the suite is a multiple of :data:`UNIT` scaled by the timeout
factor (``--asgi-timeout-factor`` or ``ASGI_CONFORMANCE_TIMEOUT_FACTOR``), as
websockets does with its ``MS``: users run conformance suites on slow, shared CI
machines, and a fixed sleep that is long enough here is a flaky check there.
Waits are *bounds* on observed events, never sleeps that hope something happened.
"""

from __future__ import annotations

import os


__all__ = ["UNIT", "set_factor", "timeout_factor", "units"]

#: The base unit in seconds: a loopback round trip plus an app step fit in it many times.
UNIT = 1.0

ENV_FACTOR = "ASGI_CONFORMANCE_TIMEOUT_FACTOR"

_factor: float | None = None


def timeout_factor() -> float:
    """The factor in force: set by the plugin, else read from the environment."""
    if _factor is not None:
        return _factor
    raw = os.environ.get(ENV_FACTOR, "1")
    try:
        value = float(raw)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def set_factor(value: float) -> None:
    """Set the factor for this process (and, through the environment, for servers)."""
    global _factor
    if value <= 0:
        raise ValueError(f"the timeout factor must be positive, not {value}")
    _factor = value
    os.environ[ENV_FACTOR] = repr(value)


def units(n: float) -> float:
    """``n`` time units in seconds, scaled."""
    return n * UNIT * timeout_factor()
