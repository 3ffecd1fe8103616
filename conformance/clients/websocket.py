"""WebSocket over a raw socket, framed by wsproto, for checks that need exact frames.

A normal client library hides what the conformance checks are about: it answers
pings, reassembles fragments, refuses a handshake it dislikes and closes cleanly.
:class:`RawWebSocket` writes the upgrade request and every frame through wsproto
(RFC 6455, never a hand-written frame codec) over a plain anyio socket, so a check
can send a fragmented message, a ping between fragments, a close frame without a
code, or drop the TCP connection without any close frame at all.  It reads the
handshake answer whatever it is: a ``101`` (with the response's fields), or a
refusal with its status, fields and body (wsproto's ``RejectConnection`` and
``RejectData``), which is how a check sees a ``403`` or a denial response.

Every step is bounded by a timeout the caller gives (suite time units, scaled),
and everything sent and received is kept in :attr:`RawWebSocket.transcript`,
one line per event, as wire evidence for a failure report.

:func:`normal_client_roundtrip` is the thin helper over the ``websockets``
library: what a real-world client negotiates by default (permessage-deflate
offered) and whether a message comes back exact through it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from conformance.clients import _tcp
from conformance.clients._base import ClientError, ServerTimeout


__all__ = [
    "Closed",
    "Handshake",
    "RawWebSocket",
    "Received",
    "normal_client_roundtrip",
]

_READ_SIZE = 65536
_KEEP = 8192
#: How many idle bounds one message may take in all while bytes keep arriving.
_TRICKLE_CEILING = 10
Headers = list[tuple[bytes, bytes]]


@dataclass
class Handshake:
    """The server's answer to the upgrade request: a 101, or a refusal with its body."""

    status: int
    headers: Headers
    #: The refusal's body (empty for a 101).
    body: bytes = b""
    #: The subprotocol the 101 selected (None when the response names none).
    subprotocol: str | None = None
    #: The extensions the 101 accepted, by name.
    extensions: list[str] = field(default_factory=list)
    #: Whether a refusal's body ended before the connection did (a complete response).
    complete: bool = True

    @property
    def accepted(self) -> bool:
        return self.status == 101

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass(frozen=True)
class Received:
    """One thing read from the server: a whole message, a control frame, or the end."""

    #: ``text``, ``bytes``, ``ping``, ``pong``, ``close`` or ``eof`` (TCP closed, no close frame).
    kind: str
    data: str | bytes = b""
    #: The close frame's code and reason (``kind == "close"``).
    code: int | None = None
    reason: str = ""
    #: How many frames the message came in.
    frames: int = 1


@dataclass(frozen=True)
class Closed:
    """How the connection ended, as the client saw it."""

    #: The close frame's code, or None when the TCP connection ended without one.
    code: int | None
    reason: str
    #: Data messages read before the end.
    messages: tuple[Received, ...] = ()

    def describe(self) -> str:
        if self.code is None:
            return "the TCP connection closed without a close frame"
        if self.code == CloseReason.NO_STATUS_RCVD:
            return "a close frame without a status code"
        return f"a close frame with code {int(self.code)} and reason {self.reason!r}"


def _describe(data: str | bytes, limit: int = 60) -> str:
    text = repr(data) if len(data) <= limit else f"<{type(data).__name__} of {len(data)}>"
    return text


class RawWebSocket:
    """One TCP connection speaking WebSocket as the check dictates."""

    def __init__(self, stream: anyio.abc.ByteStream, host: str, port: int, timeout: float) -> None:
        self._stream = stream
        self._host = host
        self._port = port
        self._timeout = timeout
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: list[Event] = []
        self._eof = False
        #: The upgrade request's bytes as written (for a reproducer).
        self.handshake_request = b""
        self._parts: list[str | bytes] = []
        self._frames = 0
        self.transcript: list[str] = []
        #: The first bytes the server sent (up to 8 KiB), as evidence.
        self.received = bytearray()
        self.local_address: tuple[str, int] = stream.extra(anyio.abc.SocketAttribute.local_address)  # type: ignore[assignment]
        #: The close frame the server sent, once read.
        self.close_received: CloseConnection | None = None

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float, tls: ssl.SSLContext | None = None
    ) -> RawWebSocket:
        """A TCP connection (TLS with ``tls``: ``wss``), nothing sent yet."""
        try:
            stream = await _tcp.connect(host, port, timeout=timeout, tls=tls)
        except TimeoutError:
            raise ServerTimeout(
                f"no TCP connection to {host}:{port} within {timeout:.1f}s"
            ) from None
        except OSError as exc:
            raise ClientError(f"could not connect to {host}:{port}: {exc}") from None
        return cls(stream, host, port, timeout)

    async def __aenter__(self) -> RawWebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.abort()

    # -- the handshake ------------------------------------------------------------------------

    async def send_handshake(
        self,
        *,
        target: str = "/",
        headers: Headers | None = None,
        subprotocols: list[str] | None = None,
        deflate: bool = False,
        then: bytes = b"",
    ) -> None:
        """Write the upgrade request (and ``then``, bytes pipelined right after it)."""
        extensions: list[Extension] = [PerMessageDeflate()] if deflate else []
        request = Request(
            host="localhost",
            target=target,
            extra_headers=list(headers or []),
            subprotocols=list(subprotocols or []),
            extensions=extensions,
        )
        data = self._ws.send(request)
        self.handshake_request = data + then
        self.transcript.append(f"> GET {target} upgrade, subprotocols {subprotocols or []}")
        await self._write(data + then)

    async def read_handshake(self, timeout: float | None = None) -> Handshake:
        """The server's answer: a 101, or a refusal read to its end (or the bound)."""
        bound = self._timeout if timeout is None else timeout
        event = await self._next_event(bound, what="the answer to the upgrade request")
        if isinstance(event, AcceptConnection):
            headers = [(bytes(k), bytes(v)) for k, v in event.extra_headers]
            names = [_extension_name(e) for e in event.extensions]
            self.transcript.append(f"< 101 subprotocol {event.subprotocol!r} extensions {names}")
            return Handshake(101, headers, subprotocol=event.subprotocol, extensions=names)
        if isinstance(event, RejectConnection):
            headers = [(bytes(k), bytes(v)) for k, v in event.headers]
            body, complete = b"", not event.has_body
            while not complete:
                try:
                    data = await self._next_event(bound, what="the refusal's body")
                except ClientError:
                    break
                if isinstance(data, RejectData):
                    body += data.data
                    complete = data.body_finished
            self.transcript.append(f"< {event.status_code} refusal, body {_describe(body)}")
            return Handshake(event.status_code, headers, body=body, complete=complete)
        raise ClientError(f"unexpected answer to the upgrade request: {event!r}")

    async def handshake(self, timeout: float | None = None, **request: Any) -> Handshake:
        await self.send_handshake(**request)
        return await self.read_handshake(timeout)

    # -- sending --------------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        await self._send_event(TextMessage(data=text), f"> text {_describe(text)}")

    async def send_bytes(self, data: bytes) -> None:
        await self._send_event(BytesMessage(data=data), f"> bytes {_describe(data)}")

    async def send_fragments(
        self, parts: Sequence[str | bytes], *, ping_between: bytes | None = None
    ) -> None:
        """One message in ``len(parts)`` frames (continuation frames), optionally with a ping
        after the first fragment (RFC 6455 5.4: control frames may be injected)."""
        out = bytearray()
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            message: Message[Any] = (
                TextMessage(data=part, message_finished=last)
                if isinstance(part, str)
                else BytesMessage(data=bytes(part), message_finished=last)
            )
            out += self._ws.send(message)
            if index == 0 and ping_between is not None:
                out += self._ws.send(Ping(payload=ping_between))
        self.transcript.append(
            f"> one message in {len(parts)} fragments"
            + (f", ping {ping_between!r} after the first" if ping_between is not None else "")
        )
        await self._write(bytes(out))

    async def ping(self, payload: bytes) -> None:
        await self._send_event(Ping(payload=payload), f"> ping {payload!r}")

    async def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Send a close frame (``code=None``: an empty close frame, RFC 6455 "no status")."""
        # wsproto writes an empty close frame only for the NO_STATUS_RCVD member itself.
        status = CloseReason.NO_STATUS_RCVD if code is None else code
        event = CloseConnection(code=status, reason=reason or None)
        await self._send_event(event, f"> close {code} {reason!r}")

    async def abort(self, *, reset: bool = False) -> None:
        """End the TCP connection without a close frame (``reset``: an RST, SO_LINGER 0)."""
        if reset:
            raw: socket.socket | None = self._stream.extra(
                anyio.abc.SocketAttribute.raw_socket, None
            )
            if raw is not None:
                with contextlib.suppress(OSError):
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError, anyio.BrokenResourceError):
            await self._stream.aclose()

    # -- receiving ------------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Received:
        """The next whole message, ping, pong, close frame, or the end of the connection.

        Pings are answered (a client does); a close frame is answered, as RFC 6455 asks.
        The bound is on silence, not on the whole message: it restarts whenever bytes
        arrive, so a 4 MiB message on a busy machine is not cut off while it is still
        flowing, and a server that stops sending is still caught within the bound.
        A server that trickles bytes for ever is still stopped, at
        :data:`_TRICKLE_CEILING` times the bound.
        """
        bound = self._timeout if timeout is None else timeout
        with anyio.move_on_after(bound * _TRICKLE_CEILING) as ceiling:
            while True:
                try:
                    event = await self._next_event(bound, what="a message", idle=True)
                except _EndOfStream:
                    return Received("eof")
                except ServerTimeout:
                    raise ServerTimeout(f"nothing from the server within {bound:.1f}s") from None
                found = await self._handle(event)
                if found is not None:
                    return found
        assert ceiling.cancelled_caught
        raise ServerTimeout(
            f"the server kept sending for {bound * _TRICKLE_CEILING:.1f}s without completing a message"
        )

    async def wait_closed(self, timeout: float | None = None, *, linger: float = 0.0) -> Closed:
        """Read until the server's close frame or the end of the connection.

        After the closing handshake the server should end the TCP connection (RFC 6455
        7.1.1); the client waits ``linger`` for that, then ends it itself, as clients do:
        some servers finish ``websocket.close`` only once the socket is gone.
        """
        messages: list[Received] = []
        bound = self._timeout if timeout is None else timeout
        deadline = anyio.current_time() + bound
        while True:
            got = await self.receive(max(0.0, deadline - anyio.current_time()))
            if got.kind == "close":
                if linger > 0:
                    with anyio.move_on_after(linger), contextlib.suppress(ClientError):
                        while (await self.receive(linger)).kind != "eof":
                            pass
                await self.abort()
                return Closed(got.code, got.reason, tuple(messages))
            if got.kind == "eof":
                return Closed(None, "", tuple(messages))
            if got.kind in ("text", "bytes"):
                messages.append(got)

    async def _handle(self, event: Event) -> Received | None:
        if isinstance(event, (TextMessage, BytesMessage)):
            data = event.data
            self._parts.append(data if isinstance(data, str) else bytes(data))
            self._frames += 1
            if not event.message_finished:
                return None
            frames, self._frames = self._frames, 0
            parts, self._parts = self._parts, []
            if isinstance(event, TextMessage):
                text = "".join(p for p in parts if isinstance(p, str))
                self.transcript.append(f"< text {_describe(text)}")
                return Received("text", text, frames=frames)
            whole = b"".join(p for p in parts if isinstance(p, bytes))
            self.transcript.append(f"< bytes {_describe(whole)}")
            return Received("bytes", whole, frames=frames)
        if isinstance(event, Ping):
            self.transcript.append(f"< ping {bytes(event.payload)!r}")
            with contextlib.suppress(ClientError):
                await self._write(self._ws.send(event.response()))
            return Received("ping", bytes(event.payload))
        if isinstance(event, Pong):
            self.transcript.append(f"< pong {bytes(event.payload)!r}")
            return Received("pong", bytes(event.payload))
        if isinstance(event, CloseConnection) and event.code == CloseReason.ABNORMAL_CLOSURE:
            # wsproto's stand-in for a connection that ended without a close frame (RFC 6455
            # 7.4.1: 1006 is never sent on the wire).
            self.transcript.append("< end of the connection (no close frame)")
            return Received("eof")
        if isinstance(event, CloseConnection):
            self.close_received = event
            self.transcript.append(f"< close {event.code} {event.reason!r}")
            with contextlib.suppress(ClientError, LocalProtocolError):
                await self._write(self._ws.send(event.response()))
            return Received("close", code=event.code, reason=event.reason or "")
        return None

    @property
    def ended(self) -> bool:
        """Whether the server has ended the connection (end of stream seen)."""
        return self._eof

    async def drain(self, timeout: float) -> bytes:
        """Read raw bytes until the server ends the connection or ``timeout`` passes (they join
        :attr:`received`, unparsed): what a server sends after a refusal, for the record."""
        with anyio.move_on_after(timeout):
            while not self._eof:
                try:
                    data = await self._stream.receive(_READ_SIZE)
                except (anyio.EndOfStream, OSError, anyio.BrokenResourceError):
                    data = b""
                except anyio.ClosedResourceError:
                    data = b""
                if not data:
                    self._eof = True
                elif len(self.received) < _KEEP:
                    self.received += data[: _KEEP - len(self.received)]
        return bytes(self.received)

    # -- the socket -------------------------------------------------------------------------------

    async def _send_event(self, event: Event, note: str) -> None:
        try:
            data = self._ws.send(event)
        except LocalProtocolError as exc:
            raise ClientError(f"cannot send {note[2:]} now: {exc}") from None
        self.transcript.append(note)
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await self._stream.send(data)
        except TimeoutError:
            raise ServerTimeout(f"the server took none of {len(data)} bytes") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ClientError(f"the connection is gone: {exc!r}") from None

    async def _next_event(self, timeout: float | None, *, what: str, idle: bool = False) -> Event:
        """The next wsproto event, reading from the socket as needed; ``eof`` as a close.

        ``timeout`` bounds the whole wait, or with ``idle`` each read (the bound restarts
        whenever bytes arrive).
        """
        limit = timeout if timeout is not None else float("inf")
        with anyio.move_on_after(limit) as scope:
            while not self._events:
                if self._eof:
                    self.transcript.append("< end of the connection")
                    raise _EndOfStream(f"the connection ended before {what}")
                if idle:
                    scope.deadline = anyio.current_time() + limit
                try:
                    data = await self._stream.receive(_READ_SIZE)
                except (anyio.EndOfStream, OSError, anyio.BrokenResourceError):
                    data = b""
                except anyio.ClosedResourceError:
                    data = b""
                if not data:
                    self._eof = True
                elif len(self.received) < _KEEP:
                    self.received += data[: _KEEP - len(self.received)]
                try:
                    self._ws.receive_data(data or None)
                    self._events.extend(self._ws.events())
                except RemoteProtocolError as exc:
                    raise ClientError(
                        f"the server broke the WebSocket protocol: {exc}; "
                        f"it sent {bytes(self.received[:400])!r}"
                    ) from None
            return self._events.pop(0)
        assert scope.cancelled_caught
        raise ServerTimeout(f"{what} did not come within {timeout or 0:.1f}s")


class _EndOfStream(ClientError):
    """The TCP connection ended (read as :class:`Received` ``eof`` by :meth:`receive`)."""


def _extension_name(extension: Any) -> str:
    return str(getattr(extension, "name", extension))


async def normal_client_roundtrip(
    host: str,
    port: int,
    *,
    headers: Headers,
    message: str,
    timeout: float,
) -> tuple[str | None, str | bytes]:
    """Connect with the ``websockets`` library as an application would (permessage-deflate
    offered, its defaults), send ``message`` and read one message back.

    Returns the ``Sec-WebSocket-Extensions`` the server answered and the message received.
    """
    from websockets.asyncio.client import connect

    with anyio.fail_after(timeout):
        async with connect(
            f"ws://{host}:{port}/",
            additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            open_timeout=timeout,
            close_timeout=timeout,
            max_size=None,
        ) as websocket:
            response = websocket.response
            negotiated = response.headers.get("Sec-WebSocket-Extensions") if response else None
            await websocket.send(message)
            back = await websocket.recv()
            return negotiated, back
