"""What a failing cell shows as evidence: its own exchanges and its own log lines.

A server's log interleaves every check that ran at the same time (checks that run
ahead, scenario batches).  The probe app's deliberate errors name the request they
belong to (``(rid R)``, conformance/apps/_script.py), so a traceback of another
check's deliberate error is left out of this check's evidence; and the probe's
private request headers (its script, base64; its request id) are elided from the
wire, as in the reproducer: they are how the suite drives the app, not what the
server was asked.
"""

from __future__ import annotations

import re
from collections.abc import Collection


__all__ = ["PROBE_HEADER_LINE", "elide_probe_fields", "elide_probe_headers", "own_log"]

#: A probe header line on the HTTP/1.1 wire (its values never hold CR or LF).
PROBE_HEADER_LINE = re.compile(rb"(?im)^x-probe[a-z0-9-]*:[^\r\n]*\r\n")
#: The request id a deliberate error of the probe app names.
_RID = re.compile(r"\(rid ([0-9]+-[0-9]+)\)")
#: Lines that continue a Python traceback rather than start a new log entry.
_CONTINUES = re.compile(
    r"^(\s|Traceback \(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause|\+|\|)"
)


#: A probe script's value in a frame transcript (HTTP/2, HTTP/3: ``name: value`` fields).
_SCRIPT_FIELD = re.compile(r"(?i)\b(x-probe-script: )[A-Za-z0-9+/=_-]+…?")


def elide_probe_fields(text: str) -> str:
    """``text`` (a detail, a frame transcript) with the probe script's base64 elided: it
    is how the suite drives the app, hundreds of characters the server was not asked about."""
    return _SCRIPT_FIELD.sub(r"\1[elided]", text)


def elide_probe_headers(data: bytes) -> bytes:
    """``data`` (request bytes) without the probe's private header lines."""
    elided, count = PROBE_HEADER_LINE.subn(b"", data)
    return (
        elided
        if not count
        else elided.replace(b"\r\n\r\n", b"\r\n[probe headers elided]\r\n\r\n", 1)
    )


def _entries(text: str) -> list[list[str]]:
    """The log cut into entries: a line, with the traceback that follows it, if any."""
    entries: list[list[str]] = []
    in_traceback = False
    for line in text.splitlines():
        starts_traceback = line.startswith("Traceback (most recent call last):")
        if entries and (starts_traceback or (in_traceback and _CONTINUES.match(line))):
            entries[-1].append(line)
            in_traceback = True
            continue
        if entries and in_traceback and line and not line[0].isspace():
            # The exception's own line ends the traceback, and belongs to it.
            entries[-1].append(line)
            in_traceback = False
            continue
        entries.append([line])
        in_traceback = False
    return entries


def own_log(text: str, rids: Collection[str]) -> str:
    """``text`` without the entries that name only requests of other checks."""
    kept: list[str] = []
    dropped = 0
    for entry in _entries(text):
        named = set(_RID.findall("\n".join(entry)))
        if named and not named & set(rids):
            dropped += 1
            continue
        kept.extend(entry)
    if dropped:
        kept.append(f"[{dropped} log entr{'y' if dropped == 1 else 'ies'} of other checks elided]")
    return "\n".join(kept)
