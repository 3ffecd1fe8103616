"""A remote target: the probe app served where the user deployed it (``--asgi-url``).

The suite starts nothing, so it judges what needs no process of its own: every
check that sends requests to the one probe app.  A check that needs an instance
started another way (a root path, a legacy app, a client-certificate
configuration, the lifespan apps) or a signal to the server is ``unsupported``,
saying so.  What only the app can see still reaches the test: the deployed probe
app reports over TCP, to the address the user gave it in ``ASGI_CONFORMANCE_CHANNEL``
(``tcp://HOST:PORT``), where the suite listens (``--asgi-channel``).
"""

from __future__ import annotations

import signal
import time
import urllib.parse
from pathlib import Path

import anyio

from conformance._launcher import LaunchConfig, ServerProcess, ServerStartError
from conformance._profiles import Target
from conformance._sidechannel import SideChannel
from conformance._timing import units
from conformance._verdicts import Unsupported
from conformance.apps._channel import ENV_CHANNEL
from conformance.clients import Request, open_connection


__all__ = ["RemoteServer", "not_remote"]


def not_remote(target: Target, needs: str) -> None:
    """Mark the check ``unsupported`` on a remote target: it ``needs`` process control."""
    if target.remote:
        raise Unsupported(
            f"{target.name} is a remote target (--asgi-url): this check needs {needs}, "
            "which only a server the suite starts itself can give"
        )


class RemoteServer(ServerProcess):
    """The already-running server at the target's URL, in a server process's place."""

    def __init__(
        self, target: Target, channel: SideChannel, address: tuple[str, int], log_dir: Path
    ) -> None:
        super().__init__(target, LaunchConfig(), channel.path, log_dir)
        assert target.profile.url is not None
        parsed = urllib.parse.urlsplit(target.profile.url)
        self.host = parsed.hostname or ""
        self.port = parsed.port or 80
        self.command = [target.profile.url]
        self._side_channel = channel
        self._address = address
        self.channel_address = ""

    def start(self, boot_timeout: float | None = None) -> None:
        """Ready once the probe app answers and its observation reaches the suite."""
        began = time.monotonic()
        try:
            self.channel_address = self._side_channel.listen_tcp(self._address)
        except OSError as exc:
            host, port = self._address
            raise ServerStartError(
                f"cannot listen for the probe app's observations on {host}:{port} "
                f"(--asgi-channel): {exc.strerror}"
            ) from None
        deadline = began + (boot_timeout if boot_timeout is not None else units(5))
        why = "no attempt finished"
        while time.monotonic() < deadline:
            failure = anyio.run(self._probe_once, min(units(1), deadline - time.monotonic()))
            if failure is None:
                break
            why = failure
            time.sleep(0.05)
        else:
            raise ServerStartError(f"cannot reach {self.command[0]}: {why}")
        rid = f"remote-ready-{self.tag}"
        anyio.run(self._reported, rid)
        if not self._side_channel.wait_for(rid, "call", units(2)):
            raise ServerStartError(
                f"{self.command[0]} answered, but its probe app's observations never reached "
                f"the suite: serve conformance.apps.probe:app with "
                f"{ENV_CHANNEL}={self.channel_address} in its environment"
            )
        self.boot_seconds = time.monotonic() - began

    async def _reported(self, rid: str) -> None:
        connection = await open_connection("http/1.1", self.host, self.port, timeout=units(2))
        async with connection:
            request = Request(
                headers=[(b"x-probe", b"echo"), (b"x-probe-rid", rid.encode()),
                         (b"connection", b"close")]
            )  # fmt: skip
            await connection.exchange(request, timeout=units(2))

    @property
    def pid(self) -> int | None:
        return None

    def exit_status(self) -> int | None:
        return None  # what happens to the remote process is not the suite's to see

    def send_signal(self, sig: signal.Signals, *, group: bool = False) -> bool:
        not_remote(self.target, f"to send {sig.name} to the server")
        return False

    def wait_exit(self, timeout: float) -> int | None:
        return None

    def stop(self, grace: float | None = None) -> str:
        return ""  # the user's server is the user's to stop

    def log_size(self) -> int:
        return 0

    def log_since(self, offset: int, limit: int = 4000) -> str:
        return ""

    def log_tail(self, lines: int = 30) -> str:
        return ""  # a remote target's log is where it runs
