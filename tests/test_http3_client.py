"""Self-tests of the HTTP/3 client (conformance/clients/http3.py).

Against a real server, hypercorn serving the probe app over QUIC with the session's
certificates (``--quic-bind``), with the side channel left unset:

* a request is mapped as an HTTP/3 client maps it (RFC 9114 4.3.1), and a raw field
  block goes out exactly as given;
* an echo GET is answered over HTTP/3, TLS 1.3, with the server's SETTINGS read;
* a body sent in two pieces is answered only once it has ended;
* concurrent streams share one QUIC connection, and a cancelled stream leaves it usable;
* every wait is bounded: a peer that drops every datagram is a ServerTimeout in time;
* the transcript names the HTTP/3 frames and the QUIC events.

The frame scanner behind the transcript is tested without a socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from conformance.clients import (
    ClientError,
    ConnectionClosed,
    Request,
    ServerTimeout,
    open_connection,
    transport,
)
from conformance.clients._tcp import TLSHandshakeFailed
from conformance.clients.http3 import (
    HTTP3Connection,
    _Frame,
    _FrameScanner,
    _Opened,
    h3_headers,
)
from conformance.clients.tls import TLSMaterial, client_context, session_material


ROOT = Path(__file__).resolve().parent.parent
#: Every wait of these tests, in seconds: generous for a loaded machine, short for a hang.
BOUND = 5.0


@dataclass(frozen=True)
class _Server:
    """A hypercorn serving HTTP/3 on ``port`` (UDP), its stderr in ``log``."""

    port: int
    cafile: Path
    log: Path


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _answers(port: int, cafile: Path) -> bool:
    try:
        async with await HTTP3Connection.open(
            "127.0.0.1", port, timeout=0.5, cafile=cafile
        ) as connection:
            response = await connection.exchange(_echo("ready"), timeout=1)
    except (ClientError, OSError, TimeoutError):
        return False
    return response.status == 200


def _serve(material: TLSMaterial, log: Path) -> tuple[subprocess.Popen[bytes], _Server]:
    """Start hypercorn in a process group of its own; return once it answers over HTTP/3."""
    udp_port = _free_port(socket.SOCK_DGRAM)
    env = {k: v for k, v in os.environ.items() if k != "ASGI_CONFORMANCE_CHANNEL"}
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hypercorn",
                "--bind",
                f"127.0.0.1:{_free_port(socket.SOCK_STREAM)}",
                "--quic-bind",
                f"127.0.0.1:{udp_port}",
                "--certfile",
                str(material.server_cert),
                "--keyfile",
                str(material.server_key),
                "conformance.apps.probe:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    server = _Server(udp_port, material.ca_cert, log)
    until = time.monotonic() + 20
    while time.monotonic() < until:
        if process.poll() is not None:
            raise RuntimeError(f"hypercorn exited ({process.returncode}): {log.read_text()}")
        if anyio.run(_answers, udp_port, material.ca_cert):
            return process, server
        time.sleep(0.05)
    _stop(process)
    raise RuntimeError(f"hypercorn did not answer over HTTP/3 within 20 s: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group: SIGTERM, then SIGKILL (a held app would delay it)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(1.5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        process.wait(5)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return session_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(material: TLSMaterial, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    process, running = _serve(material, tmp_path_factory.mktemp("h3") / "hypercorn.log")
    yield running
    _stop(process)


@pytest.fixture
def own_server(material: TLSMaterial, tmp_path: Path) -> Iterator[_Server]:
    """A server of the test's own, for one that a cancelled request may leave broken."""
    process, running = _serve(material, tmp_path / "hypercorn.log")
    yield running
    _stop(process)


def _echo(rid: str, *extra: tuple[bytes, bytes], method: bytes = b"GET") -> Request:
    return Request(
        method=method,
        target=b"/echo?x=1",
        headers=[(b"x-probe", b"echo"), (b"x-probe-rid", rid.encode()), *extra],
    )


async def _open(server: _Server) -> HTTP3Connection:
    return await HTTP3Connection.open("127.0.0.1", server.port, timeout=BOUND, cafile=server.cafile)


# -- without a server ------------------------------------------------------------------------


def test_a_request_is_mapped_as_an_http3_client_maps_it() -> None:
    """Host becomes :authority, names are lowercased, connection-specific fields are dropped."""
    request = Request(
        method=b"POST",
        target=b"/a?b=1",
        headers=[
            (b"Host", b"example.org"),
            (b"Connection", b"close"),
            (b"Transfer-Encoding", b"chunked"),
            (b"TE", b"gzip"),
            (b"X-Mixed", b"V"),
        ],
        body=b"abc",
    )
    assert h3_headers(request) == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.org"),
        (b":path", b"/a?b=1"),
        (b"x-mixed", b"V"),
        (b"content-length", b"3"),
    ]
    assert h3_headers(Request(headers=[(b"te", b"trailers")]))[-1] == (b"te", b"trailers")


def test_the_frame_scanner_finds_the_same_frames_however_the_bytes_are_split() -> None:
    """A control stream: its type, SETTINGS with a reserved identifier, a reserved frame, GOAWAY."""
    settings = bytes([0x01, 0x40, 0x64, 0x21, 0x01])  # QPACK_MAX_TABLE_CAPACITY=100, 0x21=1
    stream = (
        b"\x00"  # control stream (RFC 9114 6.2.1)
        + bytes([0x04, len(settings)])
        + settings
        + b"\x21\x03abc"  # a reserved frame type, 3 bytes (7.2.8)
        + b"\x07\x01\x08"  # GOAWAY, stream 8
    )
    expected = [
        _Opened(0),
        _Frame(0x4, 5, settings),
        _Frame(0x21, 3),
        _Frame(0x7, 1, b"\x08"),
    ]
    whole = _FrameScanner(unidirectional=True)
    assert whole.feed(stream) == expected
    by_byte = _FrameScanner(unidirectional=True)
    assert [frame for byte in stream for frame in by_byte.feed(bytes([byte]))] == expected
    request = _FrameScanner(unidirectional=False)
    assert request.feed(b"\x01\x02ab\x00\x00") == [_Frame(0x1, 2), _Frame(0x0, 0)]


# -- against hypercorn ----------------------------------------------------------------------


def test_a_get_with_echo_headers_gets_200_and_the_echo_body(server: _Server) -> None:
    async def run() -> None:
        async with await _open(server) as connection:
            response = await connection.exchange(_echo("h3-get"), timeout=BOUND)
            assert (response.status, response.body, response.http_version) == (200, b"h3-get", "3")
            assert response.header(b"content-length") == b"6"
            assert connection.remote_settings  # the server's SETTINGS were read
            assert connection.tls is not None
            assert connection.tls.version == 0x0304
            assert connection.tls.server_cert
            assert connection.local_address[0] == "127.0.0.1"

    anyio.run(run)


def test_a_post_body_sent_in_two_pieces_is_answered_once_it_ends(server: _Server) -> None:
    """The echo app reads the whole body first: no answer until the second piece ends it
    (a reserved frame between the pieces is ignored, RFC 9114 9)."""

    async def run() -> None:
        async with await _open(server) as connection:
            stream = await connection.start(_echo("h3-post", method=b"POST"), end=False)
            await stream.send_body(b"abc")
            started = time.monotonic()
            with pytest.raises(ServerTimeout, match=r"no 1 body bytes on stream 0 within 0\.3s"):
                await stream.read_bytes(1, timeout=0.3)
            assert time.monotonic() - started < 0.3 + 1
            await stream.send_frame(0x21, b"grease")  # reserved: the server ignores it (9)
            await stream.send_body(b"def", end=True)
            response = await stream.read_response(timeout=BOUND)
            assert (response.status, response.body) == (200, b"h3-post")
            assert "> DATA stream 0 3 bytes" in connection.transcript
            assert "> reserved frame 0x21 stream 0, 6 bytes" in connection.transcript
            assert "> DATA stream 0 3 bytes FIN" in connection.transcript

    anyio.run(run)


def test_concurrent_streams_share_one_connection(server: _Server) -> None:
    bodies: dict[int, bytes] = {}

    async def run() -> HTTP3Connection:
        async with await _open(server) as connection:
            streams = [await connection.start(_echo(f"h3-c{i}")) for i in range(6)]

            async def read(index: int) -> None:
                response = await streams[index].read_response(timeout=BOUND)
                assert response.status == 200
                bodies[index] = response.body

            async with anyio.create_task_group() as tasks:
                for index in range(len(streams)):
                    tasks.start_soon(read, index)
            assert [s.stream_id for s in streams] == [0, 4, 8, 12, 16, 20]
        return connection

    connection = anyio.run(run)
    assert bodies == {i: f"h3-c{i}".encode() for i in range(6)}
    assert sum(line.startswith("= QUIC handshake complete") for line in connection.transcript) == 1


def test_a_cancelled_stream_leaves_the_connection_usable(own_server: _Server) -> None:
    """RESET_STREAM and STOP_SENDING with H3_REQUEST_CANCELLED, then another request answered.

    The held app never answers within the test: hypercorn stops serving HTTP/3 once an
    app answers a cancelled stream, hence a server of the test's own.
    """

    async def run() -> None:
        async with await _open(own_server) as connection:
            held = await connection.start(
                Request(headers=[(b"x-probe", b"hold"), (b"x-probe-wait", b"30")])
            )
            with pytest.raises(ServerTimeout):
                await held.read_head(timeout=0.2)
            await held.reset()
            assert "> RESET_STREAM stream 0 H3_REQUEST_CANCELLED" in connection.transcript
            assert "> STOP_SENDING stream 0 H3_REQUEST_CANCELLED" in connection.transcript
            with pytest.raises(ConnectionClosed, match="cancelled by this client"):
                await held.read_response(timeout=BOUND)
            response = await connection.exchange(_echo("after-reset"), timeout=BOUND)
            assert (response.status, response.body) == (200, b"after-reset")

    anyio.run(run)


def test_a_raw_field_block_is_sent_exactly(server: _Server) -> None:
    """Order, duplicates and case as given: nothing added, nothing lowercased."""
    raw = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"raw.example"),
        (b":path", b"/raw?q=1"),
        (b"x-probe", b"echo"),
        (b"x-probe-rid", b"raw-1"),
        (b"x-dup", b"2"),
        (b"x-dup", b"1"),
    ]

    async def run() -> None:
        async with await _open(server) as connection:
            stream = await connection.start(Request(), raw=raw)
            response = await stream.read_response(timeout=BOUND)
            assert (response.status, response.body) == (200, b"raw-1")
            assert stream.request_headers == raw
            assert (
                "> HEADERS stream 0 FIN: :method: GET, :scheme: https, :authority: raw.example, "
                ":path: /raw?q=1, x-probe: echo, x-probe-rid: raw-1, x-dup: 2, x-dup: 1"
            ) in connection.transcript
        # An uppercase name goes out as given; the server (aioquic's validation) refuses it.
        async with await _open(server) as connection:
            stream = await connection.start(Request(), raw=[*raw[:4], (b"X-Upper", b"v")])
            with pytest.raises(ConnectionClosed, match="H3_MESSAGE_ERROR"):
                await stream.read_response(timeout=BOUND)
            assert any("X-Upper: v" in line for line in connection.transcript)

    anyio.run(run)


def test_a_peer_that_drops_everything_is_a_server_timeout_within_the_bound(
    material: TLSMaterial,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ServerTimeout, match="nothing answered the QUIC Initial"):
            anyio.run(
                lambda: HTTP3Connection.open(
                    "127.0.0.1", port, timeout=0.5, cafile=material.ca_cert
                )
            )
        assert 0.5 <= time.monotonic() - started < 0.5 + 1


def test_a_port_nobody_listens_on_is_an_oserror_for_readiness(material: TLSMaterial) -> None:
    """The ICMP port unreachable comes back as ConnectionRefusedError, as a refused TCP connect."""
    port = _free_port(socket.SOCK_DGRAM)
    with pytest.raises(ConnectionRefusedError):
        anyio.run(
            lambda: HTTP3Connection.open("127.0.0.1", port, timeout=BOUND, cafile=material.ca_cert)
        )


def test_the_transcript_names_frames_and_quic_events(server: _Server) -> None:
    async def run() -> HTTP3Connection:
        async with await _open(server) as connection:
            response = await connection.exchange(_echo("named"), timeout=BOUND)
            assert b"< HEADERS stream 0: :status: 200" in response.received
        return connection

    connection = anyio.run(run)
    lines = connection.transcript
    for prefix in (
        "> QUIC Initial to 127.0.0.1:",
        "= QUIC handshake complete: ALPN h3, TLS 1.3 TLS_",
        "> HEADERS stream 0 FIN: :method: GET, :scheme: https, :authority: localhost",
        "< control stream 3",
        "< SETTINGS QPACK_MAX_TABLE_CAPACITY=",
        "< QPACK encoder stream",
        "< HEADERS stream 0: :status: 200",
        "< DATA stream 0 5 bytes",
        "< FIN stream 0",
        "> CONNECTION_CLOSE H3_NO_ERROR",
    ):
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    assert "< SETTINGS" in connection.evidence()


def test_the_seam_opens_h3_with_the_context_the_other_wires_get(
    material: TLSMaterial, server: _Server
) -> None:
    """open_connection and transport("h3") trust the CA loaded into the session's client context."""
    context = client_context(material, ["h3"])

    async def run() -> None:
        connection = await open_connection(
            "h3", "127.0.0.1", server.port, timeout=BOUND, tls=context
        )
        async with connection:
            assert connection.protocol == "h3"
            response = await connection.exchange(_echo("seam"), timeout=BOUND)
            assert response.status == 200
        one = await transport("h3", "127.0.0.1", server.port, tls=context).request(
            _echo("transport"), timeout=BOUND
        )
        assert (one.status, one.body, one.http_version) == (200, b"transport", "3")

    anyio.run(run)


def test_a_client_that_does_not_trust_the_ca_is_refused(
    material: TLSMaterial, server: _Server
) -> None:
    with pytest.raises(TLSHandshakeFailed, match="bad_certificate"):
        anyio.run(
            lambda: HTTP3Connection.open(
                "127.0.0.1", server.port, timeout=BOUND, cafile=material.stranger_ca_cert
            )
        )
