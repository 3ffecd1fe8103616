"""Mapping a check's outcome onto a verdict and onto pytest's report.

The verdict table lives in :mod:`conformance._verdicts`; this module applies it
to a pytest report.  What a server author's CI sees:

* ``fail`` is a failed test (the server breaks a MUST);
* ``warn`` is shown as an expected failure (``W``), a failure under ``--asgi-strict``;
* ``unsupported`` is a skip, ``info`` a pass (``i``);
* ``error`` is a test error: the harness could not judge, never a conformance failure.

Every report carries ``asgi.*`` user properties (plain values, so they survive
xdist's serialisation) from which the controller builds the matrix.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from conformance._catalogue import requirement
from conformance._evidence import elide_probe_fields, own_log
from conformance._fixtures import UNSTARTED, judged_requirement
from conformance._known import EXCUSED, KNOWN
from conformance._probe import Probe, ServerUnderTest
from conformance._reproducer import reproducer
from conformance._verdicts import ConformanceFailure, Unsupported, Verdict, verdict_for


__all__ = ["judge_report", "short_verdict_failures"]

_DETAIL_LIMIT = 2000


def _first_lines(text: str, limit: int = _DETAIL_LIMIT) -> str:
    text = elide_probe_fields(text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _log_excerpt(item: pytest.Item) -> str:
    probe = item.funcargs.get("asgi") if hasattr(item, "funcargs") else None
    server = item.funcargs.get("asgi_server") if hasattr(item, "funcargs") else None
    if not isinstance(server, ServerUnderTest):
        return ""
    offsets = probe.log_offsets if isinstance(probe, Probe) else {}
    parts = []
    if isinstance(probe, Probe) and probe.exchanges:
        wire = elide_probe_fields(probe.wire_evidence())
        parts.append("--- wire (> sent, < received) ---\n" + wire)
    rids = probe.rids if isinstance(probe, Probe) else []
    for instance in server.instances():
        text = own_log(instance.log_since(offsets.get(instance.pid or -1, 0)), rids)
        if not text.strip() and instance.exit_status() is not None:
            # Nothing was logged during the check, and the process is gone: its tail says why.
            text = instance.log_tail(20)
        if text.strip():
            parts.append(
                f"--- server log ({instance.target.name}, pid {instance.pid}) ---\n{text.rstrip()}"
            )
    return "\n".join(parts)


def judge_report(
    item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport, *, strict: bool
) -> None:
    rid = judged_requirement(item)
    assert rid is not None
    req = requirement(rid)
    target = getattr(item, "callspec", None)
    target_name = str(target.params.get("asgi_server", "?")) if target else "?"
    excinfo = call.excinfo
    unstarted = item.stash.get(UNSTARTED, "")
    if report.when in ("setup", "teardown"):
        if report.passed:
            return
        if unstarted:
            verdict = Verdict.ERROR
            detail = "harness error in setup: " + _first_lines(unstarted)
        elif report.skipped:
            verdict = Verdict.UNSUPPORTED
            detail = _skip_reason(report)
        else:
            verdict = Verdict.ERROR
            detail = f"harness error in {report.when}: " + (
                _first_lines(str(excinfo.value)) if excinfo else "unknown"
            )
    else:
        verdict, detail = _judge_call(item, excinfo, req.level)
    log = _log_excerpt(item) if verdict.severity >= Verdict.WARN.severity else ""
    repro = None
    probe = item.funcargs.get("asgi") if hasattr(item, "funcargs") else None
    if verdict in (Verdict.FAIL, Verdict.WARN) and isinstance(probe, Probe):
        made = reproducer(probe.sent, detail)
        repro = made.to_json() if made is not None else None
    report.user_properties.extend(
        [
            ("asgi.requirement", req.id),
            ("asgi.target", target_name),
            ("asgi.verdict", verdict.value),
            ("asgi.detail", detail),
            ("asgi.check", item.name.split("[", 1)[0]),
            ("asgi.log", log),
            ("asgi.reproducer", repro),
            ("asgi.unstarted", unstarted),
        ]
    )
    server = item.funcargs.get("asgi_server") if hasattr(item, "funcargs") else None
    if isinstance(server, ServerUnderTest):
        info: dict[str, Any] = server.target.describe()
        instances = server.every_instance()
        if instances:
            info["command"] = shlex.join(instances[0].command)
        info["boots"] = [
            {"config": i.config.key, "seconds": round(i.boot_seconds, 3)} for i in instances
        ]
        info["restarts"] = server.restarts
        info["crashes"] = list(server.crashes)
        report.user_properties.append(("asgi.server", info))
    if report.when != "call":
        return
    known = item.config.stash.get(KNOWN, None)
    entry = known.lookup(target_name, req.id) if known and verdict.value in EXCUSED else None
    if entry is not None:
        # Accepted by the server's author: expected, and still a fail in the matrix.
        report.user_properties.append(("asgi.known", entry.to_json()))
        report.outcome = "skipped"
        report.wasxfail = f"known failure ({req.id}): {entry.describe()}; found: {detail}"
        report.longrepr = None
        return
    where = f"{req.id} ({req.level.value}, {req.citation}) {req.url}"
    if verdict is Verdict.PASS or verdict is Verdict.INFO:
        report.outcome = "passed"
        report.longrepr = None
    elif verdict is Verdict.UNSUPPORTED:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"unsupported: {detail}")
    elif verdict is Verdict.WARN and not strict:
        report.outcome = "skipped"
        report.wasxfail = f"{req.level.value} not met ({req.id}): {detail}"
        report.longrepr = None
    else:
        report.outcome = "failed"
        report.sections.append(("ASGI requirement", where + "\n" + detail))
        if log:
            report.sections.append((f"evidence ({target_name})", log))


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _judge_call(
    item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException] | None, level: Any
) -> tuple[Verdict, str]:
    probe = getattr(item, "funcargs", {}).get("asgi")
    notes = "; ".join(probe.notes) if isinstance(probe, Probe) else ""
    if excinfo is None:
        return verdict_for(level, None), _first_lines(notes)
    if excinfo.errisinstance(pytest.skip.Exception):
        return Verdict.UNSUPPORTED, _first_lines(
            str(excinfo.value.msg if hasattr(excinfo.value, "msg") else excinfo.value)
        )
    verdict = verdict_for(level, excinfo.type)
    message = str(excinfo.value) or excinfo.typename
    server = getattr(item, "funcargs", {}).get("asgi_server")
    crashed = server.crashed() if isinstance(server, ServerUnderTest) else ""
    if crashed and verdict.severity >= Verdict.WARN.severity:
        # A dead server cannot be judged: what failed is the run, not a requirement.
        return Verdict.ERROR, _first_lines(f"{crashed}\n(the check saw: {message})")
    if verdict is Verdict.ERROR:
        message = f"harness error: {excinfo.typename}: {message}"
    elif verdict is Verdict.INFO and notes:
        message = f"{notes}; {message}"
    return verdict, _first_lines(message)


def short_verdict_failures(item: pytest.Item) -> None:
    """Make ``item`` report a verdict exception as its message, not as a traceback.

    A ``ConformanceFailure`` or ``Unsupported`` says in words what was sent,
    expected and observed; a traceback into the suite's own code adds nothing
    for a server author, and pytest builds one by parsing the check's module for
    every frame: for a module of a thousand lines that was 40 ms per report, the
    largest cost of a column's non-passing checks.  Any other exception (a bug
    in a check, a harness error) keeps pytest's full traceback.
    """
    full = item.repr_failure

    def repr_failure(excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        if not excinfo.errisinstance((ConformanceFailure, Unsupported)):
            return full(excinfo)
        where = next(
            (
                f"{entry.path}:{entry.lineno + 1}"
                for entry in reversed(excinfo.traceback)
                if str(entry.path) == str(item.path)
            ),
            str(item.path),
        )
        return f"{where}: {excinfo.typename}: {excinfo.value}"

    item.repr_failure = repr_failure  # type: ignore[method-assign,assignment]
