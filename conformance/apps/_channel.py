"""The app's end of the side channel: one JSON line per observation.

The test process listens on a Unix socket whose path reaches the server in the
``ASGI_CONFORMANCE_CHANNEL`` environment variable (or on TCP, ``tcp://HOST:PORT``,
for a probe app deployed where the suite did not start it: ``--asgi-url``).  Each server process (a
server may fork workers) opens its own connection on first use.  Observations
are small and written with one ``sendall``, so they cannot interleave; a missing
variable turns the probe into a plain app that reports nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import threading
from typing import Any


__all__ = ["ENV_CHANNEL", "emit", "wait_flag"]

ENV_CHANNEL = "ASGI_CONFORMANCE_CHANNEL"

_lock = threading.Lock()
_sock: socket.socket | None = None
_owner_pid = -1


def _tcp_address(value: str) -> tuple[str, int] | None:
    """``tcp://HOST:PORT`` (a suite that did not start this server, ``--asgi-url``), else None."""
    if not value.startswith("tcp://"):
        return None
    host, _, port = value.removeprefix("tcp://").rpartition(":")
    return host.strip("[]"), int(port)


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the test closed this connection (it never writes on it: any read is the end)."""
    try:
        # Not recv with MSG_DONTWAIT alone: a socket with a timeout waits for data first.
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _connect() -> socket.socket | None:
    global _sock, _owner_pid
    path = os.environ.get(ENV_CHANNEL)
    if not path:
        return None
    if _sock is not None and _owner_pid == os.getpid() and _peer_gone(_sock):
        # The suite that listened has ended; a deployed app (``--asgi-url``) outlives it,
        # and a write would vanish into the closed connection: connect to the new one.
        _sock.close()
        _sock = None
    if _sock is None or _owner_pid != os.getpid():
        address = _tcp_address(path)
        if address is not None:
            sock = socket.create_connection(address, timeout=5.0)
        else:
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
        except (OSError, ValueError):  # unreachable, or a malformed tcp:// value
            _sock = None


async def wait_flag(flag: str, timeout: float) -> bool:
    """Wait (without blocking the event loop) until the test sets ``flag``; False on timeout.

    Each wait has its own connection, so many requests can wait at once.
    """
    path = os.environ.get(ENV_CHANNEL)
    if not path:
        return False
    try:
        address = _tcp_address(path)
        if address is not None:
            reader, writer = await asyncio.open_connection(*address)
        else:
            reader, writer = await asyncio.open_unix_connection(path)
    except (OSError, ValueError):
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
