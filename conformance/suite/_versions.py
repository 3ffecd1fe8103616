"""The version strings every connection scope carries (asgi.rst "Applications", www.rst).

Shared by the HTTP and WebSocket scope checks: ``scope["asgi"]["version"]`` and
``scope["asgi"]["spec_version"]`` are judged alike whatever the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conformance._probe import Probe, expect


__all__ = ["VERSION", "judge_spec_version"]

#: A version string as the spec writes them: "3.0", "2.4".
VERSION = re.compile(r"^\d+\.\d+$")


def judge_spec_version(asgi: Probe, versions: Mapping[str, Any], *, sent: str, like: str) -> None:
    """``spec_version``, if present, is a str "N.N" (absent means "2.0"); records which."""
    __tracebackhide__ = True
    if "spec_version" not in versions:
        asgi.observe("spec_version absent (means 2.0)")
        return
    spec = versions["spec_version"]
    expect(
        isinstance(spec, str) and bool(VERSION.match(spec)),
        sent=sent,
        expected=f"spec_version a str like '{like}'",
        observed=repr(spec),
    )
    asgi.observe(f"spec_version {spec}")
