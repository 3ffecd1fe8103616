"""One hostile server program; the first argument says how it is hostile.

Run it through a command template, ``{app}`` last (the launcher passes the probe app
as an import string)::

    {python} /abs/path/tests/hostile/server.py KIND --port {port} [options] {app}

Kinds (what a broken server does, and what the harness must make of it):

``never-binds``
    prints that it started and sleeps: nothing ever listens on the port.
``no-answer``
    listens and accepts connections, reads the requests, never writes a byte.
``serve``
    a real server: uvicorn, run programmatically in a thread, serving ``{app}``.
    With ``--crash-after N`` it calls ``os._exit(7)`` on HTTP request N+1 (the
    launcher's readiness request is the first).
``garbage``
    answers every request (after the first ``--after`` ones) with bytes that are
    not HTTP.
``trickle``
    answers every request (after the first ``--after`` ones) with a valid response,
    written one byte a second.

The first ``--after`` requests of ``garbage`` and ``trickle`` get a short valid
response, so that ``--after 1`` lets the launcher's readiness request through and
the checks meet the misbehaviour.

Options that apply to every kind:

``--on-sigterm default|hang|ignore``
    ``hang`` blocks the main thread for an hour in the SIGTERM handler (the server
    thread goes on serving: a shutdown that never ends); ``ignore`` ignores SIGTERM
    and SIGINT.  Only SIGKILL stops either.
``--fork-escapees``
    before serving, forks three children that ignore SIGTERM and outlive the
    server: one stays in the process group, one calls ``os.setsid()`` to leave the
    group and session, and one is double-forked (orphaned at birth) and calls
    ``os.setsid()`` too.
``--pids FILE``
    appends ``ROLE PID`` lines: the server and every child it forks.
``--mark FILE``
    appends a line when the misbehaviour starts (a test waits for it).
``--quic-fd FD``
    an inherited UDP socket (an ``h3`` column's ``{quic_fd}``): ``no-answer`` never
    reads it, ``garbage`` answers every datagram with the garbage bytes; QUIC is
    never spoken.
``--token TOKEN``
    ignored: a unique string for the test to find every process of this server in
    ``/proc`` (forked children keep the command line).

Everything the program does is printed, unbuffered, so the server log tail (which
the harness attaches to errors and failures) says what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from types import FrameType
from typing import Any


__all__ = ["CRASH_STATUS", "GARBAGE", "KINDS", "main"]

KINDS = ("never-binds", "no-answer", "serve", "garbage", "trickle")
#: Not HTTP: a TLS record header, a NUL, invalid UTF-8, then a blank line.
GARBAGE = b"\x16\x03\x01\x00\xa5\x00GARBAGE\xff\xfe not http at all\r\n\r\n"
_VALID = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
#: Long enough to outlast any test; short enough that nothing lingers for ever if one fails.
_FOREVER = 600.0
CRASH_STATUS = 7
#: Sockets kept open (and never read) for the life of the process.
_HELD: list[Any] = []

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def say(kind: str, text: str) -> None:
    """One line of the log, in one write: the escapees print at the same instant, and with
    ``PYTHONUNBUFFERED`` ``print`` writes the text and its newline separately, so two
    processes' lines could merge into one (a self-test then read one child's sid as another's).
    """
    os.write(1, f"hostile[{kind}] (pid {os.getpid()}): {text}\n".encode())


def _append(path: str | None, line: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")


# -- processes that outlive the server -----------------------------------------------------


def _linger(role: str, pids: str | None, *, new_session: bool) -> None:
    """The body of an escaped child: deaf to SIGTERM, sleeps, never returns."""
    try:
        if new_session:
            os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _append(pids, f"{role} {os.getpid()}")
        say("escapee", f"{role}: pgid {os.getpgrp()}, sid {os.getsid(0)}; outliving the server")
        time.sleep(_FOREVER)
    finally:
        os._exit(0)


def fork_escapees(pids: str | None) -> None:
    """Three children that outlive the server (see the module docstring)."""
    if os.fork() == 0:
        _linger("in-group", pids, new_session=False)
    if os.fork() == 0:
        _linger("new-session", pids, new_session=True)
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            _linger("orphan", pids, new_session=True)
        os._exit(0)
    os.waitpid(middle, 0)


# -- signals -------------------------------------------------------------------------------


def apply_sigterm_policy(policy: str, kind: str, graceful: Callable[[], None] | None) -> None:
    if policy == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say(kind, "ignoring SIGTERM and SIGINT")
    elif policy == "hang":

        def hang(signum: int, frame: FrameType | None) -> None:
            say(kind, f"got signal {signum}; hanging in the handler instead of stopping")
            time.sleep(3600)

        signal.signal(signal.SIGTERM, hang)
    elif graceful is not None:

        def stop(signum: int, frame: FrameType | None) -> None:
            say(kind, f"got signal {signum}; shutting down")
            graceful()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


# -- the kinds -----------------------------------------------------------------------------


def never_binds(args: argparse.Namespace) -> int:
    say(args.kind, f"started; not listening on port {args.port} (nor anywhere)")
    while True:
        time.sleep(_FOREVER)


def crash_after(app: ASGIApp, after: int) -> ASGIApp:
    """``app``, except that HTTP request number ``after + 1`` kills the process."""
    count = 0

    async def crashing(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal count
        if scope.get("type") == "http":
            count += 1
            if count > after:
                say("serve", f"crashing with os._exit({CRASH_STATUS}) on HTTP request {count}")
                os._exit(CRASH_STATUS)
        await app(scope, receive, send)

    return crashing


def serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.importer import import_from_string

    app: ASGIApp = import_from_string(args.app)
    if args.crash_after is not None:
        app = crash_after(app, args.crash_after)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, lifespan="on", use_colors=False, log_level="info"
    )
    server = uvicorn.Server(config)
    # In a thread, uvicorn installs no signal handlers: the policy below is the only one.
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)

    def graceful() -> None:
        server.should_exit = True

    apply_sigterm_policy(args.on_sigterm, args.kind, graceful)
    thread.start()
    thread.join()
    if not server.started:
        say(args.kind, "uvicorn did not start")
        return 1
    say(args.kind, "stopped")
    return 0


async def _raw(args: argparse.Namespace) -> None:
    """``no-answer``, ``garbage`` and ``trickle``: asyncio streams, no HTTP library."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            if args.kind == "no-answer":
                say(args.kind, "accepted a connection; never answering")
                while await reader.read(65536):
                    pass
                return
            if not args.at_once:
                await reader.readuntil(b"\r\n\r\n")
            count += 1
            number = count
            if number <= args.after:
                say(args.kind, f"request {number}: a valid response")
                writer.write(_VALID)
            elif args.kind == "garbage":
                say(args.kind, f"request {number}: answering with {len(GARBAGE)} bytes of garbage")
                _append(args.mark, f"garbage {number}")
                writer.write(GARBAGE)
            else:
                say(args.kind, f"request {number}: trickling the response, one byte a second")
                _append(args.mark, f"trickle {number}")
                for index in range(len(_VALID)):
                    writer.write(_VALID[index : index + 1])
                    await writer.drain()
                    await asyncio.sleep(1.0)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, args.host, args.port)
    say(args.kind, f"listening on {args.host}:{args.port}")
    if args.quic_fd is not None:
        await _udp(args)
    async with server:
        await server.serve_forever()


class _GarbageDatagrams(asyncio.DatagramProtocol):
    """Answers every datagram with the garbage bytes: not QUIC, not anything."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        say(self.kind, f"a datagram of {len(data)} bytes; answering with garbage")
        if self.transport is not None:
            self.transport.sendto(GARBAGE, addr)


async def _udp(args: argparse.Namespace) -> None:
    """The inherited UDP socket of an h3 column: kept open, and never read or garbage."""
    udp = socket.socket(fileno=args.quic_fd)
    if args.kind == "no-answer":
        _HELD.append(udp)  # open until the process ends: datagrams pile up, unanswered
        say(args.kind, f"holding UDP {udp.getsockname()}; never reading it")
        return
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _GarbageDatagrams(args.kind), sock=udp)
    say(args.kind, f"answering datagrams on UDP {udp.getsockname()} with garbage")


def raw(args: argparse.Namespace) -> int:
    apply_sigterm_policy(args.on_sigterm, args.kind, None)
    asyncio.run(_raw(args))
    return 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A hostile server for the harness' self-tests.")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("app", help="the ASGI app as module:attribute ({app})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--after", type=int, default=0, help="valid answers first")
    parser.add_argument("--tls-cert", help="ignored: a hostile server never speaks TLS")
    parser.add_argument(
        "--at-once",
        action="store_true",
        help="answer on connecting (before a TLS hello, a preface)",
    )
    parser.add_argument("--quic-fd", type=int, default=None, help="an inherited UDP socket")
    parser.add_argument("--crash-after", type=int, default=None, help="serve: crash after N")
    parser.add_argument("--on-sigterm", choices=("default", "hang", "ignore"), default="default")
    parser.add_argument("--fork-escapees", action="store_true")
    parser.add_argument("--pids", default=None)
    parser.add_argument("--mark", default=None)
    parser.add_argument("--token", default="")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    _append(args.pids, f"server {os.getpid()}")
    if args.fork_escapees:
        fork_escapees(args.pids)
    say(args.kind, f"pgid {os.getpgrp()}, sid {os.getsid(0)}")
    if args.kind == "never-binds":
        return never_binds(args)
    if args.kind == "serve":
        return serve(args)
    return raw(args)


if __name__ == "__main__":
    sys.exit(main())
