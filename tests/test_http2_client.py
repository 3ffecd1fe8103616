"""Self-tests of the HTTP/2 client (conformance/clients/http2.py) and the session's TLS material.

Against a real server (hypercorn serving the probe app, h2c with prior knowledge
and h2 over TLS with the session's certificates):

* a request is mapped as an HTTP/2 client maps it: ``Host`` becomes
  ``:authority``, names are lowercased, connection-specific fields are left out,
  and the app sees exactly that;
* the response, its ``http_version`` "2" and the server's SETTINGS are read, and
  the transcript names the frames;
* concurrent streams on one connection each get their own response;
* over TLS the client trusts only the session CA and negotiates h2 by ALPN;
* a WebSocket opens on a stream by extended CONNECT (RFC 8441) and its frames
  travel both ways; a refused CONNECT is read with its status.
"""

from __future__ import annotations

import ast
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from conformance import _ws_steps as ws
from conformance._reproducer import Sent, reproducer
from conformance._steps import encode_script
from conformance.clients import ClientError, RawWebSocket, Request
from conformance.clients._multiplexed import ENABLE_CONNECT_PROTOCOL
from conformance.clients.http2 import HTTP2Connection, h2_headers
from conformance.clients.tls import TLSMaterial, client_context, session_material


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "-b",
            f"127.0.0.1:{port}",
            *args,
            "conformance.apps.probe:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    until = time.monotonic() + 20
    while time.monotonic() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("hypercorn did not listen within 20 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return session_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def h2c_port() -> Iterator[int]:
    port = _free_port()
    process = _serve([], port)
    yield port
    _stop(process)


@pytest.fixture(scope="module")
def h2_tls_port(material: TLSMaterial) -> Iterator[int]:
    port = _free_port()
    process = _serve(
        ["--certfile", str(material.server_cert), "--keyfile", str(material.server_key)], port
    )
    yield port
    _stop(process)


def test_a_request_is_mapped_as_an_http2_client_maps_it() -> None:
    request = Request(
        method=b"POST",
        target=b"/a?b=1",
        headers=[(b"Host", b"example.org"), (b"Connection", b"close"), (b"X-Mixed", b"V")],
        body=b"abc",
    )
    assert h2_headers(request, b"https") == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.org"),
        (b":path", b"/a?b=1"),
        (b"x-mixed", b"V"),
        (b"content-length", b"3"),
    ]


def _echo(rid: str, *extra: tuple[bytes, bytes]) -> Request:
    return Request(
        target=b"/echo?x=1",
        headers=[(b"x-probe", b"echo"), (b"x-probe-rid", rid.encode()), *extra],
    )


def test_h2c_prior_knowledge_request_and_settings(h2c_port: int) -> None:
    async def run() -> None:
        async with await HTTP2Connection.open("127.0.0.1", h2c_port, timeout=5) as connection:
            response = await connection.exchange(_echo("h2c-1", (b"Host", b"h")), timeout=5)
            assert response.status == 200
            assert response.http_version == "2"
            assert connection.remote_settings  # the server's SETTINGS were read
            assert any(line.startswith("> HEADERS stream 1") for line in connection.transcript)
            assert any(line.startswith("< HEADERS stream 1") for line in connection.transcript)

    anyio.run(run)


def test_concurrent_streams_each_get_their_own_response(h2c_port: int) -> None:
    bodies: dict[int, bytes] = {}

    async def run() -> None:
        async with await HTTP2Connection.open("127.0.0.1", h2c_port, timeout=5) as connection:
            streams = [await connection.start(_echo(f"h2c-c{i}")) for i in range(6)]

            async def read(index: int) -> None:
                response = await streams[index].read_response(timeout=5)
                assert response.status == 200
                bodies[index] = response.body

            async with anyio.create_task_group() as tasks:
                for index in range(len(streams)):
                    tasks.start_soon(read, index)
        assert len({s.stream_id for s in streams}) == 6

    anyio.run(run)
    assert sorted(bodies) == list(range(6))


def test_h2_over_tls_trusts_the_session_ca_and_negotiates_h2(
    material: TLSMaterial, h2_tls_port: int
) -> None:
    async def run() -> str:
        context = client_context(material, ["h2"])
        async with await HTTP2Connection.open(
            "127.0.0.1", h2_tls_port, timeout=5, tls=context
        ) as connection:
            response = await connection.exchange(_echo("tls-1"), timeout=5)
            assert response.status == 200
            assert response.http_version == "2"
            return connection.scheme.decode()

    assert anyio.run(run) == "https"
    assert material.ca_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_a_client_that_does_not_trust_the_ca_is_refused(h2_tls_port: int) -> None:
    async def run() -> None:
        import ssl

        context = ssl.create_default_context()  # the system's CAs, not the session's
        context.set_alpn_protocols(["h2"])
        await HTTP2Connection.open("127.0.0.1", h2_tls_port, timeout=5, tls=context)

    with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        anyio.run(run)


def test_the_material_is_made_once_per_directory(tmp_path: Path) -> None:
    assert session_material(tmp_path) is session_material(tmp_path)
    assert (tmp_path / "client.pem").read_text().count("BEGIN CERTIFICATE") >= 1


def _websocket(rid: str, script: list[dict[str, object]]) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-probe", b"websocket"),
        (b"x-probe-rid", rid.encode()),
        (b"x-probe-script", encode_script(script).encode()),
    ]


def test_a_websocket_opens_on_a_stream_by_extended_connect(h2c_port: int) -> None:
    """RFC 8441: SETTINGS offer it, the CONNECT gets 200, frames travel as DATA both ways."""

    async def run() -> None:
        connection = await HTTP2Connection.open("127.0.0.1", h2c_port, timeout=5)
        settings = await connection.settings(timeout=5)
        assert settings is not None
        assert settings.get(ENABLE_CONNECT_PROTOCOL) == 1
        async with RawWebSocket.over(connection, timeout=5) as client:
            script = [ws.connect(), ws.accept(subprotocol="b"), ws.echo(3)]
            answer = await client.handshake(
                5, headers=_websocket("tunnel-1", script), subprotocols=["a", "b"]
            )
            assert (answer.status, answer.accepted, answer.tunnel) == (200, True, True)
            assert answer.subprotocol == "b"
            await client.send_text("über")
            await client.send_bytes(b"\x00\xff")
            assert (await client.receive(5)).data == "über"
            assert (await client.receive(5)).data == b"\x00\xff"
            await client.close(1000)
            closed = await client.wait_closed(5)
            assert closed.code == 1000
            assert client.describe_drop() == "the client's h2 connection closed"
            # What a failing cell's reproducer shows: the CONNECT's fields, no probe header,
            # and an app that accepts (the probe's script), as for an HTTP/1.1 upgrade.
            made = reproducer([Sent("h2", raw=lambda: client.handshake_request)], "observed")
            assert made is not None
            assert b":protocol: websocket" in ast.literal_eval(made.request)
            assert "x-probe" not in made.request
            assert "websocket.accept" in made.app
        fields = next(line for line in connection.transcript if line.startswith("> HEADERS"))
        assert ":protocol" in fields
        assert "CONNECT" in fields

    anyio.run(run)


def test_a_refused_extended_connect_is_read_with_its_status_and_body(h2c_port: int) -> None:
    """An app that closes before accepting: the stream answers 403, and nothing opens."""

    async def run() -> None:
        connection = await HTTP2Connection.open("127.0.0.1", h2c_port, timeout=5)
        async with RawWebSocket.over(connection, timeout=5) as client:
            script = [ws.connect(), ws.close(1000)]
            answer = await client.handshake(5, headers=_websocket("tunnel-2", script))
            assert answer.status == 403
            assert not answer.accepted
            assert answer.complete
            assert client.ended
            with pytest.raises(ClientError):
                await client.send_text("no tunnel")

    anyio.run(run)
