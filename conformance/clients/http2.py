"""HTTP/2 over TCP or TLS, with the ``h2`` library as the strict framer and parser.

A :class:`Request` is mapped the way an HTTP/2 client maps an HTTP/1.1 request
(RFC 9113 section 8.3.1): method, scheme and target become ``:method``,
``:scheme`` and ``:path``; ``Host`` becomes ``:authority``; field names are sent
in lowercase and the connection-specific fields HTTP/2 forbids (``Connection``,
``Keep-Alive``, ``Proxy-Connection``, ``Transfer-Encoding``, ``Upgrade``, and
``TE`` other than ``trailers``, section 8.2.2) are left out.  Nothing else is
normalised: h2's own outbound validation and normalisation are off, so a check
that composes exact fields (:meth:`HTTP2Connection.start` with ``raw=True``)
sends exactly those.

Reading is pulled, not pushed: whichever stream waits reads the socket and hands
every event to the stream it belongs to, so concurrent streams in concurrent
tasks need no reader task of their own.  Received data is acknowledged at once
(flow control never stalls a response), and sending waits for the peer's window.
The transcript records every frame sent and received, for the evidence.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import anyio
import anyio.abc
import anyio.streams.tls
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from conformance.clients import _tcp
from conformance.clients._base import (
    ConnectionClosed,
    Headers,
    MalformedResponse,
    Request,
    Response,
    ServerTimeout,
)
from conformance.clients._multiplexed import MultiplexedStream, PartialResponse


__all__ = ["HTTP2Connection", "HTTP2Stream", "HTTP2Transport", "h2_headers"]

_READ_SIZE = 65536
#: Fields that carry HTTP/1 connection semantics and are malformed in HTTP/2 (RFC 9113 8.2.2).
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


def h2_headers(request: Request, scheme: bytes) -> list[tuple[bytes, bytes]]:
    """The field block an HTTP/2 client sends for ``request`` (RFC 9113 8.3.1)."""
    authority = b"localhost"
    rest: list[tuple[bytes, bytes]] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == b"host":
            authority = value
        elif lower in CONNECTION_SPECIFIC or (lower == b"te" and value.lower() != b"trailers"):
            continue
        else:
            rest.append((lower, value))
    names = {name for name, _ in rest}
    if request.body and b"content-length" not in names:
        rest.append((b"content-length", str(len(request.body)).encode()))
    pseudo = [
        (b":method", request.method),
        (b":scheme", scheme),
        (b":authority", authority),
        (b":path", request.target),
    ]
    if request.method == b"CONNECT":
        pseudo = [(b":method", b"CONNECT"), (b":authority", authority)]
    return [*pseudo, *rest]


@dataclass
class _StreamState:
    """What arrived for one stream, in order."""

    events: deque[h2.events.Event] = field(default_factory=deque)
    ended: bool = False
    reset: int | None = None


class HTTP2Stream(MultiplexedStream["HTTP2Connection", PartialResponse]):
    """One request/response exchange on an :class:`HTTP2Connection`."""

    http_version = "2"

    def __init__(
        self, connection: HTTP2Connection, stream_id: int, sent: list[tuple[bytes, bytes]]
    ):
        super().__init__(
            connection, stream_id, sent, PartialResponse(start=len(connection.transcript))
        )

    async def send_body(self, data: bytes, *, end: bool = False) -> None:
        """Send ``data`` (as the peer's flow-control window allows), ending the stream if ``end``."""
        await self.connection._send_data(self.stream_id, data, end)

    async def send_trailers(self, fields: Headers) -> None:
        """End the request with a trailing HEADERS frame of exactly ``fields``."""
        await self.connection._send_trailers(self.stream_id, fields)

    async def reset(self, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Reset the stream (RST_STREAM), as a client that gives up on it does."""
        await self.connection._reset(self.stream_id, code)


class HTTP2Connection:
    """One HTTP/2 connection; streams may be started and read concurrently."""

    protocol = "h2"

    def __init__(self, stream: anyio.abc.ByteStream, *, scheme: bytes, timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout
        self.scheme = scheme
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _StreamState] = {}
        self._read_lock = anyio.Lock()
        self._write_lock = anyio.Lock()
        self.transcript: list[str] = []
        self.closed_by_peer = False
        #: Every request a stream was opened with, in order (for a failing cell's reproducer).
        self.requests: list[Request] = []
        self.terminated: h2.events.ConnectionTerminated | None = None
        #: The server's SETTINGS as received (setting code -> value).
        self.remote_settings: dict[int, int] = {}
        #: Whether a SETTINGS frame of the server's has arrived (its preface, RFC 9113 3.4).
        self.settings_received = False
        #: The server's PUSH_PROMISEs, in order (their pushed streams are readable).
        self.pushes: list[h2.events.PushedStreamReceived] = []
        #: The first bytes the server sent, quoted when they never made an HTTP/2 preface.
        self._first_bytes = bytearray()
        self.local_address: tuple[str, int] = stream.extra(anyio.abc.SocketAttribute.local_address)  # type: ignore[assignment]
        #: What the client saw of TLS (None on cleartext).
        self.tls = _tcp.tls_info(stream)

    @property
    def max_concurrent_streams(self) -> int | None:
        """SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 6.5.2) as the server sent it; None: no limit."""
        return self.remote_settings.get(0x3)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> HTTP2Connection:
        """Connect, negotiate ``h2`` over TLS when ``tls`` is given (else prior knowledge), and send the preface."""
        stream = await _tcp.connect(host, port, timeout=timeout, tls=tls)
        if tls is not None and _tcp.alpn_of(stream) != "h2":
            await stream.aclose()
            raise ConnectionClosed(
                f"the server did not agree to h2 by ALPN (it chose {_tcp.alpn_of(stream)!r})"
            )
        connection = cls(stream, scheme=b"https" if tls is not None else b"http", timeout=timeout)
        connection._h2.initiate_connection()
        connection.transcript.append("> preface, SETTINGS")
        await connection._flush()
        return connection

    async def __aenter__(self) -> HTTP2Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            if not self.closed_by_peer:
                self._h2.close_connection()
                self.transcript.append("> GOAWAY")
                with anyio.move_on_after(0.5):
                    await self._flush()
        except (h2.exceptions.ProtocolError, OSError, anyio.BrokenResourceError):
            pass
        finally:
            await self._stream.aclose()

    # -- sending ------------------------------------------------------------------------

    async def settings(self, *, timeout: float) -> dict[int, int] | None:
        """The server's SETTINGS once its preface has arrived; None if it has not within ``timeout``.

        A check that depends on what the server offers (extended CONNECT, RFC 8441
        section 3) reads them before it opens the stream that relies on them.
        """
        deadline = anyio.current_time() + timeout
        while not self.settings_received:
            left = deadline - anyio.current_time()
            if left <= 0:
                return None
            try:
                await self._read_once(left)
            except TimeoutError:
                return None
        return dict(self.remote_settings)

    async def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data:
            async with self._write_lock:
                try:
                    with anyio.fail_after(self._timeout):
                        await self._stream.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    self.closed_by_peer = True
                    raise ConnectionClosed(f"the server closed the connection ({exc!r})") from None

    async def start(
        self, request: Request, *, end: bool = True, raw: Headers | None = None
    ) -> HTTP2Stream:
        """Open a stream with ``request``'s head, and its body if ``end``.

        ``raw`` replaces the mapped field block with exactly the given fields
        (pseudo-header fields included), for checks of what a server does with them.
        """
        fields = list(raw) if raw is not None else h2_headers(request, self.scheme)
        self.requests.append(request)
        stream_id = self._h2.get_next_available_stream_id()
        self._streams[stream_id] = _StreamState()
        last = end and not request.body
        self._h2.send_headers(stream_id, fields, end_stream=last)
        self.transcript.append(
            f"> HEADERS stream {stream_id}{' END_STREAM' if last else ''}: {_fields(fields)}"
        )
        await self._flush()
        stream = HTTP2Stream(self, stream_id, fields)
        if request.body or (end and not last):
            await stream.send_body(request.body, end=end)
        return stream

    async def _send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        view = memoryview(data)
        while True:
            window = min(
                self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size
            )
            if view and window <= 0:
                try:  # a WINDOW_UPDATE, or the reason there is none
                    await self._read_once(self._timeout)
                except TimeoutError:
                    raise ServerTimeout(
                        f"the server's flow-control window stayed closed for {self._timeout:.1f}s "
                        f"with {len(view)} bytes of stream {stream_id} left to send"
                    ) from None
                continue
            chunk, view = view[:window], view[window:]
            last = end and not view
            try:
                self._h2.send_data(stream_id, bytes(chunk), end_stream=last)
            except h2.exceptions.ProtocolError as exc:  # the stream is closed for sending
                raise ConnectionClosed(f"stream {stream_id} takes nothing more ({exc})") from None
            self.transcript.append(
                f"> DATA stream {stream_id} {len(chunk)} bytes{' END_STREAM' if last else ''}"
            )
            await self._flush()
            if not view:
                return

    async def _send_trailers(self, stream_id: int, fields: Headers) -> None:
        self._h2.send_headers(stream_id, list(fields), end_stream=True)
        self.transcript.append(
            f"> HEADERS (trailers) stream {stream_id} END_STREAM: {_fields(fields)}"
        )
        await self._flush()

    async def _reset(self, stream_id: int, code: int) -> None:
        try:
            self._h2.reset_stream(stream_id, error_code=code)
        except h2.exceptions.ProtocolError as exc:  # already closed both ways
            raise ConnectionClosed(f"stream {stream_id} is closed already ({exc})") from None
        self.transcript.append(f"> RST_STREAM stream {stream_id} {_code(code)}")
        await self._flush()

    # -- receiving ----------------------------------------------------------------------

    async def _read_once(self, timeout: float, state: _StreamState | None = None) -> None:
        """Read what the socket has, and dispatch its events to their streams.

        With ``state``, nothing is read if that stream's events arrived while this
        task waited for its turn to read.
        """
        async with self._read_lock:
            if state is not None and state.events:
                return
            with anyio.fail_after(timeout):
                try:
                    data = await self._stream.receive(_READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    data = b""
            if not data:
                self.closed_by_peer = True
                self.transcript.append("< connection closed")
                for state in self._streams.values():
                    state.ended = True
                if self.terminated:
                    why = f" after GOAWAY {_code(self.terminated.error_code)}"
                elif not self.remote_settings:
                    why = (
                        " before its HTTP/2 preface (SETTINGS); it sent "
                        f"{bytes(self._first_bytes)!r}"
                    )
                else:
                    why = ""
                raise ConnectionClosed("the server closed the connection" + why)
            if len(self._first_bytes) < 200:
                self._first_bytes += data[: 200 - len(self._first_bytes)]
            try:
                events = self._h2.receive_data(data)
            except h2.exceptions.ProtocolError as exc:
                self.transcript.append(f"< not valid HTTP/2: {exc}")
                raise MalformedResponse(
                    f"the server's frames are not valid HTTP/2 ({exc})"
                ) from None
            for event in events:
                self._dispatch(event)
            await self._flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", 0)
        self.transcript.append(f"< {_describe(event)}")
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
            for code, setting in event.changed_settings.items():
                self.remote_settings[int(code)] = setting.new_value
        elif isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event
        elif isinstance(event, h2.events.PushedStreamReceived) and event.pushed_stream_id:
            self.pushes.append(event)
            self._streams[event.pushed_stream_id] = _StreamState()
        if stream_id and stream_id in self._streams:
            self._streams[stream_id].events.append(event)

    async def _next_event(self, stream: HTTP2Stream, deadline: float) -> h2.events.Event:
        state = self._streams[stream.stream_id]
        while not state.events:
            if self.terminated is not None and stream.stream_id > (
                self.terminated.last_stream_id or 0
            ):
                raise ConnectionClosed(
                    f"the server sent GOAWAY {_code(self.terminated.error_code)} before "
                    f"answering stream {stream.stream_id}"
                )
            left = deadline - anyio.current_time()
            if left <= 0:
                raise TimeoutError
            await self._read_once(left, state)
        return state.events.popleft()

    async def _read(
        self,
        stream: HTTP2Stream,
        timeout: float,
        until: bytes | None = None,
        size: int | None = None,
        head: bool = False,
    ) -> None:
        """Read ``stream``'s events into its partial response: all of it, until ``until`` is in
        the body, or until the body has ``size`` bytes."""
        partial = stream._partial
        deadline = anyio.current_time() + timeout
        searched = 0

        def wanted() -> bool:
            nonlocal searched
            if head:
                return partial.status != 0
            if size is not None:
                return len(partial.body) >= size
            if until is None:
                return False
            found = partial.body.find(until, max(0, searched - len(until)))
            searched = len(partial.body)
            return found >= 0

        try:
            while not partial.complete and not wanted():
                event = await self._next_event(stream, deadline)
                if isinstance(event, h2.events.InformationalResponseReceived):
                    partial.informational.append(_split_status(event.headers))
                elif isinstance(event, h2.events.ResponseReceived):
                    partial.status, partial.headers = _split_status(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    partial.body += event.data
                elif isinstance(event, h2.events.TrailersReceived):
                    partial.trailers = [(bytes(k), bytes(v)) for k, v in event.headers]
                elif isinstance(event, h2.events.StreamReset):
                    raise ConnectionClosed(
                        f"the server reset stream {stream.stream_id} ({_code(event.error_code)}) "
                        f"after {len(partial.body)} body bytes"
                        + (f", status {partial.status}" if partial.status else " and no response")
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    partial.complete = True
        except TimeoutError:
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
                f"no {waited} on stream {stream.stream_id} within {timeout:.1f}s; "
                f"frames: {' | '.join(self.transcript[partial.start :][-8:]) or 'none'}"
            ) from None
        if size is not None and len(partial.body) < size:
            raise ConnectionClosed(
                f"stream {stream.stream_id} ended after {len(partial.body)} of {size} body bytes"
            )
        if until is not None and until not in partial.body:
            raise ConnectionClosed(
                f"stream {stream.stream_id} ended before {until!r} arrived; "
                f"body {bytes(partial.body)[:300]!r}"
            )

    def pushed(self, push: h2.events.PushedStreamReceived) -> HTTP2Stream:
        """The stream a PUSH_PROMISE opened, to read the pushed response from."""
        stream = HTTP2Stream(self, push.pushed_stream_id or 0, list(push.headers or []))
        stream._partial.start = 0
        return stream

    async def exchange(self, request: Request, *, timeout: float) -> Response:
        stream = await self.start(request)
        return await stream.read_response(timeout=timeout)

    async def wait_closed(self, *, timeout: float) -> bytes | None:
        """Wait until the server closes the connection (b"" then), or None after ``timeout``."""
        if self.closed_by_peer:
            return b""
        try:
            with anyio.move_on_after(timeout):
                while True:
                    await self._read_once(timeout)
        except (ConnectionClosed, MalformedResponse):
            return b""
        except TimeoutError:
            return None
        return None

    def evidence(self, limit: int = 2000) -> str:
        text = "\n".join(self.transcript)
        return text if len(text) <= limit else "…" + text[-limit:]


def _split_status(fields: Sequence[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = 0
    rest = []
    for name, value in fields:
        if name == b":status":
            status = int(value) if value.isdigit() else 0
        else:
            rest.append((bytes(name), bytes(value)))
    return status, rest


def _code(code: int | None) -> str:
    if code is None:
        return "(no code)"
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error {code}"


def _fields(fields: Sequence[tuple[bytes, bytes]] | None, limit: int = 400) -> str:
    fields = fields or ()
    text = ", ".join(f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in fields)
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(event: h2.events.Event) -> str:
    stream_id = getattr(event, "stream_id", 0)
    stream = f" stream {stream_id}" if stream_id else ""
    if isinstance(event, (h2.events.ResponseReceived, h2.events.InformationalResponseReceived)):
        return f"HEADERS{stream}: {_fields(event.headers)}"
    if isinstance(event, h2.events.TrailersReceived):
        return f"HEADERS (trailers){stream}: {_fields(event.headers)}"
    if isinstance(event, h2.events.DataReceived):
        return f"DATA{stream} {len(event.data)} bytes"
    if isinstance(event, h2.events.StreamReset):
        return f"RST_STREAM{stream} {_code(event.error_code)}"
    if isinstance(event, h2.events.ConnectionTerminated):
        return f"GOAWAY {_code(event.error_code)} last stream {event.last_stream_id}"
    if isinstance(event, h2.events.RemoteSettingsChanged):
        values = ", ".join(
            f"{_setting(code)}={s.new_value}" for code, s in event.changed_settings.items()
        )
        return f"SETTINGS {values}"
    if isinstance(event, h2.events.PushedStreamReceived):
        return f"PUSH_PROMISE{stream} promised {event.pushed_stream_id}: {_fields(event.headers)}"
    return f"{type(event).__name__}{stream}"


def _setting(code: int) -> str:
    try:
        return h2.settings.SettingCodes(code).name
    except ValueError:
        return f"setting {code}"


class HTTP2Transport:
    """One request per connection over HTTP/2 (prior knowledge, or ALPN over TLS)."""

    name = "h2"

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls

    async def request(self, request: Request, *, timeout: float) -> Response:
        connection = await HTTP2Connection.open(self.host, self.port, timeout=timeout, tls=self.tls)
        async with connection:
            return await connection.exchange(request, timeout=timeout)
