"""Self-tests that prove no check is vacuous: every check fails on a mutant server.

A mutant (``tests/mutants.py``) is a real server wrapped in a middleware that breaks
one rule.  One pytest session, started as a subprocess exactly as a user would start
the suite, runs the real checks through the real plugin against plain uvicorn, the
unmodified runner over uvicorn and hypercorn (the controls), and every mutant.  Then:

* plain uvicorn has no finding beyond the known ones (:data:`KNOWN_FINDINGS`), and the
  control over uvicorn agrees with it row for row, so the runner itself is faithful;
* every row a mutant claims to break gets a worse verdict than on its control: ``fail``
  for a MUST, ``warn`` for a SHOULD or MAY, ``fail`` or (where the mutant removes the
  feature) ``unsupported`` for an optional row, and for an ``info`` row, where the spec
  leaves the behaviour open, a recorded observation that differs from the control's;
* the neighbouring rows a mutant claims to keep keep the control's verdict, so a check
  fails for its own rule and not because anything unusual trips it;
* every requirement of the catalogue is broken by at least one mutant;
* the run leaves no process behind (its duration is measured by ``benchmarks/bench_mutants.py``).
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance import Level, catalogue
from tests._processes import processes_with
from tests.mutants import CONTROL, MUTANTS, Mutant, control_of, mutant_target, target_name


ROOT = Path(__file__).resolve().parent.parent
#: A hard stop for the subprocess, far above its usual length (benchmarks/bench_mutants.py:
#: about 180 s on 2 cores): a hang must not hang the self-tests.
HARD_TIMEOUT = 900.0
#: Mutants whose checks wait out their bounds (a blind probe, a lock): started first, so
#: one worker runs them while the other goes through the quick ones.
SLOW = ("global-lock", "scope-type")
#: Marks every process of one run (inherited by the servers), for the leak check.
TOKEN_VARIABLE = "ASGI_CONFORMANCE_MUTANT_RUN"
#: While working on one area: ``ASGI_CONFORMANCE_MUTANTS='lifespan-*'`` runs only the mutants
#: whose names match (shell-style patterns, comma-separated); the catalogue-wide proof is
#: then skipped, since the other mutants did not run.
SELECT_VARIABLE = "ASGI_CONFORMANCE_MUTANTS"


def _selected(name: str) -> bool:
    patterns = [p for p in os.environ.get(SELECT_VARIABLE, "").split(",") if p.strip()]
    return not patterns or any(fnmatch.fnmatchcase(name, p.strip()) for p in patterns)


#: Genuine findings of the plain servers under the runner (server -> row -> verdict); every
#: other row must pass or be info (or unsupported, for an optional feature the server does
#: not offer: see :func:`_clean`).  HTTP findings are here; an area module of
#: ``tests/mutant_areas`` adds its own as ``KNOWN_FINDINGS``, next to its mutants.
#: uvicorn 0.54 (httptools protocol, protocols/http/httptools_impl.py ``send``) chunks a
#: response to an HTTP/1.0 request, and honours an app's Transfer-Encoding next to its
#: Content-Length, sending both fields.
HTTP_FINDINGS: Mapping[str, Mapping[str, str]] = {
    "uvicorn": {
        "http.response.http10-framing": "fail",
        "http.response.transfer-encoding-ignored": "fail",
    },
    # hypercorn 0.18 (protocol/http_stream.py) queues http.disconnect once, so a second
    # receive() waits for ever; and it builds the status line with int(status), so a
    # str status "200" goes out as a 200 instead of raising.
    "hypercorn": {
        "http.disconnect.repeats": "fail",
        "http.error.invalid-status": "warn",
    },
}


def _known_findings() -> dict[str, dict[str, str]]:
    """:data:`HTTP_FINDINGS` merged with every mutant area's ``KNOWN_FINDINGS``."""
    import pkgutil

    import tests.mutant_areas as areas

    merged = {server: dict(rows) for server, rows in HTTP_FINDINGS.items()}
    for info in pkgutil.iter_modules(areas.__path__):
        module = importlib.import_module(f"tests.mutant_areas.{info.name}")
        for server, rows in getattr(module, "KNOWN_FINDINGS", {}).items():
            merged.setdefault(server, {}).update(rows)
    return merged


KNOWN_FINDINGS: Mapping[str, Mapping[str, str]] = _known_findings()

#: Verdicts that judge a server clean.
CLEAN = frozenset({"pass", "info"})


def _clean(rid: str, verdict: str) -> bool:
    """pass/info, or unsupported on an optional row: not offering an extension is no finding."""
    return verdict in CLEAN or (
        verdict == "unsupported" and catalogue()[rid].level is Level.OPTIONAL
    )


@dataclass(frozen=True)
class MutantRun:
    """What the subprocess session left: its matrix, output and timing."""

    matrix: dict[str, Any]
    seconds: float
    returncode: int
    output: str
    token: str

    def cell(self, target: str, rid: str) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = self.matrix["results"].get(target, {})
        if rid not in results:
            raise AssertionError(f"no result for {rid} on {target}; the run said:\n{self.tail()}")
        return results[rid]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def _profile(target: str, mutant: str, server: str) -> str:
    """A profile file for one mutant: a template cannot carry the root-path option."""
    command = [
        "{python}", "-m", "tests.mutants", mutant, "--server", server,
        "--host", "{host}", "--port", "{port}", "{app}",
    ]  # fmt: skip
    return "\n".join(
        [
            f'name = "{target}"',
            f'package = "{server}"',
            f"command = {json.dumps(command)}",
            "",
            "[offers]",
            'protocols = ["http/1.0", "http/1.1", "websocket"]',
            "lifespan = true",
            "",
            "[options]",
            'root_path = ["--root-path", "{root_path}"]',
            "",
            # hypercorn's plain bind also speaks HTTP/2 with prior knowledge.
            "[protocols.h2c]",
            'wire = "h2"',
            "",
            # hypercorn, given a certificate and a UDP port, also speaks HTTP/3.
            "[protocols.h3]",
            'wire = "h3"',
            "tls = true",
            'args = ["--certfile", "{certfile}", "--keyfile", "{keyfile}", "--quic-port", "{quic_port}"]',
            "",
            "[protocols.https]",
            'wire = "http/1.1"',
            "tls = true",
            'args = ["--certfile", "{certfile}", "--keyfile", "{keyfile}"]',
            'client_cert_args = ["--ca-certs", "{ca_certs}"]',
            "",
        ]
    )


def _selection(directory: Path) -> list[str]:
    """The ``--asgi-server`` values: plain uvicorn, the two controls, every mutant."""
    servers = ["uvicorn"]
    mutants = sorted(
        (n for n in MUTANTS if n != CONTROL and _selected(n)), key=lambda n: n not in SLOW
    )
    protocol_controls = sorted(
        {(MUTANTS[n].server, MUTANTS[n].column) for n in mutants if MUTANTS[n].column}
    )
    columns: list[tuple[str, str, str | None]] = [
        (CONTROL, "uvicorn", None),
        (CONTROL, "hypercorn", None),
        *((CONTROL, server, column) for server, column in protocol_controls),
        *((name, MUTANTS[name].server, MUTANTS[name].column) for name in mutants),
    ]
    for name, server, column in columns:
        target = target_name(name, server)
        path = directory / f"{target}.toml"
        path.write_text(_profile(target, name, server), encoding="utf-8")
        servers.append(f"{path}+{column}" if column else str(path))
    return servers


def _processes_with(token: str) -> list[tuple[int, str]]:
    return processes_with(TOKEN_VARIABLE, token)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Interrupt a hung session (its plugin then reaps the servers), kill it if that fails."""
    for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def mutant_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutantRun]:
    """One pytest session over plain uvicorn, both controls and every mutant."""
    workdir = tmp_path_factory.mktemp("mutant-run")
    profiles = workdir / "profiles"
    profiles.mkdir()
    report = workdir / "report"
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[TOKEN_VARIABLE] = token
    # The plugin schedules by target (conformance/_xdist.py).  Mutant columns mostly wait
    # (lifespan watches, bounded negatives), so two workers per core overlap the waits;
    # the verdicts hold on a loaded machine (tests/test_under_load.py).
    workers = str(2 * (len(os.sched_getaffinity(0)) or 1))
    parallel = ["-n", workers] if importlib.util.find_spec("xdist") else []
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.mutants",
        "-q", "--no-header", "-rN", *parallel, "--asgi-report", str(report),
        *(f"--asgi-server={server}" for server in _selection(profiles)),
    ]  # fmt: skip
    began = time.monotonic()
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
        _stop(proc)
        output = (proc.stdout.read() if proc.stdout else "") + "\n[killed: hard timeout]"
    seconds = time.monotonic() - began
    matrix_path = report / "matrix.json"
    # 0: every check passed (impossible with mutants); 1: some failed.  Anything else
    # (interrupted, internal error, usage error) means the matrix cannot be trusted.
    tail = "\n".join(output.splitlines()[-60:])
    assert proc.returncode in (0, 1), f"the mutant session ended with {proc.returncode}:\n{tail}"
    assert matrix_path.exists(), f"the mutant session wrote no matrix:\n{tail}"
    matrix = json.loads(matrix_path.read_text(encoding="utf-8"))
    yield MutantRun(matrix, seconds, proc.returncode, output, token)
    for pid, _ in _processes_with(token):  # only ever processes of this run
        os.kill(pid, signal.SIGKILL)


# -- the table itself (no server needed) -----------------------------------------------------


def test_every_claim_names_a_catalogue_requirement() -> None:
    known = catalogue()
    for name, mutant in MUTANTS.items():
        unknown = [rid for rid in (*mutant.breaks, *mutant.keeps) if rid not in known]
        assert not unknown, f"mutant {name} claims unknown requirements {unknown}"
        assert set(mutant.removes) <= set(mutant.breaks), f"mutant {name}: removes ⊄ breaks"
        both = set(mutant.breaks) & set(mutant.keeps)
        assert not both, f"mutant {name} both breaks and keeps {sorted(both)}"
        for rid in mutant.removes:
            assert known[rid].level is Level.OPTIONAL, (
                f"mutant {name} removes {rid}, which is {known[rid].level.value}, not optional"
            )


@pytest.mark.parametrize("name", [n for n in MUTANTS if n != CONTROL])
def test_every_mutant_says_which_rule_it_breaks(name: str) -> None:
    mutant = MUTANTS[name]
    assert mutant.breaks, f"mutant {name} claims to break nothing"
    assert ".rst" in mutant.rule, (
        f"mutant {name}'s docstring cites no spec section: {mutant.rule!r}"
    )


def test_every_requirement_is_claimed_by_a_mutant() -> None:
    claimed = {rid for mutant in MUTANTS.values() for rid in mutant.breaks}
    unclaimed = [rid for rid in catalogue() if rid not in claimed]
    assert not unclaimed, f"no mutant breaks {unclaimed}: their checks are not proven"


def test_the_runners_graceful_timeout_outlasts_the_held_request() -> None:
    """The control must not cut off the request lifespan.shutdown.after-requests holds."""
    from conformance.suite.test_lifespan import HOLD
    from tests.mutants import GRACEFUL_UNITS

    assert GRACEFUL_UNITS >= 4 * HOLD


# -- the run ---------------------------------------------------------------------------------


def test_plain_uvicorn_has_only_its_known_findings(mutant_run: MutantRun) -> None:
    results = mutant_run.matrix["results"]["uvicorn"]
    missing = [rid for rid in _cleartext_rows() if rid not in results]
    assert not missing, f"uvicorn was not judged on {missing}"
    findings = {
        rid: cell["verdict"] for rid, cell in results.items() if not _clean(rid, cell["verdict"])
    }
    assert findings == dict(KNOWN_FINDINGS["uvicorn"]), "\n".join(
        f"{rid}: {results[rid]['verdict']}: {results[rid]['detail']}" for rid in findings
    )


def _cleartext_rows() -> list[str]:
    """The rows of a cleartext HTTP/1.1 column (the catalogue's other rows have no cell there)."""
    return [rid for rid, req in catalogue().items() if req.applies("http/1.1", False)]


def test_the_protocol_controls_are_clean(mutant_run: MutantRun) -> None:
    """Each control on a protocol column passes every row its mutants claim there."""
    claims: dict[str, set[str]] = {}
    for name, mutant in MUTANTS.items():
        if mutant.column and _selected(name):
            claims.setdefault(control_of(name), set()).update((*mutant.breaks, *mutant.keeps))
    for control, rows in claims.items():
        results = mutant_run.matrix["results"].get(control, {})
        bad = [
            f"{rid}: {results[rid]['verdict'] if rid in results else 'not judged'}"
            for rid in sorted(rows)
            if rid not in results or not _clean(rid, results[rid]["verdict"])
        ]
        assert not bad, f"{control} is not clean:\n" + "\n".join(bad)


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_the_unmodified_runner_is_clean(mutant_run: MutantRun, server: str) -> None:
    """The control passes every row: a mutant's failures are its middleware's doing."""
    control = target_name(CONTROL, server)
    results = mutant_run.matrix["results"][control]
    missing = [rid for rid in _cleartext_rows() if rid not in results]
    assert not missing, f"{control} was not judged on {missing}"
    known = KNOWN_FINDINGS.get(server, {})
    bad = [
        f"{rid}: {cell['verdict']}: {cell['detail']}"
        for rid, cell in results.items()
        if not _clean(rid, cell["verdict"]) and known.get(rid) != cell["verdict"]
    ]
    assert not bad, f"{control} is not clean:\n" + "\n".join(bad)


def test_the_uvicorn_control_agrees_with_plain_uvicorn(mutant_run: MutantRun) -> None:
    """The runner serves the probe as uvicorn's own CLI does, verdict for verdict."""
    plain = mutant_run.matrix["results"]["uvicorn"]
    control = mutant_run.matrix["results"][target_name(CONTROL, "uvicorn")]
    differ = {
        rid: (plain[rid]["verdict"], control[rid]["verdict"])
        for rid in plain
        if plain[rid]["verdict"] != control.get(rid, {}).get("verdict")
    }
    assert not differ, f"uvicorn vs the control (plain, control): {differ}"


def _expected(mutant: Mutant, rid: str) -> str:
    level = catalogue()[rid].level
    if level is Level.MUST:
        return "fail"
    if level in (Level.SHOULD, Level.MAY):
        return "warn"
    if level is Level.OPTIONAL:
        return "unsupported" if rid in mutant.removes else "fail"
    return "info"


def _broken(run: MutantRun, name: str, rid: str) -> str:
    """Why ``rid`` does not count as broken by mutant ``name``; "" when it does."""
    mutant = MUTANTS[name]
    target = mutant_target(name)
    control = run.cell(control_of(name), rid)
    got = run.cell(target, rid)
    expected = _expected(mutant, rid)
    # An optional feature the control does not offer is proven by a mutant that advertises
    # it and gets it wrong (fail); removing it needs a control that offers it.
    if not _clean(rid, control["verdict"]) or (
        control["verdict"] == "unsupported" and rid in mutant.removes
    ):
        return f"{rid}: the control itself is {control['verdict']}: {control['detail']}"
    if got["verdict"] != expected:
        return (
            f"{rid} ({catalogue()[rid].level.value}): expected {expected}, "
            f"got {got['verdict']}: {got['detail'][:500]!r}"
        )
    if expected == "info" and got["detail"] == control["detail"]:
        return f"{rid} (info): the observation is the control's: {got['detail']!r}"
    return ""


@pytest.mark.parametrize("name", [n for n in MUTANTS if n != CONTROL])
def test_mutant_breaks_what_it_claims(mutant_run: MutantRun, name: str) -> None:
    if not _selected(name):
        pytest.skip(f"not selected by {SELECT_VARIABLE}")
    mutant = MUTANTS[name]
    target = mutant_target(name)
    assert target in mutant_run.matrix["results"], (
        f"{target} is missing from the matrix:\n{mutant_run.tail()}"
    )
    problems = [p for rid in mutant.breaks if (p := _broken(mutant_run, name, rid))]
    for rid in mutant.keeps:
        control = mutant_run.cell(control_of(name), rid)
        got = mutant_run.cell(target, rid)
        if got["verdict"] != control["verdict"]:
            problems.append(
                f"{rid} must keep the control's {control['verdict']}, "
                f"got {got['verdict']}: {got['detail'][:500]!r}"
            )
    assert not problems, f"mutant {name} ({mutant.rule}):\n" + "\n".join(problems)
    judged = set(mutant_run.matrix["results"][target])
    claimed = {*mutant.breaks, *mutant.keeps}
    assert judged == claimed, f"{target} was judged on {sorted(judged)}, not {sorted(claimed)}"


def test_every_requirement_is_proven_by_a_mutant(mutant_run: MutantRun) -> None:
    """A check no mutant makes worse is not done: every catalogue row must be proven."""
    if os.environ.get(SELECT_VARIABLE):
        pytest.skip(f"only some mutants ran ({SELECT_VARIABLE})")
    proven = {
        rid
        for name, mutant in MUTANTS.items()
        if name != CONTROL
        for rid in mutant.breaks
        if mutant_target(name) in mutant_run.matrix["results"]
        and rid in mutant_run.matrix["results"][mutant_target(name)]
        and not _broken(mutant_run, name, rid)
    }
    unproven = [rid for rid in catalogue() if rid not in proven]
    assert not unproven, f"no mutant demonstrably breaks {unproven}"


def test_no_process_is_left_behind(mutant_run: MutantRun) -> None:
    """The plugin reaps every server's process group; nothing of the run outlives it."""
    deadline = time.monotonic() + 3.0
    left = _processes_with(mutant_run.token)
    while left and time.monotonic() < deadline:  # exiting workers may take a moment
        time.sleep(0.1)
        left = _processes_with(mutant_run.token)
    assert not left, "processes left behind:\n" + "\n".join(f"{p} {c}" for p, c in left)


# -- reproducers: a failing cell's second opinion, run without the harness ----------------------

#: (mutant, requirement, what its failure puts on the wire): the reproducer of that cell,
#: served by the mutant with nothing of the suite around it, shows the same thing, and the
#: unmodified runner given the same reproducer does not.
REPRODUCED = (
    ("response-values-reencoded", "http.response.headers-exact", b"caf\xc3\xa9", "xc3"),
    ("status-rewritten", "http.response.status", b"HTTP/1.1 500 ", "500"),
)


def _serve_reproducer(mutant: str, app_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m tests.mutants MUTANT repro:app`` on a free port, once it listens."""
    import socket

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(app_dir), str(ROOT)])}
    for _ in range(5):  # the port is free when picked; another process may take it first
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "tests.mutants", mutant, "repro:app", "--port", str(port)]
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20.0
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise AssertionError(f"the {mutant} runner never listened")


def _answer(request: bytes, port: int) -> bytes:
    """The server's bytes for ``request`` until it closes, stops for a second, or 64 KiB."""
    import socket

    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as conn:
        conn.sendall(request)
        conn.settimeout(1.0)
        while len(received) < 65536:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
    return received


@pytest.mark.parametrize(("name", "rid", "needle", "observed"), REPRODUCED)
def test_a_reproducer_shows_the_failure_without_the_harness(
    mutant_run: MutantRun, tmp_path: Path, name: str, rid: str, needle: bytes, observed: str
) -> None:
    import ast

    if not _selected(name):
        pytest.skip(f"not selected by {SELECT_VARIABLE}")
    cell = mutant_run.cell(mutant_target(name), rid)
    assert cell["verdict"] == "fail", cell
    assert observed in cell["detail"], cell["detail"]
    repro = cell["reproducer"]
    (tmp_path / "repro.py").write_text(repro["app"], encoding="utf-8")
    request = ast.literal_eval(repro["request"])
    answers = {}
    for server in (name, CONTROL):
        proc, port = _serve_reproducer(server, tmp_path)
        try:
            answers[server] = _answer(request, port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert needle in answers[name], f"the reproducer did not show it: {answers[name]!r}"
    assert needle not in answers[CONTROL], f"the control shows it too: {answers[CONTROL]!r}"
