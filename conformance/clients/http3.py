"""HTTP/3 over QUIC, with ``aioquic`` as the QUIC stack, the framer and the QPACK codec.

A :class:`Request` is mapped the way an HTTP/3 client maps an HTTP/1.1 request
(RFC 9114 section 4.3.1): method, target and ``Host`` become ``:method``,
``:path`` and ``:authority``, ``:scheme`` is ``https`` (QUIC is always TLS,
RFC 9001); field names are sent in lowercase and the connection-specific fields
HTTP/3 forbids (``Connection``, ``Keep-Alive``, ``Proxy-Connection``,
``Transfer-Encoding``, ``Upgrade``, and ``TE`` other than ``trailers``, section
4.2) are left out.  Nothing else is normalised, and aioquic validates nothing it
sends, so a check that composes exact fields (:meth:`HTTP3Connection.start` with
``raw=``) or exact frames (:meth:`HTTP3Stream.send_frame`) sends exactly those.

Why aioquic's asyncio endpoint, not a socket this module reads itself
--------------------------------------------------------------------
The HTTP/2 client reads only while some stream waits (conformance/clients/http2.py),
which TCP allows: the kernel acknowledges and retransmits.  QUIC does that in the
endpoint: acknowledgements, loss recovery, the probe and idle timers all run in
the client (RFC 9002), so a connection nobody is reading from would stop
acknowledging and make the server retransmit, and a lost packet of ours would wait
for the next read.  aioquic's ``QuicConnectionProtocol`` is a datagram protocol of
the event loop: the loop hands it every datagram and fires its timers, with no task
of ours whose lifetime would have to outlive :meth:`HTTP3Connection.open`.  Control
stays exact because this module owns the ``QuicConnection`` and the
``H3Connection`` and calls them directly (``send_headers``, ``reset_stream``,
``stop_stream``) before asking the endpoint to transmit.  Every wait is a loop over
"is it there yet?" bounded by ``anyio.fail_after``-style deadlines, woken by the
protocol callbacks: nothing waits unbounded.  The costs, said once: the client runs
on anyio's asyncio backend only (the suite's); it reads everything the server sends
as it arrives, so unlike the HTTP/1.1 and HTTP/2 clients it never holds a server
back by not reading (no backpressure checks through it); and sending never waits,
since aioquic buffers what flow control does not let out yet.  A server that goes
away without a CONNECTION_CLOSE is noticed only when the host answers a later packet
with ICMP port unreachable, or at aioquic's idle timeout (60 s): waits reach their
bound first, as they should.  aioquic's client also sends MAX_PUSH_ID 8, so a server
may push: its PUSH_PROMISEs are kept in :attr:`HTTP3Connection.pushes`, and the
pushed responses are transcribed but not read.

What the client refuses
-----------------------
aioquic checks the server's responses as an HTTP/3 client must: field names and
values, pseudo-header fields, ``Content-Length`` against the DATA received, frame
order (RFC 9114 sections 4.1.2, 4.2, 4.3.2, 7), reported as :class:`MalformedResponse`
naming aioquic's reason: the verdict a conformant client reaches, with the evidence.
A malformed response is an error of its stream only (RFC 9114 4.1.2): the client
reads no more of that stream and the connection's other streams go on (aioquic alone
would close the connection, and the server's other streams would take the blame).
A frame error (H3_FRAME_UNEXPECTED, ...) still closes the connection, as 7.1 says.

The transcript
--------------
Every HTTP/3 frame sent and received is a line, in wire order: received frames
come from a small scanner (:class:`_FrameScanner`) that reads each stream's bytes
again for names and lengths, so what aioquic consumes silently (GOAWAY, reserved
and unknown frame and stream types, an empty final DATA frame) is shown too, and
HEADERS lines are completed with the fields once QPACK has decoded them.  QUIC
events that matter to HTTP (the handshake, FIN, RESET_STREAM, STOP_SENDING,
CONNECTION_CLOSE) are lines of their own.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import encode_uint_var
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import (
    ErrorCode,
    FrameType,
    H3Connection,
    MessageError,
    Setting,
    StreamType,
)
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionState
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import AlertDescription, CipherSuite
from cryptography.hazmat.primitives.serialization import Encoding

from conformance._verdicts import HarnessError
from conformance.clients._base import (
    ClientError,
    ConnectionClosed,
    Headers,
    MalformedMessage,
    MalformedResponse,
    Request,
    Response,
    ServerTimeout,
    Unreachable,
)
from conformance.clients._multiplexed import MultiplexedStream, PartialResponse
from conformance.clients._tcp import TLSHandshakeFailed, TLSInfo


__all__ = ["H3_REQUEST_CANCELLED", "HTTP3Connection", "HTTP3Stream", "HTTP3Transport", "h3_headers"]

#: The code of a request the client no longer wants (RFC 9114 4.1.1, 8.1).
H3_REQUEST_CANCELLED = int(ErrorCode.H3_REQUEST_CANCELLED)
#: Fields that carry HTTP/1 connection semantics and are malformed in HTTP/3 (RFC 9114 4.2).
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)

# -- the HTTP/3 vocabulary, for the transcript ---------------------------------------------
# aioquic's enums name frame types, stream types, settings and error codes
# (RFC 9114 7.2, 6.2, 7.2.4.1, 8.1; RFC 9204); what HTTP/3 reserves is named here.

#: HTTP/2 frame types with no HTTP/3 equivalent: receiving one is an error (RFC 9114 7.2.8).
_HTTP2_FRAMES = {0x2: "PRIORITY", 0x6: "PING", 0x8: "WINDOW_UPDATE", 0x9: "CONTINUATION"}
#: HTTP/2 settings with no HTTP/3 equivalent: receiving one is an error (RFC 9114 7.2.4.1).
_HTTP2_SETTINGS = {
    0x2: "ENABLE_PUSH",
    0x3: "MAX_CONCURRENT_STREAMS",
    0x4: "INITIAL_WINDOW_SIZE",
    0x5: "MAX_FRAME_SIZE",
}
#: The scanner's mark for a request stream, framed from its first byte (RFC 9114 6.1).
_REQUEST = -1
#: Streams that carry frames; QPACK streams carry instructions, unknown types are ignored.
_FRAMED = frozenset({StreamType.CONTROL, StreamType.PUSH, _REQUEST})
#: Control frames whose payload the transcript decodes, up to ``_KEEP`` bytes.
_DECODED = frozenset(
    {FrameType.SETTINGS, FrameType.GOAWAY, FrameType.MAX_PUSH_ID, FrameType.CANCEL_PUSH}
)
_KEEP = 16384


def _reserved(value: int) -> bool:
    """Whether ``value`` is of the form ``0x1f * N + 0x21``: the identifiers reserved to
    exercise the rule that unknown ones are ignored (RFC 9114 6.2.3, 7.2.4.1, 7.2.8, 8.1)."""
    return value >= 0x21 and (value - 0x21) % 0x1F == 0


def h3_headers(request: Request, authority: bytes = b"localhost") -> list[tuple[bytes, bytes]]:
    """The field block an HTTP/3 client sends for ``request`` (RFC 9114 4.3.1).

    ``Host`` becomes ``:authority`` (4.3.1: clients "SHOULD use the :authority
    pseudo-header field instead of the Host header field"), the connection-specific
    fields are dropped (4.2: "An endpoint MUST NOT generate an HTTP/3 field section
    containing connection-specific fields"; ``TE: trailers`` is the exception), and a
    body given whole is announced by ``Content-Length``.
    """
    rest: list[tuple[bytes, bytes]] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == b"host":
            authority = value
        elif lower in CONNECTION_SPECIFIC or (lower == b"te" and value.lower() != b"trailers"):
            continue
        else:
            rest.append((lower, value))
    if request.body and b"content-length" not in {name for name, _ in rest}:
        rest.append((b"content-length", str(len(request.body)).encode()))
    if request.method == b"CONNECT":  # 4.4: no :scheme or :path
        return [(b":method", b"CONNECT"), (b":authority", authority), *rest]
    pseudo = [
        (b":method", request.method),
        (b":scheme", b"https"),
        (b":authority", authority),
        (b":path", request.target),
    ]
    return [*pseudo, *rest]


# -- reading frames again, for the transcript ------------------------------------------------


def _varint(data: bytes | bytearray, at: int = 0) -> tuple[int, int] | None:
    """The QUIC variable-length integer at ``at`` and the offset after it (RFC 9000 16),
    or None if ``data`` ends inside it.  The first two bits give its length: 1, 2, 4, 8."""
    if at >= len(data):
        return None
    end = at + (1 << (data[at] >> 6))
    if end > len(data):
        return None
    value = data[at] & 0x3F
    for byte in data[at + 1 : end]:
        value = (value << 8) | byte
    return value, end


@dataclass(frozen=True)
class _Opened:
    """A unidirectional stream announced its type (RFC 9114 6.2), and a push stream its push ID."""

    stream_type: int
    push_id: int | None = None


@dataclass(frozen=True)
class _Frame:
    """An HTTP/3 frame's type and length (RFC 9114 7.1); the payload of control frames."""

    frame_type: int
    length: int
    payload: bytes | None = None


class _FrameScanner:
    """Splits the bytes of one stream from the server into HTTP/3 frames.

    aioquic parses the same bytes for the client; this reads them again only to name
    what arrived, in wire order, including what aioquic consumes without a word.  A
    frame is reported when its header has arrived, so the transcript keeps the wire's
    order; the control frames decoded for the transcript (SETTINGS, GOAWAY,
    MAX_PUSH_ID, CANCEL_PUSH) when their payload is complete.  Pure: bytes in, frames out.
    """

    def __init__(self, *, unidirectional: bool) -> None:
        #: None until a unidirectional stream's type has arrived.
        self.stream_type: int | None = None if unidirectional else _REQUEST
        self._buffer = bytearray()
        #: Payload bytes of the current frame still to come, and the frame if it is kept.
        self._left = 0
        self._kept: tuple[int, int, bytearray] | None = None

    def feed(self, data: bytes) -> list[_Opened | _Frame]:
        self._buffer += data
        found: list[_Opened | _Frame] = []
        while self._buffer:
            if self.stream_type is None:
                opened = self._stream_type()
                if opened is None:
                    break
                found.append(opened)
            elif self.stream_type not in _FRAMED:
                self._buffer.clear()  # QPACK instructions, or a stream type to ignore (6.2.3)
            elif self._left:
                take = min(self._left, len(self._buffer))
                if self._kept is not None:
                    self._kept[2].extend(self._buffer[:take])
                del self._buffer[:take]
                self._left -= take
                if not self._left and self._kept is not None:
                    kept_type, kept_length, payload = self._kept
                    found.append(_Frame(kept_type, kept_length, bytes(payload)))
                    self._kept = None
            else:
                header = _varint(self._buffer)
                size = _varint(self._buffer, header[1]) if header else None
                if header is None or size is None:
                    break
                del self._buffer[: size[1]]
                frame_type, self._left = header[0], size[0]
                if frame_type in _DECODED and self._left <= _KEEP:
                    if self._left:
                        self._kept = (frame_type, self._left, bytearray())
                    else:
                        found.append(_Frame(frame_type, 0, b""))
                else:
                    found.append(_Frame(frame_type, self._left))
        return found

    def _stream_type(self) -> _Opened | None:
        parsed = _varint(self._buffer)
        if parsed is None:
            return None
        stream_type, at = parsed
        push_id = None
        if stream_type == StreamType.PUSH:
            pushed = _varint(self._buffer, at)
            if pushed is None:
                return None
            push_id, at = pushed
        del self._buffer[:at]
        self.stream_type = stream_type
        return _Opened(stream_type, push_id)


# -- naming things --------------------------------------------------------------------------


def _frame_name(frame_type: int) -> str:
    if _reserved(frame_type):
        return f"reserved frame 0x{frame_type:x}"
    if frame_type in _HTTP2_FRAMES:
        return f"frame 0x{frame_type:x} (HTTP/2's {_HTTP2_FRAMES[frame_type]}: not in HTTP/3)"
    try:
        return FrameType(frame_type).name
    except ValueError:
        return f"unknown frame 0x{frame_type:x}"


def _stream_name(opened: _Opened, stream_id: int) -> str:
    try:
        kind = StreamType(opened.stream_type).name.replace("_", " ").lower()
    except ValueError:
        kind = "reserved" if _reserved(opened.stream_type) else "unknown"
        return f"stream {stream_id} of {kind} type 0x{opened.stream_type:x} (ignored)"
    name = f"{kind.replace('qpack', 'QPACK')} stream {stream_id}"
    return name if opened.push_id is None else f"{name} (push {opened.push_id})"


def _setting_name(code: int) -> str:
    if _reserved(code):
        return f"reserved 0x{code:x}"
    if code in _HTTP2_SETTINGS:
        return f"HTTP/2's {_HTTP2_SETTINGS[code]} (not in HTTP/3)"
    try:
        return Setting(code).name
    except ValueError:
        return f"unknown 0x{code:x}"


def _settings(values: dict[int, int]) -> str:
    return ", ".join(f"{_setting_name(code)}={value}" for code, value in values.items())


def _parse_settings(payload: bytes) -> dict[int, int] | None:
    """The identifier/value pairs of a SETTINGS payload (RFC 9114 7.2.4), None if malformed."""
    values: dict[int, int] = {}
    at = 0
    while at < len(payload):
        code = _varint(payload, at)
        value = _varint(payload, code[1]) if code else None
        if code is None or value is None:
            return None
        values[code[0]] = value[0]
        at = value[1]
    return values


def _code(code: int | None, *, transport: bool = False) -> str:
    """An error code by name: HTTP/3's (RFC 9114 8.1), or QUIC's for ``transport`` (RFC 9000 20)."""
    if code is None:
        return "(no code)"
    if transport:
        if 0x100 <= code <= 0x1FF:  # a TLS alert (RFC 9001 4.8)
            try:
                return f"CRYPTO_ERROR (TLS alert {AlertDescription(code - 0x100).name})"
            except ValueError:
                return f"CRYPTO_ERROR (TLS alert {code - 0x100})"
        try:
            return QuicErrorCode(code).name
        except ValueError:
            return f"transport error 0x{code:x}"
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"{'reserved' if _reserved(code) else 'unknown'} error 0x{code:x}"


def _closing(code: int, frame_type: int | None, reason: str) -> str:
    """A CONNECTION_CLOSE: a transport close names the frame type that caused it, an
    application (HTTP/3) close does not (RFC 9000 19.19)."""
    text = _code(code, transport=frame_type is not None)
    return f"{text}: {reason}" if reason else text


def _fields(fields: Sequence[tuple[bytes, bytes]], limit: int = 400) -> str:
    text = ", ".join(f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in fields)
    return text if len(text) <= limit else text[:limit] + "…"


def _split_status(fields: Sequence[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = 0
    rest = []
    for name, value in fields:
        if name == b":status":
            status = int(value) if value.isdigit() else 0
        else:
            rest.append((bytes(name), bytes(value)))
    return status, rest


# -- the QUIC endpoint ------------------------------------------------------------------------


class _QuicConnection(QuicConnection):
    """aioquic's QUIC connection, noting the first time the client side closes it.

    aioquic closes the connection itself when the server breaks HTTP/3 or QUIC (and
    reports ``ConnectionTerminated`` only after the closing period, RFC 9000 10.2):
    noting the close here lets a waiting stream fail at once, with aioquic's reason.
    """

    local_close: tuple[int, int | None, str] | None = None

    def close(
        self,
        error_code: int = QuicErrorCode.NO_ERROR,
        frame_type: int | None = None,
        reason_phrase: str = "",
    ) -> None:
        if self.local_close is None:
            self.local_close = (error_code, frame_type, reason_phrase)
        super().close(error_code=error_code, frame_type=frame_type, reason_phrase=reason_phrase)


class _H3Connection(H3Connection):
    """aioquic's HTTP/3 layer, judging a malformed response as one stream's error.

    aioquic closes the whole connection when a response breaks RFC 9114 (a
    connection-specific field, a bad ``:status``); RFC 9114 4.1.2 makes that an error of
    its stream only (H3_MESSAGE_ERROR).  Closing would blame the server's other streams
    for one bad response, which our own client did, not the server: here the stream
    alone is cancelled and its reader told why, and later frames on it are dropped.
    """

    def __init__(self, quic: QuicConnection, on_malformed: Callable[[int, str], None]) -> None:
        super().__init__(quic)
        self._on_malformed = on_malformed
        self._malformed: set[int] = set()

    def _receive_request_or_push_data(
        self, stream: Any, data: bytes, stream_ended: bool
    ) -> list[h3_events.H3Event]:
        if stream.stream_id in self._malformed:
            return []
        try:
            return super()._receive_request_or_push_data(stream, data, stream_ended)
        except MessageError as exc:
            if stream.push_id is not None:
                raise
            self._malformed.add(stream.stream_id)
            self._on_malformed(stream.stream_id, exc.reason_phrase)
            return []


class _Endpoint(QuicConnectionProtocol):
    """The event loop's datagram protocol: aioquic's, with every event handed to the connection."""

    def __init__(self, quic: QuicConnection, owner: HTTP3Connection) -> None:
        super().__init__(quic)
        self._owner = owner

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._owner.datagrams += 1
        try:
            super().datagram_received(data, addr)
        except Exception as exc:  # a bug of ours or aioquic's: fail the waiters, never hang them
            self._owner._on_internal_error(exc)
            return
        self._owner._after_datagram()

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        self._owner._on_quic_event(event)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error on the connected socket: port unreachable, nobody listens there.
        if isinstance(exc, OSError):
            self._owner._on_socket_error(exc)


# -- streams ------------------------------------------------------------------------------


@dataclass
class _Partial(PartialResponse):
    """The response of one stream as far as it has arrived, and how the stream was cut."""

    #: The code of the server's RESET_STREAM / STOP_SENDING on this stream, if it sent one.
    reset_by_server: int | None = None
    stop_sending: int | None = None
    #: The code this client cancelled the stream with (:meth:`HTTP3Stream.reset`).
    cancelled: int | None = None
    #: Why the server's response on this stream is malformed (RFC 9114 4.1.2), if it is.
    malformed: str | None = None


class HTTP3Stream(MultiplexedStream["HTTP3Connection", _Partial]):
    """One request/response exchange on an :class:`HTTP3Connection`: a bidirectional QUIC stream."""

    http_version = "3"

    def __init__(
        self, connection: HTTP3Connection, stream_id: int, sent: list[tuple[bytes, bytes]]
    ) -> None:
        super().__init__(connection, stream_id, sent, _Partial(start=len(connection.transcript)))

    async def send_body(self, data: bytes, *, end: bool = False) -> None:
        """Send ``data`` in one DATA frame (none if empty), ending the stream (FIN) if ``end``.

        Never waits: aioquic buffers what the server's flow-control limits do not let
        out yet (RFC 9000 4) and sends it as they grow.
        """
        self.connection._send_data(self.stream_id, data, end)

    async def send_trailers(self, fields: Headers) -> None:
        """End the request with a trailing HEADERS frame of exactly ``fields`` (RFC 9114 4.1)."""
        self.connection._send_trailers(self.stream_id, fields)

    async def send_frame(self, frame_type: int, payload: bytes, *, end: bool = False) -> None:
        """Send one frame of any type exactly (a reserved or unknown one, RFC 9114 9)."""
        self.connection._send_frame(self.stream_id, frame_type, payload, end)

    async def reset(self, code: int = H3_REQUEST_CANCELLED) -> None:
        """Cancel the request, as a client that gives up on it does (RFC 9114 4.1.1):
        RESET_STREAM on the client's half of the stream and STOP_SENDING on the server's.

        QUIC sends the RESET_STREAM only while the request is not yet acknowledged whole
        (RFC 9000 3.1); the STOP_SENDING asks the server to reset its half in turn.
        """
        self.connection._cancel(self, code)

    @property
    def stop_sending(self) -> int | None:
        """The code of the server's STOP_SENDING on this stream (it wants no more body), if any."""
        return self._partial.stop_sending


# -- the connection ----------------------------------------------------------------------------


def _configuration(
    host: str,
    tls: ssl.SSLContext | None,
    cafile: Path | str | None,
    cert_chain: tuple[Path | str, Path | str] | None,
    server_name: str | None,
) -> QuicConfiguration:
    """A client configuration offering only ``h3`` (RFC 9114 3.1) and trusting the session CA.

    The CA is ``cafile``, or else the CA certificates loaded into ``tls`` (the context the
    other wires use: it cannot hand over its client certificate, hence ``cert_chain``).
    """
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], server_name=server_name or host
    )
    if cafile is not None:
        configuration.load_verify_locations(cafile=str(cafile))
    elif tls is not None:
        pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in tls.get_ca_certs(binary_form=True))
        if pem:
            configuration.load_verify_locations(cadata=pem.encode("ascii"))
        if tls.verify_mode == ssl.CERT_NONE:
            configuration.verify_mode = ssl.CERT_NONE
    else:
        raise ValueError(
            "HTTP/3 is always TLS (QUIC carries TLS 1.3, RFC 9001): give the CA to trust "
            "as cafile= or in a tls= context"
        )
    if cert_chain is not None:
        configuration.load_cert_chain(str(cert_chain[0]), str(cert_chain[1]))
    return configuration


class HTTP3Connection:
    """One QUIC connection speaking HTTP/3; streams may be started and read concurrently."""

    protocol = "h3"

    def __init__(self, quic: _QuicConnection, host: str, port: int) -> None:
        self._quic = quic
        self._h3 = _H3Connection(quic, self._malformed_response)
        self.host = host
        self.port = port
        self.scheme = b"https"
        self._endpoint: _Endpoint | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._streams: dict[int, HTTP3Stream] = {}
        self._scanners: dict[int, _FrameScanner] = {}
        #: Transcript lines of HEADERS / PUSH_PROMISE frames awaiting their decoded fields.
        self._undecoded: dict[int, list[int]] = {}
        self._wakeup: anyio.Event | None = None
        #: Set once the connection cannot carry requests: the error class and why.
        self._failure: tuple[type[ClientError] | type[HarnessError], str] | None = None
        self._closing = False
        self._peer_closed: tuple[int, int | None, str] | None = None
        self._socket_error: OSError | None = None
        self.transcript: list[str] = []
        #: Every request a stream was opened with, in order (for a failing cell's reproducer).
        self.requests: list[Request] = []
        #: How many datagrams arrived (none: nothing answered the Initial).
        self.datagrams = 0
        self.handshake: quic_events.HandshakeCompleted | None = None
        self.terminated: quic_events.ConnectionTerminated | None = None
        self.closed_by_peer = False
        #: The server's SETTINGS as received (identifier -> value), reserved ones included.
        self.remote_settings: dict[int, int] = {}
        #: Whether the server's SETTINGS frame has arrived on its control stream (RFC 9114 7.2.4).
        self.settings_received = False
        #: The stream ID of the server's last GOAWAY (RFC 9114 5.2), if it sent one.
        self.goaway: int | None = None
        #: The server's PUSH_PROMISEs, in order.
        self.pushes: list[h3_events.PushPromiseReceived] = []
        self.local_address: tuple[str, int] = ("", 0)
        #: What the client saw of TLS (always TLS 1.3 once connected).
        self.tls: TLSInfo | None = None

    @property
    def max_concurrent_streams(self) -> int | None:
        """The server's limit on bidirectional streams (RFC 9000 4.6, initial_max_streams_bidi
        and MAX_STREAMS): how many requests may be open at once (RFC 9114 6.1)."""
        return self._quic._remote_max_streams_bidi

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        cafile: Path | str | None = None,
        cert_chain: tuple[Path | str, Path | str] | None = None,
        server_name: str | None = None,
    ) -> HTTP3Connection:
        """Connect over UDP, complete the QUIC handshake offering ``h3``, open the control streams.

        The server's certificate is checked against ``cafile``, or else the CA
        certificates of ``tls``, for ``server_name`` (default: ``host``);
        ``cert_chain`` (certificate file, key file) is the client's certificate.

        Raises :class:`ServerTimeout` when nothing answers within ``timeout``,
        :class:`TLSHandshakeFailed` when the handshake fails or does not finish,
        :class:`ConnectionClosed` when the server does not agree to ``h3``, and
        ``OSError`` (``ConnectionRefusedError``) when the host says nobody listens on
        that UDP port: readiness retries on it, as on a refused TCP connect.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "the HTTP/3 client runs on asyncio (aioquic's endpoint is an asyncio "
                "datagram protocol): use anyio's asyncio backend"
            ) from None
        quic = _QuicConnection(
            configuration=_configuration(host, tls, cafile, cert_chain, server_name)
        )
        connection = cls(quic, host, port)
        deadline = anyio.current_time() + timeout
        with anyio.fail_after(timeout):
            transport, endpoint = await loop.create_datagram_endpoint(
                lambda: _Endpoint(quic, connection), remote_addr=(host, port)
            )
        connection._transport, connection._endpoint = transport, endpoint
        host_address, local_port = transport.get_extra_info("sockname")[:2]
        connection.local_address = (host_address, local_port)
        settings = _settings(connection._h3.sent_settings or {})
        connection.transcript.append(
            f"> QUIC Initial to {host}:{port} (ALPN h3, server name "
            f"{quic.configuration.server_name}); control stream: SETTINGS {settings}"
        )
        endpoint.connect(transport.get_extra_info("peername"))
        try:
            await connection._handshake(deadline, timeout)
        except BaseException:
            connection._abandon()
            raise
        return connection

    async def _handshake(self, deadline: float, timeout: float) -> None:
        where = f"{self.host}:{self.port}"

        def check() -> None:
            if self._failure is not None and self._failure[0] is HarnessError:
                raise HarnessError(self._failure[1])
            if self._socket_error is not None:
                raise self._socket_error
            closed = self._quic.local_close or self._peer_close()
            if closed is None and self.terminated is not None:
                ended = self.terminated
                closed = (ended.error_code, ended.frame_type, ended.reason_phrase)
            if closed is not None:
                raise TLSHandshakeFailed(
                    f"the QUIC handshake with {where} failed ({_closing(*closed)})"
                )

        if not await self._wait(lambda: self.handshake is not None, deadline, check):
            if not self.datagrams:
                raise Unreachable(
                    f"nothing answered the QUIC Initial sent to {where} within {timeout:.1f}s "
                    "(no HTTP/3 server there, or one that drops it)"
                )
            raise TLSHandshakeFailed(
                f"the server at {where} answered but did not complete the QUIC handshake "
                f"within {timeout:.1f}s"
            )
        assert self.handshake is not None
        chosen = self.handshake.alpn_protocol
        if chosen != "h3":
            await self.aclose()
            raise ConnectionClosed(f"the server did not agree to h3 by ALPN (it chose {chosen!r})")

    def _tls_info(self) -> TLSInfo:
        """What the ``tls`` extension should report: QUIC always runs TLS 1.3 (RFC 9001 4.2)."""
        context = self._quic.tls
        schedule = context.key_schedule
        suite = int(schedule.cipher_suite) if schedule is not None else None
        try:
            name = f"TLS_{CipherSuite(suite).name}" if suite is not None else ""
        except ValueError:
            name = ""
        # aioquic keeps the server's certificate only in a private attribute.
        certificate = getattr(context, "_peer_certificate", None)
        der = certificate.public_bytes(Encoding.DER) if certificate is not None else None
        return TLSInfo(version=0x0304, cipher_suite=suite, cipher_name=name, server_cert=der)

    async def __aenter__(self) -> HTTP3Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close with H3_NO_ERROR (RFC 9114 5.2) unless the connection is already closed."""
        if self._transport is None:
            return
        if self._quic.local_close is None and self._peer_close() is None and not self.terminated:
            self._closing = True
            self._quic.close(error_code=ErrorCode.H3_NO_ERROR)
            self.transcript.append("> CONNECTION_CLOSE H3_NO_ERROR")
            self._transmit()
        self._abandon()

    def _abandon(self) -> None:
        """Close the socket; aioquic's closing-period timer ends on its own (RFC 9000 10.2)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._fail(ConnectionClosed, "the client closed the connection")

    # -- events from the endpoint ------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def _fail(self, kind: type[ClientError] | type[HarnessError], why: str) -> None:
        if self._failure is None:
            self._failure = (kind, why)
        self._wake()

    def _peer_close(self) -> tuple[int, int | None, str] | None:
        """The server's CONNECTION_CLOSE, as soon as it arrived.

        aioquic reports it (``ConnectionTerminated``) only after the draining period
        (RFC 9000 10.2.2), but it enters the draining state, and records the frame, at
        once; both are private attributes, read here (a version without them leaves
        the close to be noticed when ``ConnectionTerminated`` comes).
        """
        if self._peer_closed is None and self._quic.local_close is None:
            event = getattr(self._quic, "_close_event", None)
            draining = getattr(self._quic, "_state", None) is QuicConnectionState.DRAINING
            if draining and isinstance(event, quic_events.ConnectionTerminated):
                self._peer_closed = (event.error_code, event.frame_type, event.reason_phrase)
        return self._peer_closed

    def _after_datagram(self) -> None:
        self._check_closed()
        self._wake()

    def _check_closed(self) -> None:
        """Turn a close, by either side, into the failure every waiting stream reports."""
        refused = self._quic.local_close
        if refused is not None and not self._closing and self._failure is None:
            self.transcript.append(
                f"> CONNECTION_CLOSE {_closing(*refused)} (the client refused what the server sent)"
            )
            self._fail(
                MalformedResponse,
                f"the server's HTTP/3 is not valid ({_closing(*refused)}); "
                "the client closed the connection",
            )
        closed = self._peer_close()
        if closed is not None and not self.closed_by_peer:
            self.closed_by_peer = True
            self.transcript.append(f"< CONNECTION_CLOSE {_closing(*closed)}")
            self._fail(ConnectionClosed, f"the server closed the connection ({_closing(*closed)})")

    def _on_internal_error(self, exc: Exception) -> None:
        self.transcript.append(f"! the client failed on a datagram: {type(exc).__name__}: {exc}")
        self._fail(
            HarnessError,
            f"the HTTP/3 client failed on a datagram from the server ({type(exc).__name__}: {exc})",
        )

    def _on_socket_error(self, exc: OSError) -> None:
        self.transcript.append(f"< socket error: {type(exc).__name__}")
        if self._socket_error is None:
            self._socket_error = exc
        self._fail(
            ConnectionClosed,
            f"the host answered the QUIC packets with {type(exc).__name__} (nobody listens "
            f"on UDP port {self.port} any more)",
        )

    def _on_quic_event(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.StreamDataReceived):
            self._scan(event)
        elif isinstance(event, quic_events.HandshakeCompleted):
            self.handshake = event
            self.tls = self._tls_info()
            self.transcript.append(
                f"= QUIC handshake complete: ALPN {event.alpn_protocol}, TLS 1.3 "
                f"{self.tls.cipher_name or '(unknown suite)'}"
            )
        elif isinstance(event, quic_events.StreamReset):
            self.transcript.append(
                f"< RESET_STREAM stream {event.stream_id} {_code(event.error_code)}"
            )
            if event.stream_id in self._streams:
                self._streams[event.stream_id]._partial.reset_by_server = event.error_code
        elif isinstance(event, quic_events.StopSendingReceived):
            self.transcript.append(
                f"< STOP_SENDING stream {event.stream_id} {_code(event.error_code)}"
            )
            if event.stream_id in self._streams:
                self._streams[event.stream_id]._partial.stop_sending = event.error_code
        elif isinstance(event, quic_events.ConnectionTerminated):
            self.terminated = event
            self._check_closed()
            if not self.closed_by_peer and self._quic.local_close is None:
                why = _closing(event.error_code, event.frame_type, event.reason_phrase)
                self.transcript.append(f"= QUIC connection ended ({why})")
                self._fail(ConnectionClosed, f"the QUIC connection ended ({why})")
        for h3_event in self._h3.handle_event(event):
            self._on_h3_event(h3_event)
        self._check_closed()
        self._wake()

    def _scan(self, event: quic_events.StreamDataReceived) -> None:
        stream_id = event.stream_id
        scanner = self._scanners.get(stream_id)
        if scanner is None:
            scanner = self._scanners[stream_id] = _FrameScanner(unidirectional=bool(stream_id & 2))
        for item in scanner.feed(event.data):
            if isinstance(item, _Opened):
                self.transcript.append(f"< {_stream_name(item, stream_id)}")
            else:
                self._note_frame(stream_id, scanner.stream_type, item)
        if event.end_stream:
            self.transcript.append(f"< FIN stream {stream_id}")

    def _note_frame(self, stream_id: int, stream_type: int | None, frame: _Frame) -> None:
        name = _frame_name(frame.frame_type)
        if stream_type == StreamType.CONTROL:
            payload = frame.payload
            if frame.frame_type == FrameType.SETTINGS and payload is not None:
                values = _parse_settings(payload)
                if values is None:
                    self.transcript.append(f"< SETTINGS (malformed: {payload[:40]!r})")
                else:
                    self.remote_settings = values
                    self.settings_received = True
                    self.transcript.append(f"< SETTINGS {_settings(values)}")
                return
            if frame.frame_type in _DECODED and payload is not None:
                parsed = _varint(payload)
                if parsed is not None and parsed[1] == len(payload):
                    if frame.frame_type == FrameType.GOAWAY:
                        self.goaway = parsed[0]
                        self.transcript.append(f"< GOAWAY stream {parsed[0]}")
                    else:
                        self.transcript.append(f"< {name} push {parsed[0]}")
                    return
            self.transcript.append(f"< {name}, {frame.length} bytes (control stream)")
        elif frame.frame_type in (FrameType.HEADERS, FrameType.PUSH_PROMISE):
            # Completed with the fields once aioquic has decoded them (QPACK, RFC 9204).
            self._undecoded.setdefault(stream_id, []).append(len(self.transcript))
            self.transcript.append(f"< {name} stream {stream_id} ({frame.length} bytes)")
        elif frame.frame_type == FrameType.DATA:
            self.transcript.append(f"< DATA stream {stream_id} {frame.length} bytes")
        else:
            self.transcript.append(f"< {name} stream {stream_id}, {frame.length} bytes")

    def _decoded(self, stream_id: int, line: str) -> None:
        pending = self._undecoded.get(stream_id)
        if pending:
            self.transcript[pending.pop(0)] = line
        else:
            self.transcript.append(line)

    def _on_h3_event(self, event: h3_events.H3Event) -> None:
        if isinstance(event, h3_events.PushPromiseReceived):
            self.pushes.append(event)
            self._decoded(
                event.stream_id,
                f"< PUSH_PROMISE stream {event.stream_id} push {event.push_id}: "
                f"{_fields(event.headers)}",
            )
            return
        if not isinstance(event, (h3_events.HeadersReceived, h3_events.DataReceived)):
            return
        stream = self._streams.get(event.stream_id) if event.push_id is None else None
        partial = stream._partial if stream is not None else None
        if isinstance(event, h3_events.HeadersReceived):
            trailers = partial is not None and partial.status != 0
            kind = "HEADERS (trailers)" if trailers else "HEADERS"
            self._decoded(
                event.stream_id, f"< {kind} stream {event.stream_id}: {_fields(event.headers)}"
            )
            if partial is not None:
                if trailers:
                    partial.trailers = [(bytes(k), bytes(v)) for k, v in event.headers]
                else:
                    status, fields = _split_status(event.headers)
                    if 100 <= status < 200:
                        partial.informational.append((status, fields))
                    else:
                        partial.status, partial.headers = status, fields
        elif partial is not None:
            partial.body += event.data
        if partial is not None and event.stream_ended:
            partial.complete = True

    # -- sending ------------------------------------------------------------------------------

    def _transmit(self) -> None:
        if self._endpoint is not None and self._transport is not None:
            self._endpoint.transmit()

    def _usable(self) -> None:
        """Refuse to send on a connection that is closed, naming why."""
        if self._failure is not None:
            kind, why = self._failure
            raise kind(f"cannot send: {why}")

    async def start(
        self, request: Request, *, end: bool = True, raw: Headers | None = None
    ) -> HTTP3Stream:
        """Open a request stream with ``request``'s head, and its body; the stream ends if ``end``.

        ``raw`` replaces the mapped field block with exactly the given fields
        (pseudo-header fields included), for checks of what a server does with them.
        """
        self._usable()
        fields = list(raw) if raw is not None else h3_headers(request)
        self.requests.append(request)
        stream_id = self._quic.get_next_available_stream_id()
        last = end and not request.body
        self._h3.send_headers(stream_id, fields, end_stream=last)
        self.transcript.append(
            f"> HEADERS stream {stream_id}{' FIN' if last else ''}: {_fields(fields)}"
        )
        # The stream's own lines start after its HEADERS, as the HTTP/2 client's do.
        stream = self._streams[stream_id] = HTTP3Stream(self, stream_id, fields)
        if request.body:
            self._send_data(stream_id, request.body, end, transmit=False)
        self._transmit()
        return stream

    def _send_data(self, stream_id: int, data: bytes, end: bool, *, transmit: bool = True) -> None:
        self._usable()
        try:
            if data:
                self._h3.send_data(stream_id, data, end_stream=end)
                self.transcript.append(
                    f"> DATA stream {stream_id} {len(data)} bytes{' FIN' if end else ''}"
                )
            elif end:  # a bare FIN: the request ends without an empty DATA frame
                self._quic.send_stream_data(stream_id, b"", end_stream=True)
                self.transcript.append(f"> FIN stream {stream_id}")
        except RuntimeError as exc:  # aioquic: "Cannot send data after the stream was reset"
            self._refuse_send(stream_id, exc)
        if transmit:
            self._transmit()

    def _send_trailers(self, stream_id: int, fields: Headers) -> None:
        self._usable()
        try:
            self._h3.send_headers(stream_id, list(fields), end_stream=True)
        except RuntimeError as exc:
            self._refuse_send(stream_id, exc)
        self.transcript.append(f"> HEADERS (trailers) stream {stream_id} FIN: {_fields(fields)}")
        self._transmit()

    def _send_frame(self, stream_id: int, frame_type: int, payload: bytes, end: bool) -> None:
        self._usable()
        frame = encode_uint_var(frame_type) + encode_uint_var(len(payload)) + payload
        try:
            self._quic.send_stream_data(stream_id, frame, end_stream=end)
        except RuntimeError as exc:
            self._refuse_send(stream_id, exc)
        fin = " FIN" if end else ""
        self.transcript.append(
            f"> {_frame_name(frame_type)} stream {stream_id}, {len(payload)} bytes{fin}"
        )
        self._transmit()

    def _refuse_send(self, stream_id: int, exc: RuntimeError) -> None:
        stream = self._streams.get(stream_id)
        partial = stream._partial if stream is not None else None
        if partial is not None and partial.stop_sending is not None:
            raise ConnectionClosed(
                f"the server asked the client to stop sending on stream {stream_id} "
                f"(STOP_SENDING {_code(partial.stop_sending)})"
            ) from None
        raise ConnectionClosed(f"stream {stream_id} takes nothing more ({exc})") from None

    def _malformed_response(self, stream_id: int, why: str) -> None:
        """A response that breaks RFC 9114 is an error of its stream only (4.1.2).

        The stream is abandoned here, not reset on the wire: what the server does
        with a reset is judged by the reset rows, each on an instance of its own, and
        must not become part of every row whose response was malformed (a reset
        takes hypercorn's whole QUIC endpoint down).
        """
        self.transcript.append(
            f"< malformed response on stream {stream_id}: {why} (the client reads no more of it)"
        )
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream._partial.malformed = why
        self._wake()

    def _cancel(self, stream: HTTP3Stream, code: int) -> None:
        if self._transport is None or self._failure is not None:
            return  # the connection is gone: so is the request
        stream_id = stream.stream_id
        self._quic.reset_stream(stream_id, code)
        self.transcript.append(f"> RESET_STREAM stream {stream_id} {_code(code)}")
        try:
            self._quic.stop_stream(stream_id, code)
            self.transcript.append(f"> STOP_SENDING stream {stream_id} {_code(code)}")
        except ValueError:
            pass  # the response arrived whole and aioquic forgot the stream: nothing to stop
        stream._partial.cancelled = code
        self._transmit()

    # -- receiving -------------------------------------------------------------------------------

    async def settings(self, *, timeout: float) -> dict[int, int] | None:
        """The server's SETTINGS once they have arrived; None if they have not within ``timeout``.

        RFC 9114 6.2.1 has each side send SETTINGS first on its control stream; a check
        that depends on what the server offers (extended CONNECT, RFC 9220 section 3)
        reads them before it opens the stream that relies on them.
        """

        def check() -> None:
            if self._failure is not None:
                kind, why = self._failure
                raise kind(why)

        ready = await self._wait(
            lambda: self.settings_received, anyio.current_time() + timeout, check
        )
        return dict(self.remote_settings) if ready else None

    async def _wait(
        self, ready: Callable[[], bool], deadline: float, check: Callable[[], None]
    ) -> bool:
        """Wait until ``ready()``, calling ``check()`` (which raises) before each wait;
        False at ``deadline``.  The endpoint's callbacks wake every waiter on any event."""
        while not ready():
            check()
            left = deadline - anyio.current_time()
            if left <= 0:
                return False
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            with anyio.move_on_after(left):
                await self._wakeup.wait()
        return True

    async def _read(
        self,
        stream: HTTP3Stream,
        timeout: float,
        until: bytes | None = None,
        size: int | None = None,
        head: bool = False,
    ) -> None:
        """Wait until ``stream``'s response is complete, has ``until`` in its body, has
        ``size`` body bytes, or (``head``) has its final head."""
        partial = stream._partial
        stream_id = stream.stream_id
        searched = 0  # the body before this offset holds no ``until``

        def ready() -> bool:
            nonlocal searched
            if partial.complete:
                return True
            if head:
                return partial.status != 0
            if size is not None:
                return len(partial.body) >= size
            if until is None:
                return False
            found = partial.body.find(until, max(0, searched - len(until) + 1))
            searched = len(partial.body)
            return found >= 0

        def check() -> None:
            progress = f" after {len(partial.body)} body bytes" + (
                f", status {partial.status}" if partial.status else " and no response"
            )
            if partial.cancelled is not None:
                raise ConnectionClosed(
                    f"stream {stream_id} was cancelled by this client ({_code(partial.cancelled)})"
                )
            if partial.malformed is not None:
                raise MalformedMessage(
                    f"the server's response on stream {stream_id} is malformed "
                    f"(RFC 9114 4.1.2: {partial.malformed})" + progress
                )
            if partial.reset_by_server is not None:
                raise ConnectionClosed(
                    f"the server reset stream {stream_id} ({_code(partial.reset_by_server)})"
                    + progress
                )
            if self.goaway is not None and stream_id >= self.goaway and not partial.status:
                raise ConnectionClosed(
                    f"the server sent GOAWAY (stream {self.goaway}) before answering stream "
                    f"{stream_id}: it will not process it (RFC 9114 5.2)"
                )
            if self._failure is not None:
                kind, why = self._failure
                raise kind(f"{why}; stream {stream_id} ended" + progress)

        if not await self._wait(ready, anyio.current_time() + timeout, check):
            waited = (
                "response head"
                if head
                else f"{size} body bytes"
                if size is not None
                else f"{until!r} in the body"
                if until is not None
                else "complete response"
            )
            raise ServerTimeout(
                f"no {waited} on stream {stream_id} within {timeout:.1f}s; "
                f"frames: {' | '.join(self.transcript[partial.start - 1 :][-8:])}"
            )
        if size is not None and len(partial.body) < size:
            raise ConnectionClosed(
                f"stream {stream_id} ended after {len(partial.body)} of {size} body bytes"
            )
        if until is not None and until not in partial.body:
            raise ConnectionClosed(
                f"stream {stream_id} ended before {until!r} arrived; "
                f"body {bytes(partial.body)[:300]!r}"
            )

    async def exchange(self, request: Request, *, timeout: float) -> Response:
        stream = await self.start(request)
        return await stream.read_response(timeout=timeout)

    async def wait_closed(self, *, timeout: float) -> bytes | None:
        """Wait until the connection is closed (b"" then), or None after ``timeout``."""
        closed = await self._wait(
            lambda: self._failure is not None, anyio.current_time() + timeout, lambda: None
        )
        return b"" if closed else None

    def evidence(self, limit: int = 2000) -> str:
        text = "\n".join(self.transcript)
        return text if len(text) <= limit else "…" + text[-limit:]


class HTTP3Transport:
    """One request per connection over HTTP/3."""

    name = "h3"

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        *,
        cafile: Path | str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.cafile = cafile

    async def request(self, request: Request, *, timeout: float) -> Response:
        connection = await HTTP3Connection.open(
            self.host, self.port, timeout=timeout, tls=self.tls, cafile=self.cafile
        )
        async with connection:
            return await connection.exchange(request, timeout=timeout)
