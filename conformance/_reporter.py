"""The controller-side reporter: folds reports into the matrix and writes it once.

Registered only on the controller (never on an xdist worker), so the files are
written by one process, from every report the run produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance import __version__
from conformance._fixtures import targets
from conformance._known import KNOWN, KnownFailure
from conformance._matrix import INTERRUPTED_NOTE, MatrixBuilder, render_terminal, write_matrix
from conformance._verdicts import Verdict


__all__ = ["EXIT_SERVER_DID_NOT_START", "MatrixReporter"]

#: The exit status of a run in which some server never started (pytest's own go to 5): a
#: CI job can tell "the server is broken" from "the server breaks the spec".
EXIT_SERVER_DID_NOT_START = 6
#: How much of a server's log a "did not start" line shows in the terminal.
_TAIL_LINES = 12


class MatrixReporter:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.builder = MatrixBuilder(__version__)
        for target in targets(config).values():
            self.builder.add_server(target.name, target.describe())
        self.written: list[Path] = []
        self.matrix: dict[str, Any] | None = None
        #: Targets whose server never started, and why (the reason and its log tail).
        self.unstarted: dict[str, str] = {}
        #: The report directory, when it was left as it was (nothing was judged).
        self.kept: Path | None = None
        #: Known failures that pass now (they fail the run), and those naming no column.
        self.stale: list[tuple[str, str, str, KnownFailure]] = []
        self.unused: list[KnownFailure] = []

    @pytest.hookimpl(trylast=True)  # after junitxml has opened the report's testcase
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = {
            name: value for name, value in report.user_properties if str(name).startswith("asgi.")
        }
        if "asgi.verdict" not in props:
            return
        target = str(props["asgi.target"])
        _junit_testcase(self.config, report, str(props["asgi.requirement"]), target, props)
        if props.get("asgi.unstarted"):
            self.unstarted.setdefault(target, str(props["asgi.unstarted"]))
        server = props.get("asgi.server")
        if isinstance(server, dict):
            self.builder.add_server(target, server)
        self.builder.add_result(
            target=target,
            requirement=str(props["asgi.requirement"]),
            verdict=Verdict(props["asgi.verdict"]),
            detail=str(props.get("asgi.detail", "")),
            check=str(props.get("asgi.check", "")),
            log=str(props.get("asgi.log", "")),
            reproducer=_reproducer(props.get("asgi.reproducer")),
            known=_reproducer(props.get("asgi.known")),
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.option.collectonly:
            return  # listing the checks judges nothing: keep the last report
        if exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop or session.shouldfail:
            self.builder.partial = True
            self.builder.notes.append(INTERRUPTED_NOTE)
        self.builder.left_out = self._left_out()
        if self.builder.left_out:
            self.builder.notes.append(
                f"a subset run: {len(self.builder.left_out)} rows of the catalogue were not "
                "judged (matrix.json 'left_out')"
            )
        for target, reason in self.unstarted.items():
            why = reason.splitlines()[0].removeprefix(f"{target}: ")
            self.builder.notes.append(f"{target} did not start: {why}")
        self.matrix = self.builder.build()
        known = self.config.stash.get(KNOWN, None)
        if known is not None:
            self.stale = known.stale(self.matrix["results"])
            self.unused = known.unused(self.matrix["results"])
            for column, rid, verdict, _ in self.stale:
                self.matrix["notes"].append(
                    f"stale known failure: {column} {rid} is {verdict} now ({known.source})"
                )
            if self.stale and exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        directory = Path(self.config.getoption("--asgi-report"))
        if not directory.is_absolute():
            directory = self.config.invocation_params.dir / directory
        if self.unstarted and set(self.unstarted) >= set(self.matrix["results"]):
            self.kept = directory  # nothing was judged: an older report is worth more
        else:
            self.written = write_matrix(self.matrix, directory)
        if self.unstarted and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = EXIT_SERVER_DID_NOT_START

    def _left_out(self) -> list[str]:
        """Rows some column of the run has, judged on none (``-k``, ``--asgi-only``, ...)."""
        from conformance._catalogue import catalogue

        columns = list(targets(self.config).values())
        judged = {rid for row in self.builder.cells.values() for rid in row}
        return [
            rid
            for rid, req in catalogue().items()
            if rid not in judged and any(req.applies(t.wire, t.tls) for t in columns)
        ]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.unstarted:
            terminalreporter.section("ASGI servers that did not start", red=True)
            for reason in self.unstarted.values():
                first, *rest = reason.splitlines()
                terminalreporter.write_line(first.strip())
                for line in rest[-_TAIL_LINES:]:
                    terminalreporter.write_line(f"    {line}")
            if self.kept is not None:
                terminalreporter.write_line(
                    f"no server started, so nothing was judged: {self.kept} was left as it was"
                )
        self._known_summary(terminalreporter)
        if not self.matrix or not self.matrix["results"] or self.kept is not None:
            return
        terminalreporter.section("ASGI conformance matrix")
        for line in render_terminal(self.matrix):
            terminalreporter.write_line(line)
        for line in _counting(self.matrix):
            terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"wrote {path}")

    def _known_summary(self, terminalreporter: Any) -> None:
        known = self.config.stash.get(KNOWN, None)
        if known is None:
            return
        if self.stale:
            terminalreporter.section("stale known failures", red=True)
            for column, rid, verdict, entry in self.stale:
                terminalreporter.write_line(
                    f"{column} {rid}: {verdict} now; remove it from {known.source} "
                    f"(it said: {entry.describe()})"
                )
        for entry in self.unused:
            terminalreporter.write_line(
                f"known failure for no column of this run: [{entry.target}] {entry.requirement}"
            )


def _reproducer(value: object) -> dict[str, str] | None:
    """A report's reproducer or known property (a plain dict, as xdist carries it), or None."""
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}


def _junit_testcase(
    config: pytest.Config, report: pytest.TestReport, rid: str, target: str, props: dict[str, Any]
) -> None:
    """With ``--junitxml``: the testcase is named by requirement id and column, and carries
    the requirement, its level and spec section, and the verdict (an ``info`` or a
    ``warn`` is otherwise a bare pass or skip to a CI dashboard)."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    from conformance._catalogue import requirement

    req = requirement(rid)
    testcase = xml.node_reporter(report)
    testcase.add_attribute("name", f"{rid}[{target}]")
    for name, value in (
        ("asgi.requirement", rid),
        ("asgi.level", req.level.value),
        ("asgi.spec", req.citation),
        ("asgi.verdict", str(props["asgi.verdict"])),
        ("asgi.check", str(props.get("asgi.check", ""))),
    ):
        testcase.add_property(name, value)
    known = props.get("asgi.known")
    if isinstance(known, dict):
        # An expected failure: the dashboard shows the reason the server's author gave.
        testcase.add_property("asgi.known", str(known.get("reason", "")))
        if known.get("issue"):
            testcase.add_property("asgi.known-issue", str(known["issue"]))


def _counting(matrix: dict[str, Any]) -> list[str]:
    """Why pytest's summary and the matrix's counts differ: what each of them counts."""
    cells = [cell for row in matrix["results"].values() for cell in row.values()]
    checks = sum(len(cell.get("checks") or ()) or 1 for cell in cells)
    return [
        f"counts: {len(cells)} cells (a requirement on a column: the worst of its checks) "
        f"from {checks} check results;",
        "pytest counts the checks, with warn as xfailed (W), unsupported as skipped (u), "
        "info as passed (i)",
    ]
