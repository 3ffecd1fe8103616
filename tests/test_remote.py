"""``--asgi-url``: a probe app the suite did not start is judged where it needs no process control.

The self-test deploys the probe app itself, as a user would (uvicorn on loopback, its
observations sent to ``ASGI_CONFORMANCE_CHANNEL=tcp://...``), once for the module, and
runs the suite against it more than once: a deployed app outlives each run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance._profiles import ProfileError, channel_address, resolve_remote


#: Checks of the one probe app (they pass on uvicorn), then checks that need control of
#: the process: a root-path instance, a legacy app, lifespan instances.
CHECKS = (
    "test_scope_type_is_http or test_path_is_percent_decoded or test_server_is_the_listening "
    "or root_path or legacy or test_lifespan_scope_is_a_dict"
)
NEEDS_CONTROL = (
    "http.scope.root-path-configured",
    "core.legacy-asgi2",
    "lifespan.scope.type",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Deployed:
    url: str
    channel: str


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    port, channel = _free_port(), f"127.0.0.1:{_free_port()}"
    log = tmp_path_factory.mktemp("remote") / "uvicorn.log"
    env = {**os.environ, "ASGI_CONFORMANCE_CHANNEL": f"tcp://{channel}"}
    command = [sys.executable, "-m", "uvicorn", "--port", str(port), "--no-access-log"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "conformance.apps.probe:app"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield Deployed(f"http://127.0.0.1:{port}", channel)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def _cells(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    matrix = json.loads((pytester.path / "asgi-report" / "matrix.json").read_text("utf-8"))
    cells: dict[str, Any] = matrix["results"][name]
    return cells


def test_a_remote_target_is_judged_and_process_control_is_unsupported(
    pytester: pytest.Pytester, deployed: Deployed
) -> None:
    args = (
        "-k",
        CHECKS,
        f"--asgi-url=deployed={deployed.url}",
        f"--asgi-channel={deployed.channel}",
    )
    for _ in range(2):  # the app outlives a run: the next one reaches it as well
        result = _run(pytester, *args)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
        cells = _cells(pytester, "deployed")
        for rid in ("http.scope.type", "http.scope.path-decoded", "http.scope.server"):
            assert cells[rid]["verdict"] == "pass", (rid, cells[rid])
        for rid in NEEDS_CONTROL:
            assert cells[rid]["verdict"] == "unsupported", (rid, cells[rid])
            assert "deployed is a remote target (--asgi-url)" in cells[rid]["detail"]
    matrix = json.loads((pytester.path / "asgi-report" / "matrix.json").read_text("utf-8"))
    assert matrix["servers"]["deployed"]["command"] == deployed.url


def test_a_remote_app_whose_observations_do_not_arrive_says_how_to_serve_it(
    pytester: pytest.Pytester, deployed: Deployed
) -> None:
    elsewhere = f"127.0.0.1:{_free_port()}"
    result = _run(pytester, "-k", "test_scope_type_is_http", f"--asgi-url={deployed.url}",
                  f"--asgi-channel={elsewhere}")  # fmt: skip
    assert result.ret == 6  # EXIT_SERVER_DID_NOT_START
    result.stdout.fnmatch_lines(
        [
            f"remote: {deployed.url} answered, but its probe app's observations never reached "
            "the suite: serve conformance.apps.probe:app with "
            f"ASGI_CONFORMANCE_CHANNEL=tcp://{elsewhere} in its environment"
        ]
    )


def test_an_unreachable_url_is_a_server_that_did_not_start(pytester: pytest.Pytester) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = _run(pytester, "-k", "test_scope_type_is_http", f"--asgi-url={url}",
                  f"--asgi-channel=127.0.0.1:{_free_port()}", "--asgi-timeout-factor=0.5")  # fmt: skip
    assert result.ret == 6
    result.stdout.fnmatch_lines([f"remote: cannot reach {url}: nothing accepted a connection*"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "https://example.org:443",
            "--asgi-url remote: 'https://example.org:443' is not an http://",
        ),
        ("http://127.0.0.1", "--asgi-url remote: 'http://127.0.0.1' must be http://HOST:PORT"),
        ("http://127.0.0.1:8000/app", "--asgi-url remote: 'http://127.0.0.1:8000/app' must be"),
        ("x{offers={lifespan=true}}=http://h:1", "--asgi-url x: a remote target's settings take"),
    ],
)
def test_a_bad_url_is_a_one_line_error(value: str, message: str) -> None:
    with pytest.raises(ProfileError) as excinfo:
        resolve_remote(value)
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_a_named_remote_target_records_its_package_version() -> None:
    from importlib import metadata

    target = resolve_remote('mine{package="uvicorn"}=http://[::1]:8000')
    assert target.name == "mine"
    assert target.remote
    assert target.describe()["version"] == metadata.version("uvicorn")
    assert target.describe()["command"] == "http://[::1]:8000"


@pytest.mark.parametrize("value", ["8765", "host:", ":80", "h:0", "h:70000", "h:x"])
def test_a_bad_channel_address_is_refused(value: str) -> None:
    with pytest.raises(ProfileError, match="expected HOST:PORT"):
        channel_address(value)


def test_a_bad_url_stops_the_run_before_anything_runs(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--asgi-url=ftp://x:1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0].startswith("ERROR: --asgi-url remote: 'ftp://x:1' is not")
    assert not Path(pytester.path / "asgi-report").exists()
