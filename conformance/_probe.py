"""What a check holds: the server under test, and a probe session for one check.

:class:`ServerUnderTest` owns every instance of one target (the main one, and
ones started on demand with another :class:`LaunchConfig`, such as a root path
or the legacy app) and stops them all when the target's checks are done.

:class:`Probe` is handed to each check.  It sends requests over a transport with
the probe headers added, fetches what the probe app observed through the side
channel, and keeps the evidence the matrix shows for the check.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread

from conformance import _boots
from conformance import _ws_steps as ws_steps
from conformance._batch import Batch
from conformance._evidence import elide_probe_headers
from conformance._launcher import LaunchConfig, ServerProcess, ServerStartError
from conformance._profiles import Target
from conformance._reproducer import Sent
from conformance._sidechannel import Observation, SideChannel
from conformance._steps import encode_script
from conformance._timing import units
from conformance._verdicts import ConformanceFailure, HarnessError, NotJudged, Refused, Unsupported
from conformance.clients import (
    ClientError,
    Connection,
    RawHTTP1Connection,
    Request,
    Response,
    Stream,
    Unreachable,
    open_connection,
    transport,
)
from conformance.clients._multiplexed import ENABLE_CONNECT_PROTOCOL, Tunnelling
from conformance.clients.tls import ClientCert
from conformance.clients.websocket import Handshake, RawWebSocket


__all__ = [
    "Exchange",
    "ListenerGone",
    "LiveExchange",
    "Probe",
    "ServerUnderTest",
    "WebSocketSession",
    "expect",
]

_rids = itertools.count(1)


class ServerUnderTest:
    """Every running instance of one target, by launch configuration."""

    def __init__(
        self,
        target: Target,
        channel: SideChannel,
        log_dir: Path,
        remote_channel: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.target = target
        #: Where a remote target's probe app reports (``--asgi-channel``).
        self.remote_channel = remote_channel
        self.channel = channel
        self.log_dir = log_dir
        self._instances: dict[str, ServerProcess] = {}
        self._failed: dict[str, ServerStartError] = {}
        self._batches: dict[str, Batch] = {}
        self._starting: dict[str, threading.Lock] = {}
        #: Instances stopped early by :meth:`retire`, and the thread stopping them.
        self._retired: dict[str, ServerProcess] = {}
        self._retiring: threading.Thread | None = None
        self._retire_reports: list[str] = []
        #: Why the main instance could not be started ("" once it is up): nothing of this
        #: target can be judged, and its checks say so once, not once each.
        self.unavailable = ""
        self.unavailable_told = False
        #: Instances that died during the run, and why (each then started anew).
        self._crashed: list[ServerProcess] = []
        self.crashes: list[str] = []
        #: The check that took a probe last: the one during which a crash happened.
        self.last_check = "start-up"
        #: Batches started against instances that have since died (joined at the stop).
        self._dropped: list[Batch] = []
        #: Stops of instances a scenario was done with, going on in the background.
        self._stopping: list[threading.Thread] = []
        # Checks start instances from their own loop; a batch (see batch()) from its thread.
        self._lock = threading.RLock()
        #: Whether the target opens a WebSocket by extended CONNECT, asked once (None: not yet).
        self.tunnels: TunnelOffer | None = None
        self.tunnels_lock = threading.Lock()

    @property
    def main(self) -> ServerProcess:
        return self.instance(LaunchConfig())

    def instance(self, config: LaunchConfig) -> ServerProcess:
        """The instance for ``config``, started on first use (a start failure is remembered).

        One lock per configuration: an instance that boots (a second or so for some
        servers) holds up only the checks that need that same instance.
        """
        with self._lock:
            starting = self._starting.setdefault(config.key, threading.Lock())
        if not starting.acquire(blocking=False):
            _boots.hurry(f"{self.target.name}|{config.key}")
            starting.acquire()
        try:
            return self._instance(config)
        finally:
            starting.release()

    def _instance(self, config: LaunchConfig) -> ServerProcess:
        with self._lock:
            if config.key in self._failed:
                raise self._failed[config.key]
            if config.key in self._instances:
                return self._instances[config.key]
            if config.key in self._retired:
                # Retired: no check left was to use it; its tag still names its reports.
                return self._retired[config.key]
        server = self._process(config)
        try:
            server.start()
        except ServerStartError as exc:
            tail = server.log_tail()
            told = f"\n--- server log tail ---\n{tail}" if tail.strip() else ""
            error = ServerStartError(f"{self.target.name}: {exc}{told}")
            with self._lock:
                self._failed[config.key] = error
            raise error from None
        with self._lock:
            self._instances[config.key] = server
        return server

    def _process(self, config: LaunchConfig) -> ServerProcess:
        if not self.target.remote:
            return ServerProcess(self.target, config, self.channel.path, self.log_dir)
        from conformance._remote import RemoteServer, not_remote

        if config != LaunchConfig():
            not_remote(self.target, f"an instance of its own ({config.describe()})")
        return RemoteServer(self.target, self.channel, self.remote_channel, self.log_dir)

    def instances(self) -> list[ServerProcess]:
        with self._lock:
            return list(self._instances.values())

    def batch(self, key: str, start: Callable[[], Batch]) -> Batch:
        """The batch of scenarios ``key`` for this target, started by ``start`` on first use."""
        with self._lock:
            if key not in self._batches:
                self._batches[key] = start()
            return self._batches[key]

    def started_batch(self, key: str) -> Batch | None:
        """The batch ``key`` if it was started, else None (never starts it)."""
        with self._lock:
            return self._batches.get(key)

    def crashed(self) -> str:
        """Why an instance is no longer serving ("" while all are), with its log tail.

        A process that exited, or one that lives on with a listener that stopped
        answering (a QUIC endpoint that died inside hypercorn): either way nothing
        after it can be judged against that instance, and the next check restarts it.
        """
        for server in self.instances():
            status = server.exit_status()
            if status is not None:
                return (
                    f"the server process (pid {server.pid}) exited with status {status} "
                    f"during the run\n--- server log tail ---\n{server.log_tail(20)}"
                )
            if server.listener_gone is not None:
                return f"{server.listener_gone}\n--- server log tail ---\n{server.log_tail(20)}"
        return ""

    @property
    def restarts(self) -> int:
        return len(self.crashes)

    def restart(self, during: str) -> None:
        """Forget every instance that has died: the next check that needs one boots it anew.

        The crash was the finding of the check ``during`` which it happened (that check
        is ``error``, naming the exit status and the log tail); the checks after it are
        still judged, against a fresh process, and the column records the restart.
        """
        with self._lock:
            # What ran ahead, or in a scenario batch, may have met the dead process: the
            # checks still to come run their scenarios again, against the new one.
            self._dropped.extend(self._batches.values())
            self._batches.clear()
            # An instance of a scenario's own is forgotten too: its scenario runs again,
            # and what it did to that instance the first time must not meet it again.
            dead = {
                k: s
                for k, s in self._instances.items()
                if s.exit_status() is not None or s.listener_gone is not None or s.config.own
            }
            for key, server in dead.items():
                del self._instances[key]
                self._crashed.append(server)  # stopped with the rest, if it still runs
                which = "main" if server.config == LaunchConfig() else server.config.key
                status = server.exit_status()
                if status is None and server.listener_gone is None:
                    continue  # an own instance that still serves: stopped, not a crash
                what = (
                    "its listener stopped answering"
                    if status is None
                    else f"exited with status {status}"
                )
                self.crashes.append(
                    f"{self.target.name} ({which} instance) {what} during {during}; restarted"
                )

    def retire(self, standalone: Collection[str] = ()) -> None:
        """Stop every instance now, in the background: the checks left need none of them.

        Called when the rest of the target's run is in ``standalone`` modules, whose
        checks use instances of their own (the lifespan checks): the shared instances'
        graceful shutdowns then overlap with those checks' watches instead of following
        them.  Batches of the other modules end first; a stop that needed SIGKILL is
        still reported by :meth:`stop`.
        """
        with self._lock:
            if self._retiring is not None:
                return
            batches = [
                batch
                for key, batch in self._batches.items()
                if key.partition("::")[0] not in standalone
            ]
            self._retiring = threading.Thread(
                target=self._retire, args=(batches,), name="asgi-retire", daemon=True
            )
        self._retiring.start()

    def _retire(self, batches: list[Batch]) -> None:
        for batch in batches:
            batch.join()
        with self._lock:
            servers = list(self._instances.values())
            self._retired.update(self._instances)
            self._instances.clear()
        self._retire_reports.extend(_stop_all(servers))

    def stop_later(self, process: ServerProcess, grace: float) -> None:
        """Stop ``process`` in the background; :meth:`stop` waits for it to be reaped.

        A lifespan scenario has its outcome once it has watched its instance; the
        instance's stop (a graceful shutdown, or the grace period before SIGKILL) is
        no part of it, and a check waiting for that outcome need not wait for it.
        """
        thread = threading.Thread(target=process.stop, args=(grace,), name="asgi-stop", daemon=True)
        with self._lock:
            self._stopping.append(thread)
        thread.start()

    def every_instance(self) -> list[ServerProcess]:
        """The running instances and those :meth:`retire` stopped, in the order they started."""
        with self._lock:
            return [*self._crashed, *self._retired.values(), *self._instances.values()]

    def stop(self) -> list[str]:
        """Stop every instance at once: graceful shutdowns overlap instead of adding up."""
        # A batch still talking to an instance ends first (its waits are all bounded).
        with self._lock:
            batches = [*self._dropped, *self._batches.values()]
        for batch in batches:
            batch.join()
        with self._lock:
            self._batches.clear()
            servers = [*self._crashed, *self._instances.values()]  # the dead are reaped too
            self._instances.clear()
            self._crashed.clear()
            retiring = self._retiring
        reports = _stop_all(servers)
        if retiring is not None:
            retiring.join()
        with self._lock:
            stopping, self._stopping = self._stopping, []
        for thread in stopping:
            thread.join()
        return [*self._retire_reports, *reports]


def _stop_all(servers: Sequence[ServerProcess]) -> list[str]:
    """Stop ``servers`` at once, each in a thread; what each stop took."""
    reports = [""] * len(servers)

    def stop_one(index: int) -> None:
        reports[index] = servers[index].stop(grace=units(3))

    threads = [threading.Thread(target=stop_one, args=(i,)) for i in range(len(servers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reports


@dataclass
class Exchange:
    """One request sent through the probe, and how to get what the app saw."""

    rid: str
    request: Request
    response: Response
    channel: SideChannel
    #: Why the server may refuse this request without breaking the spec ("" if it may not).
    refusable: str = ""

    def refused(self) -> None:
        """Raise :class:`Refused` if the spec lets the server refuse this request and it did."""
        refusal(self.channel, self.rid, self.request, self.response.status, self.refusable)

    def observations(
        self, kind: str, count: int = 1, timeout: float | None = None
    ) -> list[Observation]:
        return self.channel.wait_for(
            self.rid, kind, units(5) if timeout is None else timeout, count
        )

    def timeline(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """What a scripted app did, step by step; a failure if it never reported."""
        records = self.observations("script", timeout=timeout)
        if not records:
            raise ConformanceFailure(
                f"the probe app never finished its script for {describe_request(self.request)}; "
                f"the server answered {self.response.status}"
            )
        timeline: list[dict[str, Any]] = records[0]["timeline"]
        return timeline

    def app_scope(self) -> dict[str, Any]:
        """The scope the app was called with; a failure if the app was never called."""
        calls = self.observations("call")
        if not calls:
            self.refused()
            raise ConformanceFailure(
                f"the probe app was never called for {describe_request(self.request)}; "
                f"the server answered {self.response.status} {self.response.body[:200]!r}"
            )
        scope: dict[str, Any] = calls[0]["scope"]
        return scope


def refusal(channel: SideChannel, rid: str, request: Request, status: int, reason: str) -> None:
    """Raise :class:`Refused` when the server answered ``status`` >= 400 without calling the
    app, for a request the spec does not oblige it to accept (``reason`` says why; "" means
    it must accept, and nothing is raised): nothing was learnt about the rule."""
    # The app's report travels apart from the response: a moment for it, on this path only.
    if reason and status >= 400 and not channel.wait_for(rid, "call", units(1), 1):
        raise Refused(
            f"the server refused {describe_request(request)} with {status} "
            f"before the app was called; {reason}"
        )


#: The response of an exchange whose response the check has not read (yet).
UNREAD = Response(status=0, headers=[], body=b"", http_version="")


@dataclass
class LiveExchange:
    """One request on a connection of the check's own, driven step by step, on any wire.

    The check sends the body in pieces, reads part of the response, resets the
    stream or leaves the connection; the same steps mean the same thing over
    HTTP/1.1 (bytes on a socket) and HTTP/2 (frames of one stream).  Leaving the
    ``async with`` block closes the connection.
    """

    rid: str
    request: Request
    connection: Connection
    stream: Stream
    channel: SideChannel
    response: Response = UNREAD

    async def __aenter__(self) -> LiveExchange:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.aclose()

    async def send_body(self, data: bytes, *, end: bool = False) -> None:
        await self.stream.send_body(data, end=end)

    async def read_until(self, marker: bytes, *, timeout: float) -> bytes:
        """Read until ``marker`` is in the response (its body on HTTP/2); what came so far."""
        return await self.stream.read_until(marker, timeout=timeout)

    async def read_bytes(self, count: int, *, timeout: float) -> int:
        """Read until ``count`` bytes of the response have arrived; how many there are."""
        return await self.stream.read_bytes(count, timeout=timeout)

    async def read_response(self, *, timeout: float | None = None) -> Response:
        self.response = await self.stream.read_response(
            timeout=units(5) if timeout is None else timeout
        )
        return self.response

    async def reset(self) -> None:
        """Give up on this request: RST_STREAM on HTTP/2, closing the connection on HTTP/1.1."""
        await self.stream.reset()

    async def leave(self) -> None:
        """Close the whole connection, as a client that goes away does."""
        await self.connection.aclose()

    @property
    def exchange(self) -> Exchange:
        """The exchange as a finished one: its response (once read) and the app's reports."""
        return Exchange(self.rid, self.request, self.response, self.channel)

    async def timeline(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """What the scripted app did, without blocking the event loop."""
        return await anyio.to_thread.run_sync(self.exchange.timeline, timeout)

    async def app_scope(self) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(self.exchange.app_scope)

    async def observations(self, kind: str, timeout: float, count: int = 1) -> list[Observation]:
        return await anyio.to_thread.run_sync(self.channel.wait_for, self.rid, kind, timeout, count)


@dataclass(frozen=True)
class TunnelOffer:
    """Whether a target's SETTINGS offer extended CONNECT, and "" if it opens a WebSocket by it
    (else why not, or why it is not offered)."""

    offered: bool
    why: str = ""


async def _no_extended_connect(connection: Tunnelling, timeout: float) -> str:
    """ "" when the server's SETTINGS offer extended CONNECT (RFC 8441 section 3); else why not."""
    try:
        settings = await connection.settings(timeout=timeout)
    except ClientError as exc:
        return f"no SETTINGS ({str(exc)[:300]})"
    if settings is None:
        return f"no SETTINGS within {timeout:.1f}s"
    if settings.get(ENABLE_CONNECT_PROTOCOL) != 1:
        return "SETTINGS without SETTINGS_ENABLE_CONNECT_PROTOCOL"
    return ""


@dataclass
class WebSocketSession:
    """One WebSocket connection to the probe app, and how to get what the app saw.

    The client stays the check's to drive (send, close, drop); leaving the ``async
    with`` block drops the TCP connection if the check has not ended it.
    """

    rid: str
    client: RawWebSocket
    #: The server's answer to the upgrade (None when the check reads it itself).
    handshake: Handshake | None
    channel: SideChannel

    async def __aenter__(self) -> WebSocketSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    async def observations(self, kind: str, timeout: float, count: int = 1) -> list[Observation]:
        """The app's reports of ``kind`` (none if the bound passes), without blocking the loop."""
        return await anyio.to_thread.run_sync(self.channel.wait_for, self.rid, kind, timeout, count)

    async def timeline(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """What the scripted app did, step by step; a failure if it never reported."""
        bound = units(5) if timeout is None else timeout
        found = await self.observations("script", bound)
        if not found:
            raise ConformanceFailure(
                f"the WebSocket probe app never finished its script within {bound:.1f}s; "
                f"client transcript: {self.evidence()}"
            )
        timeline: list[dict[str, Any]] = found[0]["timeline"]
        return timeline

    async def app_scope(self, timeout: float | None = None) -> dict[str, Any]:
        """The scope the app was called with; a failure if the app was never called."""
        calls = await self.observations("call", units(3) if timeout is None else timeout)
        if not calls:
            raise ConformanceFailure(
                f"the probe app was never called for the WebSocket handshake; "
                f"client transcript: {self.evidence()}"
            )
        scope: dict[str, Any] = calls[0]["scope"]
        return scope

    def evidence(self, limit: int = 12) -> str:
        """The client's transcript (its last lines), for a failure report."""
        lines = self.client.transcript[-limit:]
        return " | ".join(lines) if lines else "(nothing exchanged)"


@dataclass
class Probe:
    """A check's handle on the server: requests in, observations and evidence out."""

    server: ServerUnderTest
    notes: list[str] = field(default_factory=list)
    log_offsets: dict[int, int] = field(default_factory=dict)
    #: The requests this check sent through :meth:`send`, as wire evidence.
    exchanges: list[Exchange] = field(default_factory=list)
    #: Everything the check sent, in order, for a failing cell's reproducer.
    sent: list[Sent] = field(default_factory=list)
    #: The request ids this check made: its own entries of the server log name them.
    rids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for instance in self.server.instances():
            if instance.pid is not None:
                self.log_offsets[instance.pid] = instance.log_size()

    @property
    def target(self) -> Target:
        return self.server.target

    def new_rid(self) -> str:
        rid = f"{os.getpid()}-{next(_rids)}"
        self.rids.append(rid)
        return rid

    def observe(self, note: str) -> None:
        """Record evidence for the matrix's ``detail`` (what was seen when the check passed)."""
        self.notes.append(note)

    def instance(self, config: LaunchConfig | None = None) -> ServerProcess:
        server = self.server.instance(config or LaunchConfig())
        if server.pid is not None:
            self.log_offsets.setdefault(server.pid, 0)
        return server

    @property
    def wire(self) -> str:
        """What this column's client speaks: ``http/1.1`` or ``h2``."""
        return self.target.wire

    async def open(
        self,
        config: LaunchConfig | None = None,
        *,
        timeout: float | None = None,
        client_cert: ClientCert = None,
    ) -> Connection:
        """A connection of the check's own in the column's protocol, to the instance for ``config``.

        For checks that need more than one request and response: a body sent in
        pieces, a response read piecemeal, a client that leaves mid-exchange,
        several requests on one connection.  The same check runs on every column.
        """
        # Starting an instance blocks while it boots: keep the event loop free.
        server = await anyio.to_thread.run_sync(self.instance, config)
        bound = units(5) if timeout is None else timeout
        try:
            connection = await open_connection(
                self.wire,
                server.host,
                server.port_for(self.wire),
                timeout=bound,
                tls=server.client_tls(client_cert=client_cert),
            )
        except (Unreachable, ConnectionRefusedError) as exc:
            await _listener_lost(server, self.wire, exc)
            raise
        if isinstance(connection, RawHTTP1Connection):
            self.sent.append(Sent(self.wire, raw=lambda: bytes(connection.sent)))
        elif isinstance(opened := getattr(connection, "requests", None), list):
            self.sent.append(Sent(self.wire, requests=lambda: opened))
        return connection

    async def begin(
        self,
        *,
        method: bytes = b"GET",
        target: bytes = b"/",
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        end: bool = True,
        behaviour: str = "echo",
        args: Mapping[str, str] | None = None,
        script: Sequence[dict[str, Any]] | None = None,
        config: LaunchConfig | None = None,
        timeout: float | None = None,
        client_cert: ClientCert = None,
        rid: str | None = None,
    ) -> LiveExchange:
        """Start one request on a new connection in the column's protocol; the check drives the rest.

        The probe headers go first, then ``headers``; with ``end`` False the body is
        still open (:meth:`LiveExchange.send_body`).  ``rid`` is one the check took
        from :meth:`new_rid` for a script that names it.
        """
        if script is not None:
            behaviour = "script"
            args = {**(args or {}), "script": encode_script(script)}
        rid = rid or self.new_rid()
        request = Request(
            method=method,
            target=target,
            headers=[*self.probe_headers(rid, behaviour, args), *headers],
            body=body,
        )
        connection = await self.open(config, timeout=timeout, client_cert=client_cert)
        try:
            stream = await connection.start(request, end=end)
        except BaseException:
            await connection.aclose()
            raise
        return LiveExchange(rid, request, connection, stream, self.server.channel)

    async def connect(
        self, config: LaunchConfig | None = None, *, timeout: float | None = None
    ) -> RawHTTP1Connection:
        """A raw HTTP/1.x connection of the check's own, to the instance for ``config``.

        For checks of HTTP/1 wire behaviour (exact request bytes, pipelining, keep-alive),
        which run only on HTTP/1.1 columns (their requirements say ``protocol = "http/1"``).
        """
        if self.wire != "http/1.1":
            raise HarnessError(
                f"a check of HTTP/1 wire behaviour ran on {self.target.name}, an {self.wire} column"
            )
        # Starting an instance blocks while it boots: keep the event loop free.
        server = await anyio.to_thread.run_sync(self.instance, config)
        bound = units(5) if timeout is None else timeout
        connection = await RawHTTP1Connection.open(
            server.host, server.port, timeout=bound, tls=server.client_tls()
        )
        self.sent.append(Sent("http/1.1", raw=lambda: bytes(connection.sent)))
        return connection

    async def websocket(
        self,
        script: Sequence[dict[str, Any]] | None = None,
        *,
        target: str = "/",
        headers: Sequence[tuple[bytes, bytes]] = (),
        subprotocols: Sequence[str] = (),
        deflate: bool = False,
        read_handshake: bool = True,
        config: LaunchConfig | None = None,
        timeout: float | None = None,
        early: bytes = b"",
    ) -> WebSocketSession:
        """Open a WebSocket to the probe app carrying ``script`` (conformance/_ws_steps.py).

        The probe headers go first in the upgrade request, then ``headers`` as given.
        With ``read_handshake`` the server's answer is read (101 or a refusal) before
        the session is returned; otherwise only the request is written.  ``early``
        bytes (frames) go in the same write, before any answer.
        """
        rid = self.new_rid()
        bound = units(5) if timeout is None else timeout
        args = {"script": encode_script(script)} if script is not None else None
        probe = self.probe_headers(rid, "websocket", args)
        if self.wire == "http/1.1":
            server = await anyio.to_thread.run_sync(self.instance, config)
            client = await RawWebSocket.open(
                server.host, server.port, timeout=bound, tls=server.client_tls(wire="http/1.1")
            )
        else:
            client = await self._tunnel(config, bound)
        # The handshake as written (the upgrade's bytes, or the CONNECT's fields), then frames.
        self.sent.append(
            Sent(
                "websocket" if self.wire == "http/1.1" else self.wire,
                raw=lambda: client.handshake_request,
                frames=lambda: [t for t in client.transcript[1:] if t.startswith(">")],
            )
        )
        session = WebSocketSession(rid, client, None, self.server.channel)
        try:
            await client.send_handshake(
                target=target,
                headers=[*probe, *headers],
                subprotocols=list(subprotocols),
                deflate=deflate,
                then=early,
            )
            if read_handshake:
                session.handshake = await client.read_handshake(bound)
        except BaseException:
            await client.abort()
            raise
        return session

    async def _tunnel(self, config: LaunchConfig | None, bound: float) -> RawWebSocket:
        """A WebSocket to open by extended CONNECT on a connection of the column's own
        (RFC 8441 over HTTP/2, RFC 9220 over HTTP/3).

        A server offers it in its SETTINGS (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1); one
        that does not has no WebSocket on this column: the check is unsupported there.
        One that offers it but does not open a WebSocket by it fails
        ``h2.websocket.extended-connect`` (``h3.``), and the other WebSocket rows are
        not judged: whether it does is asked once per target, before any of them.
        """
        offer = await self._tunnel_offer()
        rfc = "RFC 8441" if self.wire == "h2" else "RFC 9220"
        if not offer.offered:
            raise Unsupported(
                f"{self.target.name} offers no WebSocket over {self.wire}: {offer.why} "
                f"({rfc} section 3)"
            )
        if offer.why:
            why = (
                f"{self.target.name} offers extended CONNECT in its SETTINGS but opened no "
                f"WebSocket by it ({offer.why})"
            )
            if self.wire == "h3":
                raise NotJudged(why, "h3.websocket.extended-connect")
            raise NotJudged(why, "h2.websocket.extended-connect")
        connection = cast(Tunnelling, await self.open(config, timeout=bound))
        return RawWebSocket.over(connection, timeout=bound)

    async def _tunnel_offer(self) -> TunnelOffer:
        """Once per target (checks on other threads wait for the first one's answer).

        The lock is taken shielded, so that a check cancelled while it waits cannot leave it
        held, and within a bound longer than one question takes (open 5, SETTINGS 3,
        answer 3 units).
        """
        server, bound = self.server, units(15)
        with anyio.CancelScope(shield=True):
            taken = await anyio.to_thread.run_sync(server.tunnels_lock.acquire, True, bound)
        if not taken:
            raise HarnessError(
                f"another check's question whether {self.target.name} opens WebSockets by "
                f"extended CONNECT did not end within {bound:.1f}s"
            )
        try:
            if server.tunnels is None:
                server.tunnels = await self._ask_for_a_tunnel()
            return server.tunnels
        finally:
            server.tunnels_lock.release()

    async def _ask_for_a_tunnel(self) -> TunnelOffer:
        """Read the server's SETTINGS, then open one WebSocket to an app that accepts at once."""
        connection = cast(Tunnelling, await self.open(timeout=units(5)))
        client = RawWebSocket.over(connection, timeout=units(3))
        try:
            not_offered = await _no_extended_connect(connection, units(3))
            if not_offered:
                return TunnelOffer(False, not_offered)
            script = encode_script([ws_steps.connect(), ws_steps.accept(), ws_steps.close()])
            rid = self.new_rid()
            await client.send_handshake(
                headers=self.probe_headers(rid, "websocket", {"script": script})
            )
            answer = await client.read_handshake(units(3))
        except ClientError as exc:
            return TunnelOffer(True, str(exc)[:300])
        finally:
            await client.aclose()
        return TunnelOffer(True, "" if answer.accepted else f"it answered {answer.status}")

    def probe_headers(
        self, rid: str, behaviour: str, args: Mapping[str, str] | None = None
    ) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-probe", behaviour.encode()), (b"x-probe-rid", rid.encode())]
        for name, value in (args or {}).items():
            headers.append((b"x-probe-" + name.encode(), value.encode()))
        return headers

    async def send(
        self,
        *,
        method: bytes = b"GET",
        target: bytes = b"/",
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        http_version: str = "1.1",
        behaviour: str = "echo",
        args: Mapping[str, str] | None = None,
        script: Sequence[dict[str, Any]] | None = None,
        via: str | None = None,
        config: LaunchConfig | None = None,
        timeout: float | None = None,
        client_cert: ClientCert = None,
        rid: str | None = None,
        may_refuse: str = "",
    ) -> Exchange:
        """Send one request with the probe headers first, then ``headers`` as given.

        It goes over the column's protocol unless ``via`` names another transport.
        ``may_refuse`` says why the spec lets the server refuse this request: an error
        status without the app then marks the check's cell refused, never failed.
        """
        if script is not None:
            behaviour = "script"
            args = {**(args or {}), "script": encode_script(script)}
        rid = rid or self.new_rid()
        # Starting an instance blocks while it boots: keep the event loop free.
        server = await anyio.to_thread.run_sync(self.instance, config)
        request = Request(
            method=method,
            target=target,
            headers=[*self.probe_headers(rid, behaviour, args), *headers],
            body=body,
            http_version=http_version,
        )
        tls = server.client_tls(client_cert=client_cert)
        self.sent.append(Sent(via or self.wire, request))
        wire = via or self.wire
        try:
            response = await transport(wire, server.host, server.port_for(wire), tls=tls).request(
                request, timeout=units(5) if timeout is None else timeout
            )
        except (Unreachable, ConnectionRefusedError) as exc:
            await _listener_lost(server, wire, exc)
            raise
        exchange = Exchange(rid, request, response, self.server.channel, may_refuse)
        self.exchanges.append(exchange)
        return exchange

    def wire_evidence(self, last: int = 3, limit: int = 600) -> str:
        """The bytes of the last exchanges, escaped, probe headers elided, for a failure report."""
        lines = []
        for exchange in self.exchanges[-last:]:
            sent = elide_probe_headers(exchange.response.sent or exchange.request.target)
            lines.append(f"> {_clip(sent, limit)}")
            received = exchange.response.received or (
                b"%d %s" % (exchange.response.status, exchange.response.body[:200])
            )
            lines.append(f"< {_clip(received, limit)}")
        return "\n".join(lines)

    async def scope_of(self, **kwargs: Any) -> dict[str, Any]:
        """Send a request and return the scope the app saw for it.

        A scope check judges the scope alone: a response the client could not use (a
        body on a HEAD answer that breaks the HTTP/2 framing) is another row's
        failure, and is only noted here.
        """
        rid = self.new_rid()
        try:
            exchange = await self.send(rid=rid, **kwargs)
        except ClientError as exc:
            # The client gave up after its own bound: a call the server made is reported
            # by now, or on its way; a short bound catches that, not another full wait.
            calls = await anyio.to_thread.run_sync(
                self.server.channel.wait_for, rid, "call", units(0.5), 1
            )
            if not calls:
                if kwargs.get("may_refuse"):
                    raise Refused(
                        f"the server ended the request without an answer ({str(exc)[:120]}) "
                        f"and the app was never called; {kwargs['may_refuse']}"
                    ) from None
                raise
            self.observe(f"the response was not usable ({str(exc)[:120]}); the scope was judged")
            scope: dict[str, Any] = calls[0]["scope"]
            return scope
        return exchange.app_scope()

    def require_offer(self, feature: str) -> None:
        """Mark the check ``unsupported`` unless the profile claims ``feature``."""
        if feature == "root_path":
            from conformance._remote import not_remote

            not_remote(self.target, "an instance started with a root path")
        if not self.target.profile.offers(feature):
            raise Unsupported(self.target.profile.not_offered(feature, self.target.name))


def _clip(data: bytes, limit: int) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + "…"


def describe_request(request: Request) -> str:
    return f"{request.method.decode('latin-1')} {request.target!r} HTTP/{request.http_version}"


def expect(ok: bool, *, sent: str, expected: str, observed: str) -> None:
    """Raise a :class:`ConformanceFailure` that says what was sent, expected and observed."""
    __tracebackhide__ = True
    if not ok:
        raise ConformanceFailure(f"sent {sent}; expected {expected}; observed {observed}")


class ListenerGone(HarnessError):
    """A ready instance's listener stopped answering while its process lives."""


async def _listener_lost(server: ServerProcess, wire: str, exc: BaseException) -> None:
    """Raise :class:`ListenerGone` when ``server``'s listener no longer answers at all.

    The instance answered its readiness request, so a listener that answers no new
    connection was broken by what happened since (hypercorn's QUIC endpoint after
    some stream events, while its process and TCP listener live on): that check's
    cell is an ``error`` naming it, never a failure of whatever requirement came
    next, and the next check gets a fresh instance (:meth:`ServerUnderTest.restart`).
    A listener that answers a second attempt was busy, not gone: the check's own
    failure stands (hypercorn's endpoint handles one event at a time, so one slow
    stream holds up every connection's handshake).
    """
    if server.target.remote or server.exit_status() is not None:
        return
    try:
        connection = await open_connection(
            wire, server.host, server.port_for(wire), timeout=units(3), tls=server.client_tls()
        )
    except (Unreachable, ConnectionRefusedError):
        pass
    else:
        await connection.aclose()
        return
    server.listener_gone = (
        f"the server process (pid {server.pid}) lives, but its {wire} listener at "
        f"{server.host}:{server.port_for(wire)} stopped answering during the run ({exc})"
    )
    raise ListenerGone(server.listener_gone) from exc
