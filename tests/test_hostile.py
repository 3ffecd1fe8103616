"""Hostile servers: the run ends in bounded time, names the cause, leaves nothing behind.

One pytest session, started as a subprocess exactly as a user starts the suite, runs
a few real checks against every hostile server of ``tests/hostile/server.py`` and then
against uvicorn, which must be judged as if nothing had happened before it.  A second
session is interrupted with SIGINT in the middle of a check.

What each hostile server must produce, and why:

* never ready (``never-binds``, ``no-answer``, ``garbage``, ``trickle``): ``error`` on
  every check, naming what the readiness request met.  A server that answers every
  request with garbage, or too slowly, is broken as a server; but since no request was
  ever answered, nothing the checks ask about (the scope, the app's calls) was ever
  observed, and one ``fail`` per requirement would blame rules the server never had
  the chance to keep or break;
* misbehaving once ready (``garbage-late``, ``trickle-late``): ``fail``, naming the
  malformed or incomplete response, with the bytes received and the server log;
  that is what the server does with a request, so it is the server's verdict;
* a crash (``crash``): the checks before it pass (it served correctly), the check it
  happened in is ``error`` naming the exit status and the log tail, and the server is
  started again for the checks after it, which are judged (the column counts the restart);
* a stop that needs SIGKILL (``hang``, ``deaf``): the checks pass (it served
  correctly) but the target's last check has a teardown ``error`` naming the hang,
  never the next server's first check;
* children that leave the process group and session (``forks``): the checks pass;
  every child is killed when the server is stopped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance._reporter import EXIT_SERVER_DID_NOT_START
from tests.hostile.server import CRASH_STATUS, GARBAGE


HOSTILE = Path(__file__).resolve().parent / "hostile" / "server.py"
#: Every timeout of the inner runs is scaled by this (``--asgi-timeout-factor``).
FACTOR = 0.15
#: The bound on a server's boot (``units(20)`` in the launcher), scaled.
BOOT_BOUND = 20 * FACTOR
#: How long a check waits for a response (``units(5)`` in the probe), scaled.
CHECK_TIMEOUT = 5 * FACTOR
#: Five checks of one HTTP request each, in the order they run.
CHECKS = (
    "test_scope_type_is_http",
    "test_scope_is_dict_with_str_keys",
    "test_scope_has_every_required_key",
    "test_scope_asgi_version_is_str",
    "test_scheme_is_not_empty",
)
SUBSET = " or ".join(CHECKS)
#: ``crash`` answers the readiness request and this many minus one checks, then exits.
CRASH_AFTER = 3
#: The hostile servers, in the order they run, and their arguments.
COLUMNS = {
    "never-binds": "never-binds",
    "no-answer": "no-answer",
    "garbage": "garbage",
    "trickle": "trickle",
    "crash": f"serve --crash-after {CRASH_AFTER}",
    "garbage-late": "garbage --after 1",
    "trickle-late": "trickle --after 1",
    "forks": "serve --fork-escapees --pids {pids}",
    "deaf": "serve --on-sigterm ignore",
    "hang": "serve --on-sigterm hang",
    # Protocol columns (a profile file each, ``PATH.toml+PROTOCOL``): a TLS handshake that
    # never completes or is answered with garbage, an HTTP/2 preface answered never or so.
    "no-answer+tls": "no-answer",
    "garbage+tls": "garbage --at-once",
    "no-answer+h2c": "no-answer",
    "garbage+h2c": "garbage --at-once",
    # HTTP/3: a UDP socket never read, or every datagram answered with garbage.
    "no-answer+h3": "no-answer",
    "garbage+h3": "garbage --at-once",
}
#: The protocol columns a hostile profile declares: TLS (HTTP/1.1 offered by ALPN), h2c, h3.
PROTOCOL_TABLES = """
[protocols.tls]
wire = "http/1.1"
tls = true
args = ["--tls-cert", "{certfile}"]

[protocols.h2c]
wire = "h2"

[protocols.h3]
wire = "h3"
tls = true
args = ["--tls-cert", "{certfile}", "--quic-fd", "{quic_fd}"]
"""
#: The whole hostile session takes about 40 s on a 2-core machine (31 s of it: the ten
#: columns that are never ready, each waited for up to BOOT_BOUND).
RUN_BUDGET = 60.0
#: A hard stop far above the budget: a hang must fail these tests, not block them.
HARD_TIMEOUT = 180.0
#: Marks every process of an inner run (the servers inherit it), for the leak checks.
TOKEN_VARIABLE = "ASGI_CONFORMANCE_HOSTILE_RUN"
#: Environment of the outer run that must not leak into an inner one.
_OUTER_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_CURRENT_TEST",
)
#: What the client makes of the garbage: h11 refuses it, the bytes are quoted.
NOT_HTTP = (
    r"the response is not valid HTTP/1\.1 \(illegal status line: .*\); "
    f"received {re.escape(repr(GARBAGE))}"
)
_SERVER_IDS = re.compile(r"pgid (\d+), sid (\d+)|Started server process \[(\d+)\]")


# -- helpers ------------------------------------------------------------------------------


def _template(name: str, args: str, token: str) -> str:
    """A command template: the hostile program, its arguments, the token, ``{app}`` last."""
    program = shlex.quote(str(HOSTILE))
    return f"{name}={{python}} {program} {args} --port {{port}} --token {token} {{app}}"


def _selection(name: str, args: str, token: str, directory: Path) -> str:
    """The ``--asgi-server`` value of a column: a template, or ``PATH.toml+PROTOCOL``."""
    base, _, protocol = name.partition("+")
    if not protocol:
        return _template(name, args, token)
    command = [
        "{python}", str(HOSTILE), *shlex.split(args), "--port", "{port}", "--token", token, "{app}"
    ]  # fmt: skip
    path = directory / f"{base}-{protocol}.toml"
    path.write_text(
        f'name = "{base}"\ncommand = {json.dumps(command)}\n{PROTOCOL_TABLES}', encoding="utf-8"
    )
    return f"{path}+{protocol}"


def _inner_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ENV}
    env.update({"PY_COLORS": "0", "PYTHONIOENCODING": "utf-8", TOKEN_VARIABLE: token})
    return env


def _stat_fields(pid: int) -> list[str] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _processes_with(token: str, exclude: int | None = None) -> list[str]:
    """Live processes with ``token`` in their command line or environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), exclude):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        marked = token.encode() in cmdline or f"{TOKEN_VARIABLE}={token}".encode() in environ
        if marked and _alive(int(entry.name)):
            words = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {words}")
    return found


def _processes_in(groups: set[int]) -> list[int]:
    """Live processes whose process group or session is one of ``groups``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] != "Z" and {int(fields[2]), int(fields[3])} & groups:
            found.append(int(entry.name))
    return found


def _kill_leftovers(token: str) -> None:
    """After a failed test: never leave this run's processes to the next one."""
    for line in _processes_with(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


@dataclass
class Run:
    """One finished inner session."""

    returncode: int
    output: str
    seconds: float
    directory: Path
    token: str

    @functools.cached_property
    def matrix(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.directory / "report" / "matrix.json").read_text("utf-8")
        )
        return data

    def cells(self, target: str) -> dict[str, dict[str, Any]]:
        """check name -> its matrix cell (each check here judges a requirement of its own)."""
        found = {}
        for cell in self.matrix["results"][target].values():
            (check,) = {c["check"] for c in cell["checks"]}
            found[check] = cell
        return found

    def logs(self) -> dict[str, str]:
        """Server log file name -> its text (the launcher writes them under the basetemp)."""
        return {
            path.name: path.read_text("utf-8", "replace")
            for path in sorted((self.directory / "basetemp").glob("asgi-logs*/*.log"))
        }

    def seconds_per_target(self) -> dict[str, float]:
        """Setup, call and teardown time of every check, summed per target (junit XML)."""
        totals: dict[str, float] = defaultdict(float)
        for case in ElementTree.parse(self.directory / "junit.xml").iter("testcase"):
            name = case.get("name", "")
            totals[name[name.index("[") + 1 : -1]] += float(case.get("time", "0"))
        return dict(totals)


def _command(directory: Path, servers: list[str], *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", "-k", SUBSET,
        f"--asgi-timeout-factor={FACTOR}", f"--asgi-report={directory / 'report'}",
        f"--basetemp={directory / 'basetemp'}", *extra,
        *(f"--asgi-server={server}" for server in servers),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Every hostile server, then uvicorn, in one session."""
    directory = tmp_path_factory.mktemp("hostile")
    token = f"hostile-{uuid.uuid4().hex}"
    pids = shlex.quote(str(directory / "pids"))
    servers = [
        _selection(name, args.format(pids=pids), token, directory) for name, args in COLUMNS.items()
    ]
    command = _command(directory, [*servers, "uvicorn"], f"--junitxml={directory / 'junit.xml'}")
    began = time.monotonic()
    try:
        proc = subprocess.run(
            command,
            cwd=directory,
            env=_inner_env(token),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=HARD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        _kill_leftovers(token)
        pytest.fail(f"the hostile session did not end within {HARD_TIMEOUT}s: {exc.output!r}")
    run = Run(
        proc.returncode, proc.stdout + proc.stderr, time.monotonic() - began, directory, token
    )
    yield run
    _kill_leftovers(token)


# -- the run as a whole ---------------------------------------------------------------------


def test_the_run_ends_in_bounded_time_with_a_complete_matrix(hostile_run: Run) -> None:
    # Some hostile servers never start: the run's exit status says so.
    assert hostile_run.returncode == EXIT_SERVER_DID_NOT_START, hostile_run.output[-3000:]
    assert hostile_run.seconds < RUN_BUDGET
    matrix = hostile_run.matrix
    assert matrix["partial"] is True  # a -k subset of the suite
    assert matrix["left_out"]
    never_ready = {
        t
        for t in COLUMNS
        if t.partition("+")[0] in ("never-binds", "no-answer", "garbage", "trickle")
    }
    unstarted = [note for note in matrix["notes"] if " did not start: " in note]
    assert {note.partition(" did not start: ")[0] for note in unstarted} == never_ready
    assert list(matrix["results"]) == [*COLUMNS, "uvicorn"]
    for target in matrix["results"]:
        assert sorted(hostile_run.cells(target)) == sorted(CHECKS), target
    # No server costs more than it may legitimately make the harness wait: its boot
    # bound, then every check waiting out its response timeout; nothing waits unbounded.
    bound = BOOT_BOUND + len(CHECKS) * CHECK_TIMEOUT + 1.0
    times = hostile_run.seconds_per_target()
    slow = {target: round(t, 2) for target, t in times.items() if t > bound}
    assert slow == {}


def test_uvicorn_after_every_hostile_server_is_judged_as_usual(hostile_run: Run) -> None:
    """The hostile servers before it (the hung one just before) leave its column alone."""
    cells = hostile_run.cells("uvicorn")
    assert {check: cell["verdict"] for check, cell in cells.items()} == dict.fromkeys(
        CHECKS, "pass"
    )
    assert not any("harness error" in cell["detail"] for cell in cells.values())


# -- never ready: error, naming what the readiness request met -----------------------------


@pytest.mark.parametrize(
    ("target", "cause", "said"),
    [
        pytest.param(
            "never-binds",
            r"nothing accepted a connection on 127\.0\.0\.1:\d+ \(Connection refused\)",
            "started; not listening on port",
            id="never-binds",
        ),
        pytest.param(
            "no-answer",
            r"connected to 127\.0\.0\.1:\d+, but no complete response within [\d.]+s; received b''",
            "accepted a connection; never answering",
            id="no-answer",
        ),
        pytest.param(
            "garbage",
            rf"connected to 127\.0\.0\.1:\d+, but {NOT_HTTP}",
            "bytes of garbage",
            id="garbage",
        ),
        pytest.param(
            "trickle",
            r"connected to 127\.0\.0\.1:\d+, but no complete response within [\d.]+s; received b'H'",
            "trickling the response, one byte a second",
            id="trickle",
        ),
        pytest.param(
            "no-answer+tls",
            r"connected to 127\.0\.0\.1:\d+, but the server took the connection to "
            r"127\.0\.0\.1:\d+ but did not complete the TLS handshake within [\d.]+s",
            "accepted a connection; never answering",
            id="no-answer+tls",
        ),
        pytest.param(
            "garbage+tls",
            # The garbage opens like a TLS record: a failed or a cut-off handshake, named.
            r"connected to 127\.0\.0\.1:\d+, but the (TLS handshake with 127\.0\.0\.1:\d+ "
            r"failed \(|server ended the connection to 127\.0\.0\.1:\d+ during the TLS handshake)",
            "bytes of garbage",
            id="garbage+tls",
        ),
        pytest.param(
            "no-answer+h2c",
            r"connected to 127\.0\.0\.1:\d+, but no complete response on stream 1 within [\d.]+s",
            "accepted a connection; never answering",
            id="no-answer+h2c",
        ),
        pytest.param(
            "garbage+h2c",
            r"connected to 127\.0\.0\.1:\d+, but the server (sent frames that are not valid "
            r"HTTP/2|closed the connection before its HTTP/2 preface \(SETTINGS\); it sent b)",
            "bytes of garbage",
            id="garbage+h2c",
        ),
        pytest.param(
            "no-answer+h3",
            r"connected to 127\.0\.0\.1:\d+ \(UDP\), but nothing answered the QUIC Initial sent "
            r"to 127\.0\.0\.1:\d+ within [\d.]+s",
            "never reading it",
            id="no-answer+h3",
        ),
        pytest.param(
            "garbage+h3",
            r"connected to 127\.0\.0\.1:\d+ \(UDP\), but the server at 127\.0\.0\.1:\d+ answered "
            r"but did not complete the QUIC handshake within [\d.]+s",
            "answering with garbage",
            id="garbage+h3",
        ),
    ],
)
def test_a_server_that_is_never_ready_errors_naming_why(
    hostile_run: Run, target: str, cause: str, said: str
) -> None:
    for check, cell in hostile_run.cells(target).items():
        assert cell["verdict"] == "error", check
        detail = cell["detail"]
        assert detail.startswith(
            f"harness error in setup: {target}: the server did not answer a request "
            "to the probe app within "
        ), detail
        assert re.search(rf"\(last attempt: {cause}", detail), detail
        assert "--- server log tail ---" in detail
        assert f"hostile[{target.partition('+')[0]}]" in detail
        assert said in detail
    assert said in hostile_run.output  # pytest printed the log tail


# -- misbehaving once ready: fail, naming the response -------------------------------------


@pytest.mark.parametrize(
    ("target", "cause", "said"),
    [
        pytest.param(
            "garbage-late",
            NOT_HTTP,
            r"request \d+: answering with \d+ bytes of garbage",
            id="garbage-late",
        ),
        pytest.param(
            "trickle-late",
            r"no complete response within [\d.]+s; received b'H'",
            r"request \d+: trickling the response, one byte a second",
            id="trickle-late",
        ),
    ],
)
def test_a_bad_answer_once_ready_fails_naming_it(
    hostile_run: Run, target: str, cause: str, said: str
) -> None:
    for check, cell in hostile_run.cells(target).items():
        assert cell["verdict"] == "fail", check
        assert re.fullmatch(cause, cell["detail"], re.DOTALL), cell["detail"]
        assert re.search(said, cell["log"]), cell["log"]
    output = hostile_run.output
    assert f"evidence ({target})" in output
    assert re.search(said, output)


# -- a crash: error from the check it happened in ------------------------------------------


def test_a_crash_errors_the_check_it_happened_in_and_the_rest_are_judged(hostile_run: Run) -> None:
    """The crash is that check's finding; the server is started again for the checks after it."""
    cells = hostile_run.cells("crash")
    verdicts = [cells[check]["verdict"] for check in CHECKS]
    # The readiness request is the first of the CRASH_AFTER requests each boot answers:
    # the first boot serves two checks and dies in the third, the second serves the rest.
    served = CRASH_AFTER - 1
    assert verdicts == ["pass"] * served + ["error"] + ["pass"] * (len(CHECKS) - served - 1)
    crashed = rf"the server process \(pid \d+\) exited with status {CRASH_STATUS} during the run\n"
    said = f"crashing with os._exit({CRASH_STATUS}) on HTTP request {CRASH_AFTER + 1}"
    during = cells[CHECKS[served]]["detail"]
    assert re.match(crashed, during), during
    assert "(the check saw: the server closed the connection" in during
    assert said in during  # the log tail of the instance that died
    server = hostile_run.matrix["servers"]["crash"]
    assert server["restarts"] == 1
    assert server["crashes"] == [
        f"crash (main instance) exited with status {CRASH_STATUS} during "
        f"{CHECKS[served]}[crash]; restarted"
    ]
    assert "crash unknown: 4 pass, 1 error (crashed and restarted 1x)" in hostile_run.output


# -- a stop that needs SIGKILL: a teardown error of the server's own last check ------------


@pytest.mark.parametrize(
    ("target", "said"),
    [
        pytest.param("hang", "got signal 15; hanging in the handler", id="hang"),
        pytest.param("deaf", "ignoring SIGTERM and SIGINT", id="deaf"),
    ],
)
def test_a_server_that_will_not_stop_errors_its_own_last_check(
    hostile_run: Run, target: str, said: str
) -> None:
    cells = hostile_run.cells(target)
    *first, last = CHECKS
    assert [cells[check]["verdict"] for check in first] == ["pass"] * len(first)
    assert cells[last]["verdict"] == "error"
    # The check itself passed; its teardown, which stopped the server, is the error.
    passed, teardown = cells[last]["checks"]
    assert (passed["verdict"], teardown["verdict"]) == ("pass", "error")
    detail = teardown["detail"]
    assert re.match(
        rf"harness error in teardown: {target} did not stop within [\d.]+s of SIGTERM; killed\n"
        "--- server log tail ---\n",
        detail,
    ), detail
    assert said in detail
    assert f"ERROR test_http_scope.py::{last}[{target}]" in hostile_run.output
    assert said in hostile_run.output


# -- no process is left behind -------------------------------------------------------------


def test_children_that_leave_the_group_and_session_are_killed(hostile_run: Run) -> None:
    cells = hostile_run.cells("forks")
    assert {cell["verdict"] for cell in cells.values()} == {"pass"}  # it serves correctly
    pids = dict(line.split() for line in (hostile_run.directory / "pids").read_text().splitlines())
    assert sorted(pids) == ["in-group", "new-session", "orphan", "server"]
    assert [role for role, pid in pids.items() if _alive(int(pid))] == []
    (log,) = [text for name, text in hostile_run.logs().items() if name.startswith("forks-")]
    sessions = dict(re.findall(r"\(pid (\d+)\).*sid (\d+)", log))
    server = pids["server"]
    assert sessions[pids["in-group"]] == server
    assert sessions[pids["new-session"]] == pids["new-session"] != server
    assert sessions[pids["orphan"]] == pids["orphan"] != server
    assert log.rstrip().splitlines()[-1] == (
        "--- stopped by SIGTERM; stragglers in its process group were killed; "
        "2 process(es) that had left its process group were killed"
    )


def test_no_process_is_left_behind(hostile_run: Run) -> None:
    assert _processes_with(hostile_run.token) == []
    groups: set[int] = set()
    for text in hostile_run.logs().values():
        for match in _SERVER_IDS.finditer(text):
            groups.update(int(n) for n in match.groups() if n)
    # Every server logged its group and session: the hostile ones, and uvicorn its pid.
    assert len(groups) >= len(COLUMNS) + 1
    assert _processes_in(groups) == []


# -- interrupted ---------------------------------------------------------------------------


def _default_sigint() -> None:
    """In the child, before exec: a SIGINT that this process inherited as ignored (a
    background job's) would stay ignored in the inner pytest, which would then never
    see the KeyboardInterrupt under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_mid_check_stops_every_server_and_writes_a_partial_matrix(
    tmp_path: Path,
) -> None:
    """SIGINT while a slow, deaf server with escaped children is in the middle of a check."""
    token = f"hostile-{uuid.uuid4().hex}"
    mark = tmp_path / "trickling"
    slow = "trickle --after 1 --on-sigterm ignore --fork-escapees --mark " + shlex.quote(str(mark))
    servers = [
        "uvicorn",
        "hypercorn",
        _template("forks", "serve --fork-escapees", token),
        _template("slow", slow, token),
    ]
    output = tmp_path / "output.txt"
    with open(output, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            _command(tmp_path, servers),
            cwd=tmp_path,
            env=_inner_env(token),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )
    try:
        deadline = time.monotonic() + 60
        while not (mark.exists() and mark.read_text()) and proc.poll() is None:
            assert time.monotonic() < deadline, "the slow server never got a check's request"
            time.sleep(0.05)
        assert proc.poll() is None, output.read_text()
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        while left := _processes_with(token, exclude=proc.pid):
            assert time.monotonic() - interrupted < 5.0, left
            time.sleep(0.05)
        returncode = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_leftovers(token)
    text = output.read_text(encoding="utf-8")
    assert returncode == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert "KeyboardInterrupt" in text
    matrix = json.loads((tmp_path / "report" / "matrix.json").read_text("utf-8"))
    assert matrix["partial"] is True
    assert "the run was interrupted: this matrix is partial" in matrix["notes"]
    # The slow server ignored SIGTERM: killed, and said so, with its escaped children.
    assert re.fullmatch(
        r"slow did not stop within [\d.]+s of SIGTERM; killed; "
        r"2 process\(es\) that had left its process group were killed",
        matrix["notes"][0],
    ), matrix["notes"]
    finished = ("uvicorn", "hypercorn", "forks")
    for target in finished:
        assert len(matrix["results"][target]) == len(CHECKS), target
    assert len(matrix["results"]["slow"]) < len(CHECKS)
    markdown = (tmp_path / "report" / "matrix.md").read_text(encoding="utf-8")
    assert "**partial run (interrupted)**" in markdown
