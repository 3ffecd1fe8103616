"""Self-tests of retiring a target's shared instances early (ServerUnderTest.retire).

Once only checks of standalone modules are left (the lifespan checks, whose
scenarios start instances of their own), the target's shared instances stop in
the background, so their graceful shutdowns overlap those checks' watches:

* a retired instance is stopped by SIGTERM, is not taken for a crash, is not
  booted again when asked for, and its stop is still reported at the end;
* retiring waits for the batches of the other modules, which may still talk to
  the instances, but not for the standalone modules' own batches;
* the retire point is the first check after which only standalone checks of that
  target follow, per target.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance._batch import Batch
from conformance._fixtures import _retire_points
from conformance._launcher import LaunchConfig
from conformance._probe import ServerUnderTest
from conformance._profiles import resolve_targets
from conformance._sidechannel import SideChannel


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[ServerUnderTest]:
    channel = SideChannel()
    server = ServerUnderTest(resolve_targets(["uvicorn"])[0], channel, tmp_path)
    try:
        yield server
    finally:
        server.stop()
        channel.close()


def _wait_exit(server: ServerUnderTest, config: LaunchConfig, seconds: float) -> bool:
    """Whether the instance for ``config`` has stopped within ``seconds``."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if server.instance(config).pid is None:
            return True
        time.sleep(0.02)
    return False


def test_a_retired_instance_stops_and_is_neither_a_crash_nor_booted_again(
    uvicorn_server: ServerUnderTest,
) -> None:
    main = uvicorn_server.main
    tag = main.tag
    uvicorn_server.retire()
    assert _wait_exit(uvicorn_server, LaunchConfig(), 10)
    assert uvicorn_server.crashed() == ""
    assert uvicorn_server.main is main  # not booted again
    assert main.tag == tag
    assert uvicorn_server.every_instance() == [main]
    reports = uvicorn_server.stop()
    assert reports == ["stopped by SIGTERM"]


def test_retiring_waits_for_other_modules_batches_only(uvicorn_server: ServerUnderTest) -> None:
    main = uvicorn_server.main
    release = threading.Event()

    async def talks_to_main() -> None:
        while not release.is_set():
            assert main.pid is not None, "retired while a batch still talked to it"
            time.sleep(0.01)

    async def own_instances() -> None:
        release.wait(10)  # never waited for: it would hold the retirement for ten seconds

    uvicorn_server.batch("suite.other", lambda: Batch({"talk": talks_to_main}, {}))
    uvicorn_server.batch("suite.alone::x", lambda: Batch({"x": own_instances}, {}))
    uvicorn_server.retire(standalone={"suite.alone"})
    time.sleep(0.5)
    assert main.pid is not None
    release.set()
    assert _wait_exit(uvicorn_server, LaunchConfig(), 10)


def _item(nodeid: str, module: str, target: str | None) -> Any:
    params = {"asgi_server": target} if target is not None else {}
    return SimpleNamespace(
        nodeid=nodeid,
        module=SimpleNamespace(__name__=module),
        callspec=SimpleNamespace(params=params),
    )


def test_the_retire_point_is_where_only_standalone_checks_of_the_target_remain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("conformance._fixtures.STANDALONE", {"life"})
    items = [
        _item("a1", "http", "a"),
        _item("a2", "life", "a"),  # a shared-instance check of "a" follows: not yet
        _item("b1", "http", "b"),
        _item("a3", "http", "a"),
        _item("a4", "life", "a"),
        _item("a5", "life", "a"),
        _item("b2", "life", "b"),
        _item("c1", "http", "c"),  # "c" never reaches a standalone module
        _item("x", "life", None),  # not a suite check
    ]
    session = SimpleNamespace(items=items, stash=pytest.Stash())
    assert _retire_points(session) == {"a4", "b2"}  # type: ignore[arg-type]
