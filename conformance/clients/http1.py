"""HTTP/1.x over a raw socket, with h11 as the strict parser of responses.

The request bytes are written exactly as the check composed them: paths with
escapes httpx would normalise, obs-text header values, duplicate and mixed-case
names, HTTP/1.0 request lines.  The response is parsed by h11; what h11 refuses
is itself a finding and is reported with the bytes received.

h11 tracks both sides of a connection, so before parsing a response we feed its
client state machine a stand-in request with the same method and keep-alive
intent as the one sent (HEAD has no response body; ``Connection: close`` ends
the exchange).  The stand-in's bytes are discarded: only our raw bytes reach the
socket.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from types import TracebackType

import anyio
import anyio.abc
import anyio.streams.tls
import h11

from conformance.clients import _tcp
from conformance.clients._base import (
    ConnectionClosed,
    MalformedResponse,
    Request,
    Response,
    ServerTimeout,
)


__all__ = ["HTTP1Stream", "HTTP1Transport", "RawHTTP1Connection", "encode_request"]

_READ_SIZE = 65536
#: What a read raises when the server has ended the connection: an end of stream, a reset,
#: or over TLS an alert (a server that rejects the client's certificate sends one).
_PEER_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, ssl.SSLError)


def encode_request(request: Request) -> bytes:
    """The request's bytes: request line, headers as given, ``Host`` and length added if absent.

    HTTP/1.0 requests carry ``Host`` too, as every HTTP/1.0 client in use sends it:
    a server may refuse a request without one, which says nothing about its scope.
    """
    names = {name.lower() for name, _ in request.headers}
    headers = list(request.headers)
    if b"host" not in names:
        headers.insert(0, (b"Host", b"localhost"))
    if request.body and b"content-length" not in names and b"transfer-encoding" not in names:
        headers.append((b"Content-Length", str(len(request.body)).encode()))
    lines = [b"%s %s HTTP/%s" % (request.method, request.target, request.http_version.encode())]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.body


def _wants_close(request: Request) -> bool:
    for name, value in request.headers:
        if name.lower() == b"connection":
            return b"close" in value.lower()
    return request.http_version == "1.0"


def _framing(request: Request) -> bytes | None:
    """How the request declares its body's length: ``content-length``, ``chunked``, or None."""
    for name, value in request.headers:
        lower = name.lower()
        if lower == b"content-length":
            return b"content-length"
        if lower == b"transfer-encoding" and b"chunked" in value.lower():
            return b"chunked"
    return None


class HTTP1Stream:
    """The connection's current exchange, as a :class:`~conformance.clients.Stream`.

    A body the request declares ``chunked`` (or gives no length for, while more is
    to come) goes out as chunks, one per :meth:`send_body`; with a
    ``Content-Length`` the bytes go out as given.
    """

    def __init__(self, connection: RawHTTP1Connection, chunked: bool) -> None:
        self.connection = connection
        self.chunked = chunked
        #: Where this exchange's response starts in the connection's received bytes.
        self.start = len(connection.received)

    async def send_body(self, data: bytes, *, end: bool = False) -> None:
        if not self.chunked:
            await self.connection.send_bytes(data)
            return
        framed = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        await self.connection.send_bytes(framed + (b"0\r\n\r\n" if end else b""))

    async def read_until(self, marker: bytes, *, timeout: float) -> bytes:
        return await self.connection.receive_until(marker, timeout=timeout)

    async def read_bytes(self, count: int, *, timeout: float) -> int:
        already = len(self.connection.received) - self.start
        if already >= count:
            return already
        return already + await self.connection.receive_at_least(count - already, timeout=timeout)

    async def read_response(self, *, timeout: float) -> Response:
        return await self.connection.read_response(timeout=timeout)

    async def reset(self) -> None:
        await self.connection.aclose()

    def head_status(self) -> int | None:
        return head_status(self.received())

    def received(self) -> bytes:
        return bytes(self.connection.received[self.start :])


def head_status(received: bytes) -> int | None:
    """The status of the first final response head in ``received``, parsed by a fresh h11.

    A response cut short by an error still has the head that went out first:
    what a check of "nothing built from an invalid event reached the client" reads.
    """
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("Host", "localhost")]))
    parser.send(h11.EndOfMessage())
    parser.receive_data(received)
    try:
        while True:
            event = parser.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            return event.status_code if isinstance(event, h11.Response) else None
    except h11.RemoteProtocolError:
        return None


class RawHTTP1Connection:
    """One TCP (or TLS) connection; several requests may be sent on it in turn."""

    protocol = "http/1.1"

    def __init__(self, stream: anyio.abc.ByteStream, timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout
        self._h11 = h11.Connection(h11.CLIENT)
        self.sent = bytearray()
        self.received = bytearray()
        self.local_address: tuple[str, int] = stream.extra(anyio.abc.SocketAttribute.local_address)  # type: ignore[assignment]
        #: What the client saw of TLS (None on cleartext).
        self.tls = _tcp.tls_info(stream)
        self.closed_by_peer = False

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float, tls: ssl.SSLContext | None = None
    ) -> RawHTTP1Connection:
        """Connect; over TLS when ``tls`` is given, refusing a server that chose another protocol by ALPN."""
        stream = await _tcp.connect(host, port, timeout=timeout, tls=tls)
        alpn = _tcp.alpn_of(stream) if tls is not None else None
        if alpn not in (None, "http/1.1"):
            await stream.aclose()
            raise ConnectionClosed(f"the server chose {alpn!r} by ALPN where http/1.1 was offered")
        return cls(stream, timeout)

    async def __aenter__(self) -> RawHTTP1Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._stream.aclose()

    def evidence(self, limit: int = 2000) -> str:
        sent = bytes(self.sent)[:limit]
        received = bytes(self.received)[:limit]
        return f"> {sent!r}\n< {received!r}"

    async def start(self, request: Request, *, end: bool = True) -> HTTP1Stream:
        """Send ``request``'s head and body; with ``end`` False more body follows on the stream."""
        framing = _framing(request)
        if not end and framing is None:
            request = replace(
                request, headers=[*request.headers, (b"Transfer-Encoding", b"chunked")]
            )
            framing = b"chunked"
        stream = HTTP1Stream(self, chunked=framing == b"chunked")
        self.prime(request)
        if stream.chunked:
            await self.send_bytes(encode_request(replace(request, body=b"")))
            if request.body or end:
                await stream.send_body(request.body, end=end)
        else:
            await self.send_bytes(encode_request(request))
        return stream

    async def send_bytes(self, data: bytes) -> None:
        """Write ``data``; a server that stops reading or drops the connection meanwhile is
        a :class:`ServerTimeout` or :class:`ConnectionClosed`, evidence like any answer."""
        self.sent += data
        try:
            with anyio.fail_after(self._timeout):
                await self._stream.send(data)
        except TimeoutError:
            raise ServerTimeout(
                f"the server took none of the last {len(data)} bytes within {self._timeout:.1f}s"
            ) from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ConnectionClosed(
                f"the server closed the connection while the client was still sending "
                f"({type(exc).__name__}; {len(self.sent)} bytes written in all)"
            ) from None

    async def send(self, request: Request) -> None:
        """Write the request and prime h11 to read its response."""
        self.prime(request)
        await self.send_bytes(encode_request(request))

    def prime(self, request: Request) -> None:
        """Ready h11 to parse the response to ``request``, whose bytes go out by other means.

        :meth:`send` does both at once; a check that pipelines writes several
        requests in one :meth:`send_bytes` and primes each just before reading its
        response.
        """
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        stand_in = [("Host", "localhost")]
        if _wants_close(request):
            stand_in.append(("Connection", "close"))
        self._h11.send(h11.Request(method=request.method, target=b"/", headers=stand_in))
        self._h11.send(h11.EndOfMessage())

    async def wait_closed(self, *, timeout: float) -> bytes | None:
        """Wait for the server to close the connection: the bytes it sent first, or None.

        None means the connection was still open when ``timeout`` passed.  Bytes
        read here are kept in ``received`` but not parsed (a response is complete).
        """
        start = len(self.received)
        try:
            with anyio.fail_after(timeout):
                while True:
                    try:
                        data = await self._stream.receive(_READ_SIZE)
                    except _PEER_GONE:
                        self.closed_by_peer = True
                        return bytes(self.received[start:])
                    self.received += data
        except TimeoutError:
            return None

    async def read_response(self, *, timeout: float | None = None) -> Response:
        """Read one complete response (informational ones are kept in ``informational``)."""
        start = len(self.received)
        status = 0
        reason = b""
        version = ""
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()
        informational: list[tuple[int, list[tuple[bytes, bytes]]]] = []
        trailers: list[tuple[bytes, bytes]] = []
        try:
            with anyio.fail_after(timeout if timeout is not None else self._timeout):
                while True:
                    event = self._h11.next_event()
                    if event is h11.NEED_DATA:
                        try:
                            data = await self._stream.receive(_READ_SIZE)
                        except _PEER_GONE:
                            data = b""
                            self.closed_by_peer = True
                        self.received += data
                        self._h11.receive_data(data)
                        continue
                    if isinstance(event, h11.InformationalResponse):
                        informational.append(
                            (
                                event.status_code,
                                [(bytes(k), bytes(v)) for k, v in event.headers.raw_items()],
                            )
                        )
                        continue
                    if isinstance(event, h11.Response):
                        status, reason = event.status_code, bytes(event.reason)
                        version = event.http_version.decode("ascii")
                        headers = [(bytes(k), bytes(v)) for k, v in event.headers.raw_items()]
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        trailers = [(bytes(k), bytes(v)) for k, v in event.headers.raw_items()]
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise ConnectionClosed(
                            "the server closed the connection before a complete response; "
                            f"received {bytes(self.received[start:])[:500]!r}"
                        )
        except TimeoutError:
            raise ServerTimeout(
                f"no complete response within {timeout or self._timeout:.1f}s; "
                f"received {bytes(self.received[start:])[:500]!r}"
            ) from None
        except h11.RemoteProtocolError as exc:
            if not self.received[start:]:
                raise ConnectionClosed(
                    "the server closed the connection without sending a response"
                ) from None
            raise MalformedResponse(
                f"the response is not valid HTTP/1.1 ({exc}); "
                f"received {bytes(self.received[start:])[:500]!r}"
            ) from None
        return Response(
            status=status,
            headers=headers,
            body=bytes(body),
            http_version=version,
            reason=reason,
            sent=bytes(self.sent),
            received=bytes(self.received[start:]),
            informational=informational,
            trailers=trailers,
        )

    async def receive_until(self, marker: bytes, *, timeout: float) -> bytes:
        """Read raw bytes until ``marker`` has arrived (a partly read response); the bytes so far.

        For checks that read part of a response and then leave: the bytes also
        reach h11, so :meth:`read_response` can still parse the whole exchange.
        Raises :class:`ServerTimeout` or :class:`ConnectionClosed` with the bytes seen.
        """
        start = len(self.received)
        try:
            with anyio.fail_after(timeout):
                while (
                    self.received.find(
                        marker, max(start, len(self.received) - _READ_SIZE - len(marker))
                    )
                    < 0
                ):
                    try:
                        data = await self._stream.receive(_READ_SIZE)
                    except _PEER_GONE:
                        self.closed_by_peer = True
                        raise ConnectionClosed(
                            f"the server closed the connection before {marker!r} arrived; "
                            f"received {bytes(self.received[start:])[:500]!r}"
                        ) from None
                    self.received += data
                    self._h11.receive_data(data)
        except TimeoutError:
            raise ServerTimeout(
                f"{marker!r} did not arrive within {timeout:.1f}s; "
                f"received {bytes(self.received[start:])[:500]!r}"
            ) from None
        return bytes(self.received[start:])

    async def receive_at_least(self, count: int, *, timeout: float) -> int:
        """Read raw bytes until ``count`` have arrived since the call (framing included); how many.

        The bytes reach h11 too, as with :meth:`receive_until`.
        """
        start = len(self.received)
        try:
            with anyio.fail_after(timeout):
                while len(self.received) - start < count:
                    try:
                        data = await self._stream.receive(_READ_SIZE)
                    except _PEER_GONE:
                        self.closed_by_peer = True
                        raise ConnectionClosed(
                            f"the server closed the connection after "
                            f"{len(self.received) - start} of {count} bytes"
                        ) from None
                    self.received += data
                    self._h11.receive_data(data)
        except TimeoutError:
            raise ServerTimeout(
                f"{len(self.received) - start} of {count} bytes arrived within {timeout:.1f}s"
            ) from None
        return len(self.received) - start

    async def exchange(self, request: Request, *, timeout: float | None = None) -> Response:
        await self.send(request)
        return await self.read_response(timeout=timeout)


class HTTP1Transport:
    """One request per connection over the raw client (over TLS with ``tls``)."""

    name = "http/1.1"

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls

    async def request(self, request: Request, *, timeout: float) -> Response:
        connection = await RawHTTP1Connection.open(
            self.host, self.port, timeout=timeout, tls=self.tls
        )
        async with connection:
            return await connection.exchange(request, timeout=timeout)
