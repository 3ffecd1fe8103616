"""The test's end of the side channel: what the probe app saw, keyed by request id.

Probe apps run inside the server process, so what only they can observe (the
scope, every event received and when, whether ``send`` raised) has to cross a
process boundary.  It comes over a Unix socket the test process listens on,
independent of the server under test: a server that mangles requests cannot
mangle the evidence.

The channel also runs the other way, for flags: an app may wait until the test
sets a flag (the client has read a chunk, say), each wait on its own connection
and bounded by a timeout the test chose.  That is how a check proves ordering
("the client had chunk 1 before the app sent chunk 2") without any sleep.  Waiting is event-driven (a condition variable), bounded by
the caller's timeout, never a sleep-and-poll.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from conformance.apps._encoding import decode


__all__ = ["Observation", "SideChannel"]

Observation = dict[str, Any]


class SideChannel:
    """Listens for observations from every server process this test process starts."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="asgi-conf-"))
        self.path = str(self._dir / "channel.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._records: dict[str, list[Observation]] = defaultdict(list)
        self._cond = threading.Condition()
        self._closed = False
        self._flags: set[str] = set()
        self._conns: list[socket.socket] = []
        #: The TCP listener of a remote target's probe app, once asked for (listen_tcp).
        self._tcp: socket.socket | None = None
        threading.Thread(target=self._accept_loop, name="asgi-side-channel", daemon=True).start()

    def listen_tcp(self, address: tuple[str, int]) -> str:
        """Also listen on TCP at ``address``, for a probe app the suite did not start
        (``--asgi-url``): the value its ``ASGI_CONFORMANCE_CHANNEL`` must hold."""
        with self._cond:
            if self._tcp is None:
                family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
                listener = socket.socket(family, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    listener.bind(address)
                except OSError:
                    listener.close()
                    raise
                listener.listen(64)
                self._tcp = listener
                threading.Thread(
                    target=self._accept_loop,
                    args=(listener,),
                    name="asgi-side-channel-tcp",
                    daemon=True,
                ).start()
            host, port = self._tcp.getsockname()[:2]
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"

    def _accept_loop(self, listener: socket.socket | None = None) -> None:
        listener = listener or self._listener
        while not self._closed:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read_loop, args=(conn,), daemon=True).start()

    def _read_loop(self, conn: socket.socket) -> None:
        # A server process killed mid-write resets its connection: the reports it sent are
        # kept, and the reset ends this reader quietly (an exception escaping a thread is
        # blamed by pytest on whichever check happens to be running).
        with contextlib.suppress(OSError):
            self._read_lines(conn)

    def _read_lines(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("op") == "wait":
                    # The app waits for the test: answer when the flag is set or the bound passes.
                    self._answer_wait(
                        conn, str(record.get("flag")), float(record.get("timeout", 0))
                    )
                    continue
                if not isinstance(record, dict) or "rid" not in record:
                    continue
                record = {
                    key: (decode(v) if key not in ("rid", "kind") else v)
                    for key, v in record.items()
                }
                with self._cond:
                    self._records[str(record["rid"])].append(record)
                    self._cond.notify_all()

    def _answer_wait(self, conn: socket.socket, flag: str, timeout: float) -> None:
        with self._cond:
            got = self._cond.wait_for(lambda: flag in self._flags or self._closed, timeout=timeout)
        with contextlib.suppress(OSError):
            conn.sendall(b"set\n" if got and flag in self._flags else b"timeout\n")

    def set_flag(self, flag: str) -> None:
        """Release an app waiting for ``flag`` (now or later): the test's half of a rendezvous."""
        with self._cond:
            self._flags.add(flag)
            self._cond.notify_all()

    def records(self, rid: str) -> list[Observation]:
        with self._cond:
            return list(self._records.get(rid, ()))

    def wait_for(
        self,
        rid: str,
        kind: str,
        timeout: float,
        count: int = 1,
    ) -> list[Observation]:
        """Up to ``count`` observations of ``kind`` for ``rid``, waiting at most ``timeout``.

        Returns what arrived in time; fewer than ``count`` means the app never got
        that far, which the caller judges.
        """
        return self.wait_until(
            lambda: [r for r in self._records.get(rid, ()) if r.get("kind") == kind][:count],
            lambda found: len(found) >= count,
            timeout,
        )

    def wait_until(
        self,
        collect: Callable[[], list[Observation]],
        done: Callable[[list[Observation]], bool],
        timeout: float,
    ) -> list[Observation]:
        with self._cond:
            self._cond.wait_for(lambda: done(collect()), timeout=timeout)
            return collect()

    async def until(
        self,
        collect: Callable[[], list[Observation]],
        done: Callable[[list[Observation]], bool] = bool,
        timeout: float = 0.0,
    ) -> list[Observation]:
        """:meth:`wait_until` for a check's event loop: the wait runs in a worker thread,
        so the loop (and every exchange on it) goes on meanwhile."""
        return await anyio.to_thread.run_sync(self.wait_until, collect, done, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        try:
            self._listener.close()
            if self._tcp is not None:
                self._tcp.close()
        finally:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
                self._dir.rmdir()
