"""Server instances of one lifespan check each (lifespan.rst).

Lifespan checks watch a server start and stop, so none of them can use the
target's main instance: each starts an instance of its own with a purpose-built
probe app (:mod:`conformance.apps.lifespan`), possibly without waiting for it to
be ready (a server whose startup is pending is probed while it is pending; one
whose startup fails never becomes ready), sends it SIGTERM or SIGINT, waits
(bounded) for its exit status and reads its output.

Whether a target runs lifespan at all is decided once, from observation: the
main probe app reports a lifespan scope when it gets one
(:func:`conformance.apps.probe._plain_lifespan`), so a server that never called
the app with one (daphne) gets ``unsupported`` on every lifespan row with one
reason, whatever its profile says, and a server given by a command template is
tested when it does run lifespan.

Every instance is stopped when its ``async with`` block ends, however it ends.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from conformance._launcher import LaunchConfig, ServerProcess, ServerStartError
from conformance._probe import Probe, ServerUnderTest
from conformance._reproducer import Sent
from conformance._sidechannel import Observation
from conformance._timing import units
from conformance._verdicts import HarnessError, Unsupported
from conformance.clients import ClientError, Request, Response, transport
from conformance.clients.websocket import RawWebSocket


__all__ = ["Instance", "bucket", "describe_exit", "lifespan_instance", "require_lifespan"]

APPS = "conformance.apps.lifespan"

_support: weakref.WeakKeyDictionary[ServerUnderTest, str] = weakref.WeakKeyDictionary()
_support_lock = threading.Lock()


def _decide(server: ServerUnderTest) -> str:
    """ "" when the target runs lifespan, else the one reason every lifespan row gives."""
    if server.target.remote:
        # Its lifespan ran once, before the suite came; the rows need instances of their own.
        return (
            f"{server.target.name} is a remote target (--asgi-url): the lifespan checks need "
            "instances of their own, which only a server the suite starts itself can give"
        )
    main = server.main
    seen = server.channel.wait_for(f"lifespan:{main.tag}", "plain", units(1))
    if seen:
        return ""
    return (
        f"{server.target.name} never called the app with a lifespan scope: "
        "it does not implement lifespan"
    )


async def require_lifespan(probe: Probe) -> None:
    """Raise :class:`Unsupported` unless the target runs lifespan (decided once per target)."""

    def decide() -> str:
        with _support_lock:
            if probe.server not in _support:
                _support[probe.server] = _decide(probe.server)
            return _support[probe.server]

    reason = await anyio.to_thread.run_sync(decide)
    if reason:
        raise Unsupported(reason)


@dataclass
class Instance:
    """A server instance serving one lifespan probe app, and what its app reported."""

    server: ServerUnderTest
    process: ServerProcess
    #: When each signal was sent (monotonic, the clock the app's reports use too).
    signalled: dict[str, float] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.process.tag

    @property
    def rid(self) -> str:
        """The request id the lifespan half of the app reports under."""
        return f"lifespan:{self.tag}"

    async def launch(self) -> None:
        await anyio.to_thread.run_sync(self.process.launch)

    async def wait_ready(self, timeout: float) -> str:
        """ "" once the probe app answers a request; else why not (the instance is then stopped)."""
        try:
            await anyio.to_thread.run_sync(self.process.wait_ready, timeout)
        except ServerStartError as exc:
            return str(exc)
        return ""

    async def reports(
        self, kind: str, timeout: float, count: int = 1, rid: str | None = None
    ) -> list[Observation]:
        """Up to ``count`` reports of ``kind`` (of the lifespan half unless ``rid``), bounded."""
        return await anyio.to_thread.run_sync(
            self.server.channel.wait_for, rid or self.rid, kind, timeout, count
        )

    def reported(self, kind: str, rid: str | None = None) -> list[Observation]:
        """The reports of ``kind`` so far, without waiting."""
        return [r for r in self.server.channel.records(rid or self.rid) if r.get("kind") == kind]

    def release(self, flag: str) -> None:
        """Let the app go on past ``flag`` (``startup``, ``shutdown``, ``release``)."""
        self.server.channel.set_flag(f"{self.tag}:{flag}")

    async def request(self, rid: str, behaviour: bytes = b"", *, timeout: float) -> Response | str:
        """One GET to the app; the response, or what went wrong as text."""
        headers = [(b"x-probe", b"echo"), (b"x-probe-rid", rid.encode())]
        if behaviour:
            headers.append((b"x-lifespan", behaviour))
        request = Request(headers=[*headers, (b"connection", b"close")])
        process = self.process
        wire = process.target.wire
        client = transport(wire, process.host, process.port_for(wire), tls=process.client_tls())
        try:
            return await client.request(request, timeout=timeout)
        except (ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def websocket(self, rid: str, *, timeout: float) -> str:
        """Open a WebSocket asking for the state report; "" once answered, else what went wrong."""
        try:
            async with await RawWebSocket.open(
                self.process.host,
                self.process.port,
                timeout=timeout,
                tls=self.process.client_tls(wire="http/1.1"),
            ) as client:
                answer = await client.handshake(
                    timeout, headers=[(b"x-probe-rid", rid.encode()), (b"x-lifespan", b"state")]
                )
                return "" if answer.accepted else f"the upgrade was answered {answer.status}"
        except (ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def signal(self, sig: signal.Signals) -> float:
        """Stop the instance the way it is stopped in real life; the moment the signal was sent.

        SIGINT goes to the whole process group, as a terminal's Ctrl-C sends it;
        SIGTERM to the main process only, as a supervisor (docker stop, Kubernetes,
        ``kill PID``) sends it.  A server with worker processes must pass it on
        itself: hypercorn's workers ignore SIGINT for that reason and leave SIGTERM
        at its default, so a SIGTERM to the whole group would kill them outright.
        """
        now = time.monotonic()
        self.signalled[sig.name] = now
        self.process.send_signal(sig, group=sig is signal.SIGINT)
        return now

    async def wait_exit(self, timeout: float) -> int | None:
        return await anyio.to_thread.run_sync(self.process.wait_exit, timeout)

    async def kill(self) -> None:
        """End an instance that was watched long enough: no grace, it has had its signal."""
        await anyio.to_thread.run_sync(self.process.stop, 0)

    def running(self) -> bool:
        return self.process.pid is not None and self.process.exit_status() is None

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.process.log_since(0, limit=200_000)

    def evidence(self, lines: int = 15) -> str:
        return f"--- server log tail ---\n{self.process.log_tail(lines)}"


@asynccontextmanager
async def lifespan_instance(
    probe: Probe, app: str, *, ready: bool = True
) -> AsyncIterator[Instance]:
    """An instance serving ``conformance.apps.lifespan:<app>``, stopped when the block ends.

    With ``ready`` the block starts once the probe app answers (an instance that
    never does is a harness error: the check cannot judge what it never saw).
    """
    from conformance._remote import not_remote

    not_remote(probe.target, f"an instance of its own serving the lifespan app {app}")
    process = ServerProcess(
        probe.target,
        LaunchConfig(app=f"{APPS}:{app}"),
        probe.server.channel.path,
        probe.server.log_dir,
    )
    instance = Instance(probe.server, process)
    probe.sent.append(Sent("lifespan", lifespan_app=app))
    try:
        await instance.launch()
        if ready:
            why = await instance.wait_ready(units(20))
            if why:
                raise HarnessError(
                    f"{probe.target.name} serving {app}: {why}\n{instance.evidence()}"
                )
        else:
            # Booted once the server has called the app: the scenario's watch starts there.
            await instance.reports("call", units(3))
            process.booted()
        yield instance
    finally:
        # The scenario's outcome is known; the stop goes on beside what follows (a
        # graceful shutdown can take the grace unit) and the target's stop reaps it.
        probe.server.stop_later(process, units(1))


def bucket(seconds: float) -> str:
    """A duration in whole time units, for a detail that must read the same on every run."""
    count = round(seconds / units(1))
    if count == 0:
        return "under half a unit"
    return "about 1 unit" if count == 1 else f"about {count} units"


def describe_exit(status: int | None) -> str:
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"ended by {signal.Signals(-status).name}"
        except ValueError:
            return f"ended by signal {-status}"
    return f"exited with status {status}"
