"""The raw WebSocket client (conformance/clients/websocket.py) against an in-process wsproto server.

The server is a few lines of wsproto on a loopback socket that records every event
it gets and answers as each test asks: so the tests see exactly the frames the
client wrote (fragments, an empty close frame, no close frame at all) and how the
client reads what a server may send (a refusal with a body, a fragmented message,
a close frame, a dropped connection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from conformance.clients import RawWebSocket


Script = Callable[["Peer"], Awaitable[None]]


class Peer:
    """The server end of one connection: what it received, and how to answer."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.events: list[Event] = []
        self.frames = 0
        self.ended = False

    async def next(self) -> Event | None:
        """The next event (data events are counted as frames); None at the end of the stream."""
        while True:
            for event in self.ws.events():
                self.events.append(event)
                if isinstance(event, (TextMessage, BytesMessage)):
                    self.frames += 1
                if isinstance(event, Ping):
                    await self.stream.send(self.ws.send(event.response()))
                return event
            if self.ended:
                return None
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                # wsproto reports the end (1006 when no close frame came) once per call.
                self.ended = True
                self.ws.receive_data(None)
                continue
            self.ws.receive_data(data)

    async def accept(self, subprotocol: str | None = None) -> Request:
        request = await self.next()
        assert isinstance(request, Request)
        answer = AcceptConnection(
            subprotocol=subprotocol, extra_headers=[(b"x-server", b"wsproto")]
        )
        await self.stream.send(self.ws.send(answer))
        return request

    async def send(self, *events: Event) -> None:
        await self.stream.send(b"".join(self.ws.send(e) for e in events))


def _exchange(script: Script, client: Callable[[RawWebSocket], Awaitable[Any]]) -> tuple[Any, Peer]:
    """Serve one connection with ``script`` while ``client`` drives a RawWebSocket to it."""
    peers: list[Peer] = []

    async def main() -> Any:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        done = anyio.Event()

        async def handle(stream: anyio.abc.SocketStream) -> None:
            peer = Peer(stream)
            peers.append(peer)
            try:
                await script(peer)
            finally:
                await stream.aclose()
                done.set()

        async with listener, anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, handle)
            with anyio.fail_after(5):
                async with await RawWebSocket.open("127.0.0.1", port, timeout=2) as ws:
                    result = await client(ws)
                await done.wait()
            tasks.cancel_scope.cancel()
        return result

    result = anyio.run(main)
    return result, peers[0]


async def _until_end(peer: Peer) -> None:
    while await peer.next() is not None:
        pass


def test_handshake_reports_status_subprotocol_and_headers() -> None:
    async def server(peer: Peer) -> None:
        request = await peer.accept(subprotocol="b")
        assert request.subprotocols == ["a", "b"]
        assert (b"x-extra", b"1") in [(bytes(k), bytes(v)) for k, v in request.extra_headers]
        await _until_end(peer)

    async def client(ws: RawWebSocket) -> Any:
        return await ws.handshake(
            target="/p?q=1", headers=[(b"x-extra", b"1")], subprotocols=["a", "b"]
        )

    answer, peer = _exchange(server, client)
    assert answer.accepted
    assert answer.subprotocol == "b"
    assert answer.header(b"x-server") == b"wsproto"
    assert isinstance(peer.events[0], Request)
    assert peer.events[0].target == "/p?q=1"


def test_refusal_is_read_with_its_status_and_whole_body() -> None:
    async def server(peer: Peer) -> None:
        await peer.next()
        await peer.send(
            RejectConnection(status_code=401, headers=[(b"content-length", b"11")], has_body=True),
            RejectData(data=b"not ", body_finished=False),
            RejectData(data=b"allowed", body_finished=True),
        )

    answer, _ = _exchange(server, lambda ws: ws.handshake())
    assert (answer.status, answer.body, answer.complete) == (401, b"not allowed", True)
    assert not answer.accepted


def test_fragments_go_out_as_separate_frames_with_a_ping_between() -> None:
    async def server(peer: Peer) -> None:
        await peer.accept()
        await _until_end(peer)

    async def client(ws: RawWebSocket) -> Any:
        await ws.handshake()
        await ws.send_fragments(["ab", "cd", "ef"], ping_between=b"p")
        pong = await ws.receive(2)
        await ws.close(1000)
        return pong

    pong, peer = _exchange(server, client)
    assert (pong.kind, pong.data) == ("pong", b"p")
    texts = [e for e in peer.events if isinstance(e, TextMessage)]
    assert [t.data for t in texts] == ["ab", "cd", "ef"]
    assert [t.message_finished for t in texts] == [False, False, True]
    assert isinstance(peer.events[2], Ping)  # after the first fragment


def test_close_without_a_code_sends_an_empty_close_frame() -> None:
    async def server(peer: Peer) -> None:
        await peer.accept()
        await _until_end(peer)

    async def client(ws: RawWebSocket) -> None:
        await ws.handshake()
        await ws.close(None)

    _, peer = _exchange(server, client)
    closes = [e for e in peer.events if isinstance(e, CloseConnection)]
    assert closes[0].code == 1005  # wsproto's reading of a close frame with no status code


def test_abort_ends_the_connection_without_a_close_frame() -> None:
    async def server(peer: Peer) -> None:
        await peer.accept()
        await _until_end(peer)

    async def client(ws: RawWebSocket) -> None:
        await ws.handshake()
        await ws.abort(reset=True)

    _, peer = _exchange(server, client)
    closes = [e for e in peer.events if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [1006]  # wsproto's stand-in: no frame was received


def test_fragmented_message_from_the_server_is_reassembled() -> None:
    async def server(peer: Peer) -> None:
        await peer.accept()
        await peer.send(
            BytesMessage(data=b"\x00\x01", message_finished=False),
            BytesMessage(data=b"\x02", message_finished=True),
            CloseConnection(code=4001, reason="bye"),
        )
        await _until_end(peer)

    async def client(ws: RawWebSocket) -> Any:
        await ws.handshake()
        return await ws.wait_closed(2)

    closed, _ = _exchange(server, client)
    assert (closed.code, closed.reason) == (4001, "bye")
    assert [(m.kind, m.data, m.frames) for m in closed.messages] == [("bytes", b"\x00\x01\x02", 2)]


def test_a_dropped_connection_reads_as_eof_not_as_a_close_frame() -> None:
    async def server(peer: Peer) -> None:
        await peer.accept()
        await peer.stream.aclose()

    async def client(ws: RawWebSocket) -> Any:
        await ws.handshake()
        return await ws.wait_closed(2)

    closed, _ = _exchange(server, client)
    assert closed.code is None
    assert "without a close frame" in closed.describe()
