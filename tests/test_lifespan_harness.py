"""Self-tests of the lifespan harness (conformance/_lifespan.py, the launcher's additions).

* An instance started without waiting for readiness is stopped when its block
  ends, also when the block raises; a signal reaches it and its exit status is read.
* The lifespan checks, run as a user runs them, leave no process behind: every
  process of the session carries a token in its environment and ``/proc`` is
  scanned for it afterwards (as tests/test_mutants.py does).
* Whether a target runs lifespan is observed, not taken from its profile: a server
  given by a command template (whose profile claims no lifespan) is judged, and
  daphne, which never calls the app with a lifespan scope, is ``unsupported`` on
  every lifespan row with one reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from conformance import catalogue
from conformance._lifespan import bucket, describe_exit, lifespan_instance
from conformance._probe import Probe, ServerUnderTest
from conformance._profiles import resolve_targets
from conformance._sidechannel import SideChannel
from conformance._timing import units
from tests._processes import processes_with


ROOT = Path(__file__).resolve().parent.parent
TOKEN_VARIABLE = "ASGI_CONFORMANCE_LIFESPAN_RUN"
HARD_TIMEOUT = 240.0
#: uvicorn as a user's own command template: its profile claims no lifespan.
TEMPLATE = "custom-uvicorn={python} -m uvicorn --fd {fd} --no-access-log {app}"


def _processes_with(token: str) -> list[tuple[int, str]]:
    return processes_with(TOKEN_VARIABLE, token)


# -- the pure parts ------------------------------------------------------------------------------


def test_durations_are_reported_in_whole_units() -> None:
    assert bucket(units(0.2)) == "under half a unit"
    assert bucket(units(1.2)) == "about 1 unit"
    assert bucket(units(2.9)) == "about 3 units"


def test_exit_statuses_are_described() -> None:
    assert describe_exit(None) == "still running"
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-signal.SIGTERM) == "ended by SIGTERM"


# -- one instance ----------------------------------------------------------------------------------


@pytest.fixture
def asgi_uvicorn(tmp_path: Path) -> Iterator[ServerUnderTest]:
    channel = SideChannel()
    server = ServerUnderTest(resolve_targets(["uvicorn"])[0], channel, tmp_path)
    try:
        yield server
    finally:
        server.stop()
        channel.close()


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_an_instance_is_signalled_and_its_exit_status_read(asgi_uvicorn: ServerUnderTest) -> None:
    async def run() -> tuple[int | None, int | None, list[Any]]:
        async with lifespan_instance(Probe(asgi_uvicorn), "serving") as instance:
            pid = instance.process.pid
            instance.signal(signal.SIGTERM)
            status = await instance.wait_exit(units(5))
            shutdown = instance.reported("event")
        return pid, status, shutdown

    pid, status, events = anyio.run(run)
    assert status is not None, "uvicorn did not exit on SIGTERM"
    assert [e["event"]["type"] for e in events] == ["lifespan.startup", "lifespan.shutdown"]
    assert not _alive(pid)


def test_an_instance_is_stopped_when_the_check_fails(asgi_uvicorn: ServerUnderTest) -> None:
    """A check that raises mid-way (here while startup is held) still stops its instance.

    The stop goes on in the background (the scenario's outcome does not wait for it),
    and the target's stop waits until it is done: nothing outlives the target.
    """
    pids: list[int | None] = []

    async def run() -> None:
        async with lifespan_instance(Probe(asgi_uvicorn), "lifecycle", ready=False) as instance:
            pids.append(instance.process.pid)
            assert await instance.reports("call", units(20)), "the app was never called"
            raise RuntimeError("a check gone wrong")

    with pytest.raises(RuntimeError, match="a check gone wrong"):
        anyio.run(run)
    assert pids
    asgi_uvicorn.stop()
    assert not _alive(pids[0])


# -- the checks as a user runs them ----------------------------------------------------------------


@pytest.fixture(scope="module")
def asgi_lifespan_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The lifespan checks over a template server and daphne, in a session of their own."""
    workdir = tmp_path_factory.mktemp("lifespan-run")
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[TOKEN_VARIABLE] = token
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--no-header",
        "-k", "test_lifespan", "--asgi-report", str(workdir / "report"),
        f"--asgi-server={TEMPLATE}", "--asgi-server=daphne",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=HARD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    matrix_path = workdir / "report" / "matrix.json"
    assert matrix_path.exists(), f"no matrix; the session said:\n{output[-3000:]}"
    yield {
        "matrix": json.loads(matrix_path.read_text(encoding="utf-8")),
        "output": output,
        "token": token,
    }
    for pid, _ in _processes_with(token):  # only ever processes of this run
        os.kill(pid, signal.SIGKILL)


def test_lifespan_checks_leave_no_process_behind(asgi_lifespan_run: dict[str, Any]) -> None:
    deadline = time.monotonic() + 3.0
    left = _processes_with(asgi_lifespan_run["token"])
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _processes_with(asgi_lifespan_run["token"])
    assert not left, "processes left behind:\n" + "\n".join(f"{p} {c}" for p, c in left)


def test_a_template_server_that_runs_lifespan_is_judged(asgi_lifespan_run: dict[str, Any]) -> None:
    """The template's profile claims no lifespan; uvicorn runs it, so every row is judged
    (but the WebSocket one: a template's profile claims no WebSocket either)."""
    results = asgi_lifespan_run["matrix"]["results"]["custom-uvicorn"]
    rows = [rid for rid in catalogue() if rid.startswith("lifespan.")]
    verdicts = {rid: results[rid]["verdict"] for rid in rows}
    assert verdicts.pop("lifespan.state.websocket") == "unsupported"
    assert set(verdicts.values()) <= {"pass", "info"}, verdicts


def test_a_server_without_lifespan_is_unsupported_with_one_reason(
    asgi_lifespan_run: dict[str, Any],
) -> None:
    results = asgi_lifespan_run["matrix"]["results"]["daphne"]
    rows = [rid for rid in catalogue() if rid.startswith("lifespan.")]
    assert {results[rid]["verdict"] for rid in rows} == {"unsupported"}
    reasons = {results[rid]["detail"] for rid in rows}
    assert reasons == {
        "daphne never called the app with a lifespan scope: it does not implement lifespan"
    }


def test_every_lifespan_row_says_which_scenarios_it_reads() -> None:
    """A row missing from USES would boot every scenario when selected alone (still correct,
    only slow); a name in USES that is no scenario would leave its checks without one."""
    from conformance.suite import test_lifespan as suite

    rows = {rid for rid in catalogue() if rid.startswith("lifespan.")}
    assert set(suite.USES) == rows
    names = set(suite._scenarios())
    assert {name for used in suite.USES.values() for name in used} == names
