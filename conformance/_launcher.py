"""Starting, watching and always reaping the server under test.

* The server runs in its own process group (``start_new_session``), so that
  stopping it stops its workers, reloaders and resource trackers too.
* The port is race-free where the server allows: the suite binds a listening
  socket on loopback and passes its descriptor (``{fd}``); otherwise it picks a
  free port and retries when the server reports the address in use.
* Readiness is a real HTTP request answered by the probe app, not a TCP connect:
  a server that accepts connections before its app is loaded is not ready.  It
  goes over the column's own protocol (HTTP/2, TLS), so a column whose protocol
  does not work fails to boot with the reason rather than in every check.
* TLS columns get the session's certificate and key (conformance/clients/tls.py),
  made once per session in the directory beside the logs.
* Stopping is SIGTERM to the group, then SIGKILL to the group after a grace
  period.  Every started process is registered, and an ``atexit`` hook (plus the
  plugin's unconfigure) reaps whatever is left, also after Ctrl-C.
* Processes that leave the group (``setsid()``, ``setpgid()``, a double fork) are
  found by a tag: every instance is started with a unique
  ``ASGI_CONFORMANCE_INSTANCE`` in its environment, which every descendant
  inherits whoever its parent is now and whatever its group or session.  After
  the group is gone, ``/proc`` is scanned for live processes carrying the tag (or
  sitting in the server's session with the tag removed from their environment),
  and those are killed.  The test process also makes itself a *child subreaper*
  (``PR_SET_CHILD_SUBREAPER``), so orphans of the server become its children
  instead of init's, and the ones it kills are reaped at once rather than left as
  zombies for an init that may never wait for them.  Both are Linux-only; elsewhere
  the group signals are all there is.
* A crash is recognised as soon as the server's connections close: the kernel
  closes an exiting process's sockets only after every one of its threads is
  flagged ``PF_EXITING`` (``/proc/PID/task/*/stat``), so
  :meth:`ServerProcess.exit_status` sees the flags and waits for the status
  instead of calling the process running, and the check that saw the connection
  drop is an ``error`` naming the crash rather than a ``fail``.
* Output goes to a file whose tail is attached to the checks that fail.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import secrets
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from conformance import _boots
from conformance._profiles import Target
from conformance._timing import units
from conformance._verdicts import HarnessError
from conformance.apps._channel import ENV_CHANNEL
from conformance.clients import ClientError, MalformedMessage, Request, open_connection
from conformance.clients.tls import ClientCert, TLSMaterial, client_context, session_material


__all__ = ["ENV_INSTANCE", "LaunchConfig", "ServerProcess", "ServerStartError", "reap_all"]

PROBE_APP = "conformance.apps.probe:app"
LEGACY_APP = "conformance.apps.probe:LegacyApp"
HOST = "127.0.0.1"
_ADDRESS_IN_USE = ("address already in use", "errno 98", "address in use")
_PORT_RETRIES = 3
#: The environment variable that tags every process of one server instance.
ENV_INSTANCE = "ASGI_CONFORMANCE_INSTANCE"
_PR_SET_CHILD_SUBREAPER = 36
_PF_EXITING = 0x4
_instances = itertools.count(1)


class ServerStartError(HarnessError):
    """The server exited early, never answered, or could not be bound."""


@dataclass(frozen=True)
class LaunchConfig:
    """What a server instance is started with, beyond its profile."""

    app: str = PROBE_APP
    root_path: str | None = None
    #: Start with the profile's legacy (ASGI 2) switch, if it has one.
    legacy: bool = False
    #: Ask for an optional client certificate (a TLS column's ``client_cert_args``).
    client_certs: bool = False
    #: Non-empty: an instance of its own for what this names, otherwise like the main one.
    #: For a scenario that may break the whole server (a stream reset that takes
    #: hypercorn's QUIC endpoint down): what it breaks, no other check meets.
    own: str = ""

    def describe(self) -> str:
        """What sets this configuration apart from the plain probe app, in words."""
        parts = [f"serving {self.app}"] if self.app != PROBE_APP else []
        if self.root_path is not None:
            parts.append(f"with root path {self.root_path!r}")
        if self.legacy:
            parts.append("with the legacy (ASGI 2) switch")
        if self.client_certs:
            parts.append("asking for client certificates")
        if self.own:
            parts.append(f"an instance of its own for {self.own}")
        return ", ".join(parts) or "the plain probe app"

    @property
    def key(self) -> str:
        key = f"{self.app}|{self.root_path}|{self.legacy}"
        key += "|client-certs" if self.client_certs else ""
        return key + f"|own:{self.own}" if self.own else key


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


def _group_alive(pgid: int, leader: int) -> bool:
    members = _live_processes(lambda p: p.pgrp == pgid, leader)
    if members is not None:
        return bool(members)
    try:  # no /proc: the signal probe (which a zombie member also answers)
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# -- /proc: the processes of a server, wherever they went -----------------------------------


_subreaper: bool | None = None


def _become_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux); False where unsupported."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                pass
    return _subreaper


@dataclass(frozen=True)
class _Stat:
    """The fields of ``/proc/PID/stat`` the launcher needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    flags: int


def _stat(pid: int, task: int | None = None) -> _Stat | None:
    """``/proc/PID/stat`` (or the stat of one thread, ``task``); None if it is gone."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        with open(path, "rb") as file:
            data = file.read()
        # The command name is in parentheses and may itself hold spaces and parentheses.
        fields = data[data.rindex(b")") + 2 :].split()
        return _Stat(
            pid=pid,
            state=fields[0].decode(),
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
            flags=int(fields[6]),
        )
    except (OSError, IndexError, ValueError):
        return None


def _all_stats() -> Iterator[_Stat] | None:
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    return (stat for name in names if name.isdigit() and (stat := _stat(int(name))) is not None)


def _reap(stat: _Stat) -> None:
    """Collect a zombie that is this process's child (an orphan it adopted as subreaper)."""
    if stat.state == "Z" and stat.ppid == os.getpid():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(stat.pid, os.WNOHANG)


def _live_processes(match: Callable[[_Stat], bool], leader: int) -> list[int] | None:
    """Pids of live processes that ``match`` (zombies adopted on the way are reaped).

    ``None`` without ``/proc``.  The server's leader is never reaped here: its
    :class:`subprocess.Popen` does that.
    """
    stats = _all_stats()
    if stats is None:
        return None
    found = []
    for stat in stats:
        if stat.pid == os.getpid() or not match(stat):
            continue
        if stat.state == "Z":
            if stat.pid != leader:
                _reap(stat)
            continue
        found.append(stat.pid)
    return found


def _environment(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return file.read().split(b"\0")
    except OSError:
        return None


def _tagged(tag: str, session: int) -> Callable[[_Stat], bool]:
    """Matches a process of the instance tagged ``tag`` that started the session ``session``.

    A process carries the tag in its environment; one that replaced its environment
    is still known by the session, unless it belongs to another tagged instance.
    """
    marker = f"{ENV_INSTANCE}={tag}".encode()
    prefix = f"{ENV_INSTANCE}=".encode()

    def match(stat: _Stat) -> bool:
        environment = _environment(stat.pid)
        if environment is None:
            return False  # gone, or another user's
        if marker in environment:
            return True
        return stat.session == session and not any(v.startswith(prefix) for v in environment)

    return match


def _exiting(pid: int) -> bool:
    """Whether process ``pid`` is on its way out: every one of its threads is in ``exit()``.

    All of them, not just the first: a main thread may end on its own (``pthread_exit``)
    while the others go on serving.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    threads = [stat for task in tasks if (stat := _stat(pid, int(task))) is not None]
    return bool(threads) and all(stat.flags & _PF_EXITING for stat in threads)


class ServerProcess:
    """One running instance of a target, started with one :class:`LaunchConfig`."""

    def __init__(self, target: Target, config: LaunchConfig, channel: str, log_dir: Path) -> None:
        self.target = target
        self.config = config
        self.channel = channel
        self.host = HOST
        self.port = 0
        #: The UDP port QUIC is served on (an h3 column; 0 for the others).
        self.quic_port = 0
        self.command: list[str] = []
        safe = target.name.replace(":", "-").replace("/", "-")
        self.log_path = log_dir / f"{safe}-{abs(hash(config.key)) % 10**8}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.stop_report = ""
        #: Whether the last stop needed SIGKILL: the server did not stop on SIGTERM.
        self.killed = False
        #: In the environment of every process of this instance, wherever it goes.
        self.tag = f"{os.getpid()}-{next(_instances)}-{secrets.token_hex(4)}"
        #: Seconds from spawning to the first answer of the probe app (the benchmark reads it).
        self.boot_seconds = 0.0
        self._spawned_at = 0.0
        #: This instance's place among the background boots (conformance/_boots.py).
        self._slot = _boots.BootSlot(None)
        #: The session's certificates, for a TLS column (made on first use).
        self.tls_material: TLSMaterial | None = (
            session_material(log_dir.parent / "asgi-tls") if target.tls else None
        )
        self._contexts: dict[tuple[ClientCert, str], ssl.SSLContext] = {}

    def client_tls(
        self, *, client_cert: ClientCert = None, wire: str | None = None
    ) -> ssl.SSLContext | None:
        """The client's TLS context for this column (None for cleartext): the session CA,
        ALPN for one wire alone (the column's, unless ``wire`` names another: a WebSocket
        upgrade is HTTP/1.1 on every column), the client certificate if asked."""
        if self.tls_material is None:
            return None
        wire = wire or self.target.wire
        key = (client_cert, wire)
        if key not in self._contexts:
            alpn = ["h2"] if wire == "h2" else ["http/1.1"]
            self._contexts[key] = client_context(self.tls_material, alpn, client_cert=client_cert)
        return self._contexts[key]

    @property
    def boot_key(self) -> str:
        """Names this instance's boot among all boots of the run (conformance/_boots.py)."""
        return f"{self.target.name}|{self.config.key}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # -- starting ---------------------------------------------------------------------

    def port_for(self, wire: str) -> int:
        """Where a client speaking ``wire`` connects: QUIC's UDP port for h3, else TCP's."""
        return self.quic_port if wire == "h3" else self.port

    def _render(self, port: int, fd: int | None, quic_fd: int | None = None) -> list[str]:
        args = self.target.command_template()
        if self.config.root_path is not None:
            extra = self.target.profile.root_path_args
            if extra is None:
                raise ServerStartError(f"{self.target.name} has no root-path option in its profile")
            args = [*args, *extra]
        if self.config.legacy and self.target.profile.asgi2_args:
            args = [*args, *self.target.profile.asgi2_args]
        column = self.target.column
        if self.config.client_certs:
            if column is None or column.client_cert_args is None:
                raise ServerStartError(
                    f"{self.target.name} has no option to ask for client certificates in its profile"
                )
            args = [*args, *column.client_cert_args]
        values = {
            "host": self.host,
            "port": str(port),
            "fd": str(fd) if fd is not None else "",
            "quic_fd": str(quic_fd) if quic_fd is not None else "",
            "quic_port": str(self.quic_port),
            "app": self.config.app,
            "python": sys.executable,
            "root_path": self.config.root_path or "",
            **(self.tls_material.placeholders() if self.tls_material else {}),
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
        env[ENV_INSTANCE] = self.tag
        self.command = command
        _become_subreaper()
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
        self._slot = _boots.acquire(self.boot_key)
        began = time.monotonic()
        try:
            self._start(boot_timeout)
        except ServerStartError:
            raise  # already stopped
        except BaseException:
            # Interrupted while booting (Ctrl-C): nothing will ask for this instance again.
            self.stop(grace=units(1))
            raise
        finally:
            self.booted()
            self.boot_seconds = time.monotonic() - began

    def booted(self) -> None:
        """The boot is over (answered, failed, or watched far enough): free its slot."""
        self._slot.release()

    def launch(self) -> None:
        """Start without waiting for readiness (a server whose startup is pending or fails).

        The port is the suite's listening socket where the profile takes ``{fd}``,
        else a free port (no retry: nothing here waits to see the bind fail).
        The boot's slot is held until :meth:`wait_ready`, :meth:`booted` or :meth:`stop`.
        """
        self._slot = _boots.acquire(self.boot_key)
        try:
            if self.target.binds_fd:
                self._spawn_on_listener()
                return
            self.port = _free_port(self.host)
            self._spawn_with_quic(self._render_port)
        except BaseException:
            self.booted()
            raise

    def _spawn_on_listener(self) -> None:
        """Spawn the server on a listening socket of the suite's, passed as ``{fd}``."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(128)
        listener.set_inheritable(True)
        self.port = listener.getsockname()[1]
        try:
            self._spawn_with_quic(
                lambda quic_fd: (self._render(self.port, listener.fileno(), quic_fd),
                                 (listener.fileno(),))
            )  # fmt: skip
        finally:
            listener.close()  # the child holds its own copy

    def _render_port(self, quic_fd: int | None) -> tuple[list[str], tuple[int, ...]]:
        return self._render(self.port, None, quic_fd), ()

    def _spawn_with_quic(
        self, render: Callable[[int | None], tuple[list[str], tuple[int, ...]]]
    ) -> None:
        """Spawn ``render``'s command, with QUIC's UDP socket where the column serves HTTP/3.

        ``{quic_fd}``: a UDP socket bound here and inherited, as the TCP listener is (no
        port race); ``{quic_port}``: a UDP port that was free a moment ago.
        """
        if self.target.wire != "h3":
            self._spawn(*render(None))
            return
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((self.host, 0))
            self.quic_port = udp.getsockname()[1]
            if not self.target.binds_quic_fd:
                udp.close()  # the server binds the port itself
                self._spawn(*render(None))
                return
            udp.set_inheritable(True)
            command, fds = render(udp.fileno())
            self._spawn(command, (*fds, udp.fileno()))
        finally:
            udp.close()

    def wait_ready(self, timeout: float) -> None:
        """After :meth:`launch`: wait until the probe app answers; :class:`ServerStartError` if not."""
        began = time.monotonic()
        try:
            self._wait_ready(began + timeout)
        finally:
            self.booted()
            self.boot_seconds = time.monotonic() - self._spawned_at

    def send_signal(self, sig: signal.Signals, *, group: bool = False) -> bool:
        """Send ``sig`` to the server's main process (as a supervisor does), or to its whole
        process group (``group``, as a terminal's Ctrl-C does); False if it has exited."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return False
        if group:
            return _kill_group(proc.pid, sig)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
            return True
        return False

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the server has exited, waiting at most ``timeout``; None if it runs on."""
        proc = self._proc
        if proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(timeout=max(timeout, 0))
        return None

    def _start(self, boot_timeout: float | None) -> None:
        deadline_span = boot_timeout if boot_timeout is not None else units(20)
        if self.target.binds_fd:
            self._spawn_on_listener()
            self._wait_ready(time.monotonic() + deadline_span)
            return
        for attempt in range(_PORT_RETRIES):
            self.port = _free_port(self.host)
            self._spawn_with_quic(self._render_port)
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
        why = "no attempt finished"
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
                    f"within {time.monotonic() - self._spawned_at:.1f}s (last attempt: {why})"
                )
            bound = min(units(1), remaining)
            failure = anyio.run(self._probe_once, bound)
            if failure is None:
                return
            if bound >= units(1) or why == "no attempt finished":
                # An attempt cut short by the deadline says only that ("took over 0.0s"):
                # the last whole attempt's reason is the one worth reporting.
                why = failure
            time.sleep(0.05)

    async def _probe_once(self, timeout: float) -> str | None:
        """One readiness request in the column's protocol: None if answered, else what went wrong."""
        wire = self.target.wire
        address = f"{self.host}:{self.port_for(wire)}" + (" (UDP)" if wire == "h3" else "")
        try:
            connection = await open_connection(
                wire, self.host, self.port_for(wire), timeout=timeout, tls=self.client_tls()
            )
        except TimeoutError:
            return f"connecting to {address} took over {timeout:.1f}s"
        except ClientError as exc:  # the TLS handshake failed, or ALPN chose another protocol
            return f"connected to {address}, but {exc}"
        except OSError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            reason = os.strerror(cause.errno) if cause.errno else str(cause)
            return f"nothing accepted a connection on {address} ({reason})"
        try:
            async with connection:
                request = Request(headers=[(b"x-probe", b"echo"), (b"connection", b"close")])
                await connection.exchange(request, timeout=timeout)
        except MalformedMessage:
            # A whole response whose fields break a message rule (hypercorn's HTTP/3
            # error response carries Connection): the server serves, and the check that
            # asked judges what it sent.  Waiting for a well-formed answer would only
            # wait out the boot bound.
            return None
        except ClientError as exc:
            return f"connected to {address}, but {exc}"
        except (OSError, TimeoutError) as exc:
            return f"connected to {address}, but the exchange failed: {exc!r}"
        return None

    #: Why a listener of this running instance stopped answering mid-run, once a client found it.
    listener_gone: str | None = None

    def exit_status(self) -> int | None:
        """The exit status if the process has ended on its own, else None.

        A server that is exiting (a crash) has closed its connections before it can
        be reaped: a check that saw the connection close asks here right away, so a
        process on its way out is waited for (briefly) rather than called running.
        """
        proc = self._proc
        if proc is None:
            return None
        status = proc.poll()
        if status is None and _exiting(proc.pid):
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = proc.wait(timeout=units(5))
        return status

    # -- stopping ---------------------------------------------------------------------

    def stop(self, grace: float | None = None) -> str:
        """SIGTERM the group, SIGKILL it after ``grace``, kill what left it; says what it took."""
        self.booted()
        proc = self._proc
        if proc is None:
            return self.stop_report
        grace = units(5) if grace is None else grace
        pgid = proc.pid  # start_new_session: the leader's pid is the group and session id
        status = proc.poll()
        _kill_group(pgid, signal.SIGTERM)
        report = "stopped by SIGTERM"
        self.killed = False
        if status is not None:
            report = f"had already exited with status {status}"
        else:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                report = f"did not stop within {grace:.1f}s of SIGTERM; killed"
                self.killed = True
                _kill_group(pgid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=units(5))
        # Workers and helpers of the group may outlive the leader briefly.
        sweep_until = time.monotonic() + max(grace, 0.2)
        while _group_alive(pgid, proc.pid) and time.monotonic() < sweep_until:
            time.sleep(0.02)
        if _group_alive(pgid, proc.pid) and _kill_group(pgid, signal.SIGKILL):
            report += "; stragglers in its process group were killed"
            self._wait_gone(lambda p: p.pgrp == pgid, proc.pid)
        escaped = self._kill_escapees(pgid)
        if escaped:
            report += f"; {escaped} process(es) that had left its process group were killed"
        with _live_lock:
            _live.pop(proc.pid, None)
        self._proc = None
        self.stop_report = report
        with open(self.log_path, "ab") as log:
            log.write(f"--- {report}\n".encode())
        return report

    def _wait_gone(self, match: Callable[[_Stat], bool], leader: int) -> None:
        """Wait (bounded) until no live process matches: SIGKILL is not instantaneous."""
        until = time.monotonic() + units(5)
        while _live_processes(match, leader) and time.monotonic() < until:
            time.sleep(0.01)

    def _kill_escapees(self, session: int) -> int:
        """SIGKILL what is left of the instance outside its group; how many processes."""
        match = _tagged(self.tag, session)
        killed: set[int] = set()
        for _ in range(3):  # an escapee may fork while it is being killed
            found = [pid for pid in _live_processes(match, session) or () if pid not in killed]
            if not found:
                break
            for pid in found:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(found)
            self._wait_gone(lambda p: p.pid in killed, session)
        return len(killed)

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
