"""What every transport takes and gives back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from conformance._verdicts import ConformanceFailure


if TYPE_CHECKING:
    from conformance.clients._tcp import TLSInfo


__all__ = [
    "ClientError",
    "Connection",
    "ConnectionClosed",
    "MalformedMessage",
    "MalformedResponse",
    "Request",
    "Response",
    "ServerTimeout",
    "Stream",
    "Transport",
]

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Request:
    """A request as the check wants it on the wire.

    ``target`` and header bytes are sent as given, not normalised: that is how a
    check probes what a server does with unusual but legal input.
    """

    method: bytes = b"GET"
    target: bytes = b"/"
    headers: Headers = ()
    body: bytes = b""
    http_version: str = "1.1"


@dataclass(frozen=True)
class Response:
    """A response as the client parsed it, with the bytes exchanged as evidence."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: str
    reason: bytes = b""
    sent: bytes = b""
    received: bytes = field(default=b"", repr=False)
    #: Informational (1xx) responses that came before this one: (status, headers) each.
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    #: Trailer fields after a chunked body (empty when there were none).
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class ClientError(ConformanceFailure):
    """The server did not give a usable answer; the message carries the wire evidence."""


class ServerTimeout(ClientError):
    """No complete answer within the bound (suite time units, scaled)."""


class Unreachable(ServerTimeout):
    """Nothing answered the attempt to open a connection (a QUIC Initial, here)."""


class ConnectionClosed(ClientError):
    """The server closed the connection before a complete response."""


class MalformedResponse(ClientError):
    """The response bytes are not valid HTTP (h11 refused them)."""


class MalformedMessage(MalformedResponse):
    """A response the server framed and sent whole, whose fields break a message rule.

    RFC 9114 4.1.2 (and RFC 9113 8.1.1) makes such a response an error of its stream
    only: the connection, its framing and the server's other streams are sound.  The
    server is serving (readiness counts it as an answer); what it answered is a
    finding of the check that asked.
    """


class Transport(Protocol):
    """One way of carrying a request to the server."""

    name: str

    async def request(self, request: Request, *, timeout: float) -> Response: ...


class Stream(Protocol):
    """One request on a :class:`Connection`: its body, sent piece by piece, and its response.

    The same check drives every protocol through it: on HTTP/1.1 a stream is the
    connection's current exchange (a body of unknown length goes chunked), on
    HTTP/2 an HTTP/2 stream.
    """

    async def send_body(self, data: bytes, *, end: bool = False) -> None:
        """Send more of the request body, ending it if ``end``."""
        ...

    async def read_until(self, marker: bytes, *, timeout: float) -> bytes:
        """Read the response until ``marker`` has arrived in it; what has arrived so far.

        :meth:`read_response` afterwards still gives the whole response.
        """
        ...

    async def read_bytes(self, count: int, *, timeout: float) -> int:
        """Read until ``count`` bytes of the response have arrived (HTTP/1.1: raw bytes, framing
        included; HTTP/2: body bytes); how many there are.  The response stays readable."""
        ...

    async def read_response(self, *, timeout: float) -> Response:
        """The whole response: informational ones, the final head, body and trailers."""
        ...

    async def reset(self) -> None:
        """Abandon the request, as a client that gives up does.

        HTTP/2 resets the stream (RST_STREAM, CANCEL); HTTP/1.1, which has no other
        way, closes the connection.
        """
        ...

    def head_status(self) -> int | None:
        """The status of the final response head received so far, complete response or not."""
        ...

    def received(self) -> bytes:
        """Everything that arrived for this request so far, as evidence and for "never on the wire".

        HTTP/1.1: the raw bytes; HTTP/2: the stream's frames as described, then its body.
        """
        ...


class Connection(Protocol):
    """A connection to the server, in the column's protocol (conformance/clients/__init__.py)."""

    #: ``http/1.1`` or ``h2``.
    protocol: str
    #: The client's end of the TCP connection, as the server should report it in ``client``.
    local_address: tuple[str, int]
    #: What the client saw of TLS: version, suite, the server's certificate (None: cleartext).
    tls: TLSInfo | None

    async def start(self, request: Request, *, end: bool = True) -> Stream:
        """Send ``request``'s head and its ``body``; the body ends there if ``end``."""
        ...

    async def exchange(self, request: Request, *, timeout: float) -> Response:
        """Send ``request`` whole and read its response."""
        ...

    async def wait_closed(self, *, timeout: float) -> bytes | None:
        """Wait for the server to close the connection; None if it is still open after ``timeout``."""
        ...

    def evidence(self, limit: int = 2000) -> str:
        """What went over the wire so far (bytes or frames), for a report."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Connection: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
