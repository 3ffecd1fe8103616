"""Starting, watching and always reaping the server under test.

* The server runs in its own process group (``start_new_session``), so that
  stopping it stops its workers, reloaders and resource trackers too.
* The port is race-free where the server allows: the suite binds a listening
  socket on loopback and passes its descriptor (``{fd}``); otherwise it picks a
  free port and retries when the server reports the address in use.
* Readiness is a real HTTP request answered by the probe app, not a TCP connect:
  a server that accepts connections before its app is loaded is not ready.
* Stopping is SIGTERM to the group, then SIGKILL to the group after a grace
  period.  Every started process is registered, and an ``atexit`` hook (plus the
  plugin's unconfigure) reaps whatever is left, also after Ctrl-C.
* Output goes to a file whose tail is attached to the checks that fail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from conformance._profiles import Target
from conformance._timing import units
from conformance._verdicts import HarnessError
from conformance.apps._channel import ENV_CHANNEL
from conformance.clients import ClientError, RawHTTP1Connection, Request


__all__ = ["LaunchConfig", "ServerProcess", "ServerStartError", "reap_all"]

PROBE_APP = "conformance.apps.probe:app"
LEGACY_APP = "conformance.apps.probe:LegacyApp"
HOST = "127.0.0.1"
_ADDRESS_IN_USE = ("address already in use", "errno 98", "address in use")
_PORT_RETRIES = 3


class ServerStartError(HarnessError):
    """The server exited early, never answered, or could not be bound."""


@dataclass(frozen=True)
class LaunchConfig:
    """What a server instance is started with, beyond its profile."""

    app: str = PROBE_APP
    root_path: str | None = None
    #: Start with the profile's legacy (ASGI 2) switch, if it has one.
    legacy: bool = False

    @property
    def key(self) -> str:
        return f"{self.app}|{self.root_path}|{self.legacy}"


_live: dict[int, ServerProcess] = {}
_live_lock = threading.Lock()


def reap_all() -> None:
    """Kill every server process group this process started and has not yet stopped."""
    with _live_lock:
        servers = list(_live.values())
    for server in servers:
        server.stop(grace=0.5)


atexit.register(reap_all)


def _kill_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ServerProcess:
    """One running instance of a target, started with one :class:`LaunchConfig`."""

    def __init__(self, target: Target, config: LaunchConfig, channel: str, log_dir: Path) -> None:
        self.target = target
        self.config = config
        self.channel = channel
        self.host = HOST
        self.port = 0
        self.command: list[str] = []
        safe = target.name.replace(":", "-").replace("/", "-")
        self.log_path = log_dir / f"{safe}-{abs(hash(config.key)) % 10**8}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.stop_report = ""
        #: Seconds from spawning to the first answer of the probe app (the benchmark reads it).
        self.boot_seconds = 0.0
        self._spawned_at = 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- starting ---------------------------------------------------------------------

    def _render(self, port: int, fd: int | None) -> list[str]:
        args = self.target.command_template()
        if self.config.root_path is not None:
            extra = self.target.profile.root_path_args
            if extra is None:
                raise ServerStartError(f"{self.target.name} has no root-path option in its profile")
            args = [*args, *extra]
        if self.config.legacy and self.target.profile.asgi2_args:
            args = [*args, *self.target.profile.asgi2_args]
        values = {
            "host": self.host,
            "port": str(port),
            "fd": str(fd) if fd is not None else "",
            "app": self.config.app,
            "python": sys.executable,
            "root_path": self.config.root_path or "",
        }
        try:
            return [part.format(**values) for part in args]
        except (KeyError, IndexError, ValueError) as exc:
            raise ServerStartError(
                f"cannot fill the command template of {self.target.name}: {exc}"
            ) from None

    def _spawn(self, command: list[str], pass_fds: tuple[int, ...]) -> None:
        env = dict(os.environ)
        env.update({ENV_CHANNEL: self.channel, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
        self.command = command
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting: {shlex.join(command)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=pass_fds,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServerStartError(
                    f"cannot start {command[0]!r}: {exc.strerror or exc}"
                ) from None
        self._spawned_at = time.monotonic()
        with _live_lock:
            _live[self._proc.pid] = self

    def start(self, boot_timeout: float | None = None) -> None:
        """Start and wait until the probe app answers; raises :class:`ServerStartError`."""
        began = time.monotonic()
        try:
            self._start(boot_timeout)
        finally:
            self.boot_seconds = time.monotonic() - began

    def _start(self, boot_timeout: float | None) -> None:
        deadline_span = boot_timeout if boot_timeout is not None else units(20)
        if self.target.profile.binds_fd:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, 0))
            listener.listen(128)
            listener.set_inheritable(True)
            self.port = listener.getsockname()[1]
            try:
                self._spawn(self._render(self.port, listener.fileno()), (listener.fileno(),))
            finally:
                listener.close()  # the child holds its own copy
            self._wait_ready(time.monotonic() + deadline_span)
            return
        for attempt in range(_PORT_RETRIES):
            self.port = _free_port(self.host)
            self._spawn(self._render(self.port, None), ())
            try:
                self._wait_ready(time.monotonic() + deadline_span)
                return
            except ServerStartError:
                if attempt + 1 < _PORT_RETRIES and any(
                    marker in self.log_tail().lower() for marker in _ADDRESS_IN_USE
                ):
                    self.stop(grace=units(1))
                    continue
                raise

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                self.stop(grace=0)
                raise ServerStartError(f"the server exited with status {code} before it was ready")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(grace=units(1))
                raise ServerStartError(
                    "the server did not answer a request to the probe app "
                    f"within {time.monotonic() - self._spawned_at:.1f}s"
                )
            if anyio.run(self._probe_once, min(units(1), remaining)):
                return
            time.sleep(0.05)

    async def _probe_once(self, timeout: float) -> bool:
        try:
            connection = await RawHTTP1Connection.open(self.host, self.port, timeout=timeout)
        except (OSError, TimeoutError):
            return False
        try:
            async with connection:
                request = Request(headers=[(b"x-probe", b"echo"), (b"connection", b"close")])
                await connection.exchange(request)
        except (ClientError, OSError, TimeoutError):
            return False
        return True

    def exit_status(self) -> int | None:
        """The exit status if the process has ended on its own, else None."""
        return self._proc.poll() if self._proc is not None else None

    # -- stopping ---------------------------------------------------------------------

    def stop(self, grace: float | None = None) -> str:
        """SIGTERM the group, SIGKILL it after ``grace``; says what it took."""
        proc = self._proc
        if proc is None:
            return self.stop_report
        grace = units(5) if grace is None else grace
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        _kill_group(pgid, signal.SIGTERM)
        report = "stopped by SIGTERM"
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            report = f"did not stop within {grace:.1f}s of SIGTERM; killed"
            _kill_group(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=units(5))
        # Workers and helpers of the group may outlive the leader briefly.
        sweep_until = time.monotonic() + max(grace, 0.2)
        while _group_alive(pgid) and time.monotonic() < sweep_until:
            time.sleep(0.02)
        if _kill_group(pgid, signal.SIGKILL):
            report += "; stragglers in its process group were killed"
        with _live_lock:
            _live.pop(proc.pid, None)
        self._proc = None
        self.stop_report = report
        with open(self.log_path, "ab") as log:
            log.write(f"--- {report}\n".encode())
        return report

    # -- evidence ---------------------------------------------------------------------

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                data = log.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_since(0, limit=20000)
        return "\n".join(text.splitlines()[-lines:])


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
