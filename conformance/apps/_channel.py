"""The app's end of the side channel: one JSON line per observation.

The test process listens on a Unix socket whose path reaches the server in the
``ASGI_CONFORMANCE_CHANNEL`` environment variable.  Each server process (a
server may fork workers) opens its own connection on first use.  Observations
are small and written with one ``sendall``, so they cannot interleave; a missing
variable turns the probe into a plain app that reports nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from typing import Any


__all__ = ["ENV_CHANNEL", "emit", "wait_flag"]

ENV_CHANNEL = "ASGI_CONFORMANCE_CHANNEL"

_lock = threading.Lock()
_sock: socket.socket | None = None
_owner_pid = -1


def _connect() -> socket.socket | None:
    global _sock, _owner_pid
    path = os.environ.get(ENV_CHANNEL)
    if not path:
        return None
    if _sock is None or _owner_pid != os.getpid():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5.0)
        sock.connect(path)
        _sock, _owner_pid = sock, os.getpid()
    return _sock


def emit(record: dict[str, Any]) -> None:
    """Send one observation to the test.  Never raises into the probe app."""
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
    global _sock
    with _lock:
        try:
            sock = _connect()
            if sock is not None:
                sock.sendall(line)
        except OSError:
            _sock = None


async def wait_flag(flag: str, timeout: float) -> bool:
    """Wait (without blocking the event loop) until the test sets ``flag``; False on timeout.

    Each wait has its own connection, so many requests can wait at once.
    """
    path = os.environ.get(ENV_CHANNEL)
    if not path:
        return False
    try:
        reader, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    try:
        request = {"op": "wait", "flag": flag, "timeout": timeout}
        writer.write((json.dumps(request) + "\n").encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout + 5.0)
        return line.strip() == b"set"
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
