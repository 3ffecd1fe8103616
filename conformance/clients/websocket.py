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

Over HTTP/2 and HTTP/3 the same frames travel on one stream opened by extended
CONNECT (RFC 8441, RFC 9220): :meth:`RawWebSocket.over` takes a connection of
either client, sends the CONNECT with ``:protocol websocket`` and reads its answer
(a 2xx opens the tunnel; anything else is a refusal with its body), after which
wsproto's frame layer (:class:`wsproto.connection.Connection`) runs over the
stream's DATA as it runs over the TCP bytes of an upgrade.  Ending the stream
(END_STREAM) stands for closing the TCP connection, RST_STREAM for resetting it.

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
from typing import Any, Protocol

import anyio
import anyio.abc
import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as FrameConnection
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
from wsproto.handshake import client_extensions_handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, split_comma_header

from conformance.clients import _tcp
from conformance.clients._base import ClientError, ServerTimeout
from conformance.clients._base import Request as HTTPRequest
from conformance.clients._multiplexed import MultiplexedStream, Tunnelling


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
    #: Whether the handshake was an extended CONNECT on a stream (RFC 8441, RFC 9220),
    #: where a 2xx answer, not a 101, opens the WebSocket.
    tunnel: bool = False

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300 if self.tunnel else self.status == 101

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


class _Pipe(Protocol):
    """What the frames travel over: a TCP (or TLS) connection, or one stream of a connection."""

    local_address: tuple[str, int]

    async def send(self, data: bytes) -> None: ...

    async def receive(self, timeout: float) -> bytes:
        """The next bytes (b"" at the end); TimeoutError when none come within ``timeout``."""
        ...

    async def end(self, *, reset: bool) -> None:
        """End the client's side without a close frame: FIN or RST, END_STREAM or RST_STREAM."""
        ...

    async def aclose(self) -> None: ...

    def describe_end(self, *, reset: bool) -> str:
        """What :meth:`end` does, for a check's "sent"."""
        ...


class _SocketPipe:
    """The TCP (TLS) connection of an HTTP/1.1 upgrade."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self.local_address: tuple[str, int] = stream.extra(anyio.abc.SocketAttribute.local_address)  # type: ignore[assignment]

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    async def receive(self, timeout: float) -> bytes:
        with anyio.fail_after(timeout):
            try:
                return await self._stream.receive(_READ_SIZE)
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                return b""

    async def end(self, *, reset: bool) -> None:
        if reset:
            raw: socket.socket | None = self._stream.extra(
                anyio.abc.SocketAttribute.raw_socket, None
            )
            if raw is not None:
                with contextlib.suppress(OSError):
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError, anyio.BrokenResourceError):
            await self._stream.aclose()

    async def aclose(self) -> None:
        await self.end(reset=False)

    def describe_end(self, *, reset: bool) -> str:
        return "a TCP reset (RST)" if reset else "a TCP close (FIN)"


class _StreamPipe:
    """One HTTP/2 or HTTP/3 stream opened by extended CONNECT: its DATA carry the frames."""

    def __init__(self, connection: Tunnelling, stream: MultiplexedStream[Any, Any]) -> None:
        self.connection = connection
        self.stream = stream
        self.local_address: tuple[str, int] = connection.local_address
        self._seen = 0
        self._ended = False
        self._closed = False
        #: Why the stream ended, as the client read it (a reset, the connection's end).
        self.ending = ""

    async def send(self, data: bytes) -> None:
        await self.stream.send_body(data)

    async def receive(self, timeout: float) -> bytes:
        if self._closed:  # the client closed the connection: nothing more comes
            return b""
        try:
            await self.stream.read_bytes(self._seen + 1, timeout=timeout)
        except ServerTimeout:
            raise TimeoutError from None
        except (
            ClientError
        ) as exc:  # the stream ended (END_STREAM), was reset, or the connection went
            self.ending = str(exc)
            return b""
        data: bytes = self.stream.body_since(self._seen)
        self._seen += len(data)
        return data

    async def end(self, *, reset: bool) -> None:
        """RST_STREAM (HTTP/3: RESET_STREAM and STOP_SENDING) with ``reset``; else the client
        goes away: its whole connection closes, as a dropped TCP connection ends an upgrade.

        Not END_STREAM alone: that half-closes the stream, and the server may still
        send (RFC 8441 section 5 maps it to a TCP half-close), so it is no lost connection.
        """
        if self._ended:
            return
        self._ended = True
        if reset:
            # The stream may be gone already (the server ended or reset it): nothing to reset.
            with contextlib.suppress(ClientError):
                await self.stream.reset()
        else:
            await self.aclose()

    async def aclose(self) -> None:
        self._ended = True
        if not self._closed:
            self._closed = True
            await self.connection.aclose()

    def describe_end(self, *, reset: bool) -> str:
        if reset:
            return f"a reset of the WebSocket's {self.connection.protocol} stream"
        return f"the client's {self.connection.protocol} connection closed"


class RawWebSocket:
    """One WebSocket connection speaking exactly as the check dictates."""

    def __init__(
        self, pipe: _Pipe | None, timeout: float, *, connection: Tunnelling | None = None
    ) -> None:
        self._pipe = pipe
        #: The HTTP/2 or HTTP/3 connection an extended CONNECT goes over (None: an upgrade).
        self._connection = connection
        self._timeout = timeout
        self._ws: WSConnection | FrameConnection | None = (
            WSConnection(ConnectionType.CLIENT) if connection is None else None
        )
        self._offered: list[Extension] = []
        self._events: list[Event] = []
        self._eof = False
        #: The upgrade request's bytes as written (for a reproducer); over a stream, the
        #: CONNECT's fields, one per line.
        self.handshake_request = b""
        self._parts: list[str | bytes] = []
        self._frames = 0
        self.transcript: list[str] = []
        #: The first bytes the server sent (up to 8 KiB), as evidence.
        self.received = bytearray()
        carrier = pipe if pipe is not None else connection
        if carrier is None:
            raise TypeError("a RawWebSocket goes over a TCP connection or an HTTP/2 (3) connection")
        self.local_address: tuple[str, int] = carrier.local_address
        #: The close frame the server sent, once read.
        self.close_received: CloseConnection | None = None

    @property
    def tunnel(self) -> bool:
        """Whether this WebSocket is a stream opened by extended CONNECT (RFC 8441, RFC 9220)."""
        return self._connection is not None

    @property
    def handshake_fields(self) -> frozenset[bytes]:
        """The fields the handshake itself adds to the request (RFC 6455 4.1, RFC 8441 4)."""
        if self.tunnel:
            return frozenset({b"sec-websocket-version"})
        return frozenset(
            {b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-version"}
        )

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
        return cls(_SocketPipe(stream), timeout)

    @classmethod
    def over(cls, connection: Tunnelling, *, timeout: float) -> RawWebSocket:
        """A WebSocket to open by extended CONNECT on a new stream of ``connection`` (an
        HTTP/2 or HTTP/3 connection whose SETTINGS offer it); nothing sent yet."""
        return cls(None, timeout, connection=connection)

    async def __aenter__(self) -> RawWebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

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
        """Write the upgrade request, or open the stream by extended CONNECT (and ``then``,
        bytes sent right after it, before any answer)."""
        self._offered = [PerMessageDeflate()] if deflate else []
        if self._connection is not None:
            await self._send_connect(
                self._connection, target, list(headers or []), list(subprotocols or []), then
            )
            return
        assert isinstance(self._ws, WSConnection)
        request = Request(
            host="localhost",
            target=target,
            extra_headers=list(headers or []),
            subprotocols=list(subprotocols or []),
            extensions=list(self._offered),
        )
        data = self._ws.send(request)
        self.handshake_request = data + then
        self.transcript.append(f"> GET {target} upgrade, subprotocols {subprotocols or []}")
        await self._write(data + then)

    async def _send_connect(
        self,
        connection: Tunnelling,
        target: str,
        headers: Headers,
        subprotocols: list[str],
        then: bytes,
    ) -> None:
        """The extended CONNECT of RFC 8441 section 4 (RFC 9220 section 3 for HTTP/3).

        Field names go lower-cased, as HTTP/2 and HTTP/3 require (RFC 9113 8.2.1).
        """
        fields = [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", connection.scheme),
            (b":path", target.encode()),
            (b":authority", b"localhost"),
            (b"sec-websocket-version", b"13"),
        ]
        if subprotocols:
            fields.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
        offers = [_offer(extension) for extension in self._offered]
        if any(offers):
            fields.append((b"sec-websocket-extensions", ", ".join(filter(None, offers)).encode()))
        fields += [(name.lower(), value) for name, value in headers]
        # One field per line, as HTTP/1.1 writes them: the reproducer reads both the same way.
        self.handshake_request = b"HEADERS (extended CONNECT)\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in fields
        )
        self.transcript.append(
            f"> CONNECT {target} :protocol websocket, subprotocols {subprotocols}"
        )
        try:
            stream = await connection.start(
                HTTPRequest(method=b"CONNECT", target=target.encode()), end=False, raw=fields
            )
        except ClientError as exc:
            raise ClientError(f"could not open the CONNECT stream: {exc}") from None
        self._pipe = _StreamPipe(connection, stream)
        if then:
            await self._write(then)

    async def read_handshake(self, timeout: float | None = None) -> Handshake:
        """The server's answer: a 101 (a 2xx over a stream), or a refusal read to its end (or the bound)."""
        bound = self._timeout if timeout is None else timeout
        if isinstance(self._pipe, _StreamPipe):
            return await self._read_connect_answer(self._pipe, bound)
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

    async def _read_connect_answer(self, pipe: _StreamPipe, bound: float) -> Handshake:
        """The head of the CONNECT stream: a 2xx opens the tunnel, anything else is a refusal."""
        try:
            status = await pipe.stream.read_head(timeout=bound)
        except ServerTimeout:
            raise ServerTimeout(
                f"the answer to the extended CONNECT did not come within {bound:.1f}s"
            ) from None
        answer = Handshake(status, pipe.stream.head_fields(), tunnel=True)
        if answer.accepted:
            answered = b",".join(answer.header_values(b"sec-websocket-extensions"))
            try:
                chosen = client_extensions_handshake(
                    [e for e in split_comma_header(answered) if e], list(self._offered)
                )
            except (RemoteProtocolError, UnicodeDecodeError) as exc:
                raise ClientError(f"the server accepted an extension not offered: {exc}") from None
            self._ws = FrameConnection(ConnectionType.CLIENT, extensions=chosen)
            protocol = answer.header(b"sec-websocket-protocol")
            answer.subprotocol = protocol.decode("latin-1") if protocol is not None else None
            answer.extensions = [_extension_name(e) for e in chosen]
            self.transcript.append(
                f"< {status} subprotocol {answer.subprotocol!r} extensions {answer.extensions}"
            )
            return answer
        try:
            answer.body = (await pipe.stream.read_response(timeout=bound)).body
        except ClientError:
            answer.body, answer.complete = pipe.stream.received_body(), False
        self._eof = answer.complete
        self.transcript.append(f"< {status} refusal, body {_describe(answer.body)}")
        return answer

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
            out += self._codec().send(message)
            if index == 0 and ping_between is not None:
                out += self._codec().send(Ping(payload=ping_between))
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
        """End the connection without a close frame (``reset``: an RST, SO_LINGER 0).

        Over a stream: the connection closes (``reset``: the stream is reset, the
        connection stays).
        """
        if self._pipe is not None:
            await self._pipe.end(reset=reset)

    def describe_drop(self, *, reset: bool = False) -> str:
        """What :meth:`abort` does on this connection, as a check's "sent" says it."""
        if self._pipe is None:
            return "a TCP reset (RST)" if reset else "a TCP close (FIN)"
        return self._pipe.describe_end(reset=reset)

    async def aclose(self) -> None:
        """Release everything: the TCP connection, or the stream and its connection."""
        if self._pipe is not None:
            await self._pipe.aclose()
        elif self._connection is not None:
            await self._connection.aclose()

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
                await self._write(self._codec().send(event.response()))
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
                await self._write(self._codec().send(event.response()))
            return Received("close", code=event.code, reason=event.reason or "")
        return None

    @property
    def ended(self) -> bool:
        """Whether the server has ended the connection (end of stream seen)."""
        return self._eof

    async def drain(self, timeout: float) -> bytes:
        """Read raw bytes until the server ends the connection (the stream) or ``timeout``
        passes (they join :attr:`received`, unparsed): what a server sends after a
        refusal, for the record."""
        deadline = anyio.current_time() + timeout
        while not self._eof and self._pipe is not None:
            left = deadline - anyio.current_time()
            if left <= 0:
                break
            try:
                data = await self._pipe.receive(left)
            except TimeoutError:
                break
            self._keep(data)
        return bytes(self.received)

    async def answers(self, timeout: float) -> list[int]:
        """Every HTTP status the server answered the handshake with until it ended the
        connection (the stream) or ``timeout`` passed: informational ones, then the final one.

        Over HTTP/1.1 the bytes are parsed by h11 (one response after another, up to a
        101, after which frames follow); over a stream, the stream's own heads.
        """
        raw = await self.drain(timeout)
        if isinstance(self._pipe, _StreamPipe):
            stream = self._pipe.stream
            final = stream.head_status()
            return [status for status, _ in stream.informational()] + ([final] if final else [])
        return _statuses(raw)

    def _keep(self, data: bytes) -> None:
        if not data:
            self._eof = True
        elif len(self.received) < _KEEP:
            self.received += data[: _KEEP - len(self.received)]

    # -- the socket -------------------------------------------------------------------------------

    async def _send_event(self, event: Event, note: str) -> None:
        try:
            data = self._codec().send(event)
        except LocalProtocolError as exc:
            raise ClientError(f"cannot send {note[2:]} now: {exc}") from None
        self.transcript.append(note)
        await self._write(data)

    def _codec(self) -> WSConnection | FrameConnection:
        """wsproto's side of the connection: the upgrade's, or the frames' once a stream is open."""
        if self._ws is None:
            raise ClientError("no WebSocket frames before the server accepted the handshake")
        return self._ws

    async def _write(self, data: bytes) -> None:
        if self._pipe is None:
            raise ClientError("nothing can be sent before the handshake")
        try:
            with anyio.fail_after(self._timeout):
                await self._pipe.send(data)
        except (TimeoutError, ServerTimeout):
            raise ServerTimeout(f"the server took none of {len(data)} bytes") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ClientError) as exc:
            raise ClientError(f"the connection is gone: {exc!r}") from None

    async def _next_event(self, timeout: float | None, *, what: str, idle: bool = False) -> Event:
        """The next wsproto event, reading as needed; the end of the connection (the stream) as a close.

        ``timeout`` bounds the whole wait, or with ``idle`` each read (the bound restarts
        whenever bytes arrive).
        """
        limit = timeout if timeout is not None else float("inf")
        deadline = anyio.current_time() + limit
        while not self._events:
            if self._eof:
                self.transcript.append("< end of the connection")
                raise _EndOfStream(f"the connection ended before {what}")
            if self._pipe is None or self._ws is None:
                raise ClientError(f"nothing to read before the handshake was sent ({what})")
            left = deadline - anyio.current_time()
            if left <= 0:
                raise ServerTimeout(f"{what} did not come within {timeout or 0:.1f}s")
            try:
                data = await self._pipe.receive(left)
            except TimeoutError:
                raise ServerTimeout(f"{what} did not come within {timeout or 0:.1f}s") from None
            if idle and data:
                deadline = anyio.current_time() + limit
            self._keep(data)
            try:
                self._ws.receive_data(data or None)
                self._events.extend(self._ws.events())
            except RemoteProtocolError as exc:
                raise ClientError(
                    f"the server broke the WebSocket protocol: {exc}; "
                    f"it sent {bytes(self.received[:400])!r}"
                ) from None
        return self._events.pop(0)


def _statuses(raw: bytes) -> list[int]:
    """The status of every response head in ``raw``, in order (h11 parses each one), up to a 101."""
    statuses: list[int] = []
    while raw:
        parser = h11.Connection(h11.CLIENT)
        upgrade = [("Host", "localhost"), ("Connection", "Upgrade"), ("Upgrade", "websocket")]
        parser.send(h11.Request(method="GET", target="/", headers=upgrade))
        parser.send(h11.EndOfMessage())
        parser.receive_data(raw)
        try:
            event = parser.next_event()
            if not isinstance(event, (h11.Response, h11.InformationalResponse)):
                break
            statuses.append(event.status_code)
            if event.status_code == 101:
                break  # what follows is WebSocket frames
            while True:
                part = parser.next_event()
                if part is h11.NEED_DATA or part is h11.PAUSED:
                    return statuses  # the body is incomplete: nothing follows
                if isinstance(part, h11.EndOfMessage):
                    break
            raw = parser.trailing_data[0]
        except h11.RemoteProtocolError:
            break
    return statuses


class _EndOfStream(ClientError):
    """The TCP connection ended (read as :class:`Received` ``eof`` by :meth:`receive`)."""


def _extension_name(extension: Any) -> str:
    return str(getattr(extension, "name", extension))


def _offer(extension: Extension) -> str:
    """One extension's entry in Sec-WebSocket-Extensions, as wsproto writes it for an upgrade."""
    parameters = extension.offer()
    if isinstance(parameters, bool):
        return extension.name if parameters else ""
    return f"{extension.name}; {parameters}"


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
