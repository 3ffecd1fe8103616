"""The compliance matrix: requirement x server, built from test reports.

Rows are catalogue requirement ids, never pytest node ids (those depend on where
the package is installed).  The builder runs on the pytest controller and folds
every report it is given, local or replayed from an xdist worker, so the matrix
is the same serially and in parallel.  Several checks may judge one requirement;
the worst verdict stands for the cell, and its detail lists what each found.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance._catalogue import PROTOCOLS, catalogue, catalogue_digest
from conformance._verdicts import Verdict


__all__ = ["SCHEMA_VERSION", "MatrixBuilder", "load_matrix", "write_matrix"]

SCHEMA_VERSION = 1
#: How a verdict is drawn in a one-character cell.
SYMBOLS: Mapping[str, str] = {
    "pass": "✓",
    "fail": "✗",
    "warn": "!",
    "unsupported": "-",
    "info": "i",
    "error": "E",
}
VERDICT_ORDER = ("pass", "fail", "warn", "unsupported", "info", "error")


@dataclass
class _Cell:
    verdict: Verdict = Verdict.PASS
    findings: list[tuple[Verdict, str, str]] = field(default_factory=list)
    log: str = ""
    #: The reproducer of the worst fail or warn finding (see conformance/_reproducer.py).
    reproducer: dict[str, str] | None = None
    #: The known-failures entry that excuses this cell (conformance/_known.py).
    known: dict[str, str] | None = None

    def add(
        self,
        verdict: Verdict,
        detail: str,
        check: str,
        log: str,
        reproducer: dict[str, str] | None = None,
    ) -> None:
        worse = not self.findings or verdict.severity > self.verdict.severity
        if worse:
            self.verdict = verdict
        self.findings.append((verdict, check, detail))
        if log and verdict.severity >= Verdict.WARN.severity:
            self.log = log
        if reproducer and (worse or self.reproducer is None):
            self.reproducer = reproducer

    def to_json(self) -> dict[str, Any]:
        # The worst findings first: they explain the verdict.
        ordered = sorted(self.findings, key=lambda f: -f[0].severity)
        lines = []
        for verdict, check, detail in ordered:
            if detail and (verdict is self.verdict or verdict.severity >= Verdict.WARN.severity):
                lines.append(f"[{check}] {detail}" if len(ordered) > 1 else detail)
        result: dict[str, Any] = {
            "verdict": self.verdict.value,
            "detail": "\n".join(dict.fromkeys(lines)),
            "checks": [
                {"check": check, "verdict": verdict.value, "detail": detail}
                for verdict, check, detail in self.findings
            ],
        }
        if self.log:
            result["log"] = self.log
        if self.reproducer and self.verdict in (Verdict.FAIL, Verdict.WARN):
            result["reproducer"] = self.reproducer
        if self.known and self.verdict in (Verdict.FAIL, Verdict.WARN):
            result["known"] = self.known
        return result


class MatrixBuilder:
    """Folds per-check results into cells, in the order servers and rows were first seen."""

    def __init__(self, suite_version: str) -> None:
        self.suite_version = suite_version
        self.servers: dict[str, dict[str, Any]] = {}
        self.cells: dict[str, dict[str, _Cell]] = {}
        #: The run was interrupted (Ctrl-C, ``-x``).
        self.partial = False
        self.notes: list[str] = []
        #: Rows of the catalogue the run's columns have but the run did not judge (a subset).
        self.left_out: list[str] = []

    def add_server(self, name: str, info: Mapping[str, Any]) -> None:
        current = self.servers.setdefault(name, {})
        current.update(info)
        self.cells.setdefault(name, {})

    def add_result(
        self,
        *,
        target: str,
        requirement: str,
        verdict: Verdict,
        detail: str,
        check: str,
        log: str = "",
        reproducer: dict[str, str] | None = None,
        known: dict[str, str] | None = None,
    ) -> None:
        self.servers.setdefault(target, {"name": target})
        row = self.cells.setdefault(target, {})
        cell = row.setdefault(requirement, _Cell())
        cell.add(verdict, detail, check, log, reproducer)
        cell.known = cell.known or known

    def build(self) -> dict[str, Any]:
        known = catalogue()
        used = {req for row in self.cells.values() for req in row}
        ordered_ids = [rid for rid in known if rid in used] + sorted(used - set(known))
        results = {
            target: {rid: row[rid].to_json() for rid in ordered_ids if rid in row}
            for target, row in self.cells.items()
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "suite_version": self.suite_version,
            "catalogue": catalogue_digest(),
            "partial": self.partial or bool(self.left_out),
            "notes": self.notes,
            "left_out": list(self.left_out),
            "servers": self.servers,
            "checks": {rid: known[rid].to_json() for rid in ordered_ids if rid in known},
            "results": results,
        }


#: What an absent cell shows where the requirement does not exist on the column's protocol.
NOT_APPLICABLE = "n/a"


def applies(matrix: Mapping[str, Any], server: str, rid: str) -> bool:
    """Whether requirement ``rid`` exists on column ``server`` (an HTTP/1-only row on an h2
    column does not: its cell is n/a, not missing), from the matrix alone."""
    check = matrix["checks"].get(rid, {})
    info = matrix["servers"].get(server, {})
    protocol, tls = check.get("protocol"), check.get("tls")
    if protocol and info.get("protocol", "http/1.1") not in PROTOCOLS.get(protocol, ()):
        return False
    return tls is None or bool(info.get("tls", False)) == tls


def counts(results: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    tally = dict.fromkeys(VERDICT_ORDER, 0)
    for cell in results.values():
        tally[cell["verdict"]] = tally.get(cell["verdict"], 0) + 1
    return tally


#: Room a row id keeps at least, when deciding whether server names fit as column headers.
_MIN_ID_WIDTH = 40


def render_terminal(matrix: Mapping[str, Any], width: int = 100) -> list[str]:
    """A compact table: one symbol a cell, then the verdict counts per server.

    Columns are headed by the server names when they fit whole; otherwise (many
    columns, or long variant names such as ``uvicorn:websockets-sansio`` that would
    be cut to the same prefix) by numbers, with a key under the legend.
    """
    servers = list(matrix["results"])
    rows = list(matrix["checks"]) + [
        rid for r in matrix["results"].values() for rid in r if rid not in matrix["checks"]
    ]
    rows = list(dict.fromkeys(rows))
    if not servers or not rows:
        return []
    col = max(3, max(len(s) for s in servers))
    numbered = len(servers) * (col + 1) + _MIN_ID_WIDTH > width
    if numbered:
        col = max(3, len(str(len(servers))))
        labels = [str(n) for n in range(1, len(servers) + 1)]
    else:
        labels = servers
    id_width = max(12, min(max(len(r) for r in rows), width - 1 - len(servers) * (col + 1)))
    header = " " * id_width + "".join(" " + label.center(col) for label in labels)
    lines = [header.rstrip()]
    absent = False
    for rid in rows:
        cells = []
        for server in servers:
            cell = matrix["results"][server].get(rid)
            mark = (
                SYMBOLS[cell["verdict"]] if cell else " " if applies(matrix, server, rid) else "·"
            )
            absent = absent or mark == "·"
            cells.append(" " + mark.center(col))
        lines.append((_fit(rid, id_width).ljust(id_width) + "".join(cells)).rstrip())
    lines.append("")
    legend = ", ".join(f"{SYMBOLS[v]} {v}" for v in VERDICT_ORDER)
    lines.append(
        f"legend: {legend}" + (f", · {NOT_APPLICABLE} (not on that protocol)" if absent else "")
    )
    for number, server in enumerate(servers, start=1):
        tally = counts(matrix["results"][server])
        version = matrix["servers"].get(server, {}).get("version", "?")
        summary = ", ".join(f"{n} {v}" for v, n in tally.items() if n)
        restarts = matrix["servers"].get(server, {}).get("restarts") or 0
        if restarts:
            summary += f" (crashed and restarted {restarts}x)"
        lines.append(f"{f'{number}: ' if numbered else ''}{server} {version}: {summary}")
    return lines


#: The note of a run that was interrupted (Ctrl-C, ``-x``): its matrix is partial.
INTERRUPTED_NOTE = "the run was interrupted: this matrix is partial"


def why_partial(matrix: Mapping[str, Any]) -> str:
    """Why a partial matrix is partial: interrupted, or a subset of the rows."""
    interrupted = INTERRUPTED_NOTE in matrix.get("notes", ())
    left_out = matrix.get("left_out") or ()
    return (
        "interrupted" if interrupted or not left_out else f"a subset: {len(left_out)} rows left out"
    )


def _known_text(known: Mapping[str, str]) -> str:
    """A known-failures entry as the matrix shows it: its reason, then its issue."""
    issue = known.get("issue") or ""
    return str(known.get("reason", "")) + (f" ({issue})" if issue else "")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _md(text: str) -> str:
    """Escape a value for a Markdown table cell: server-sent text must not break the table."""
    out = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace("`", "\\`").replace("*", "\\*").replace("_", "\\_").replace("[", "\\[")
    return " ".join(out.splitlines())


def _fence(text: str) -> str:
    """A code fence longer than any run of backquotes in ``text`` (a server wrote some of it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _reproducer_lines(repro: Mapping[str, str] | None) -> list[str]:
    """A finding's reproducer, as indented blocks under its list item."""
    if not repro:
        return []
    lines = [f"  <details><summary>reproducer ({_md(repro['wire'])})</summary>", ""]
    for label, text, language in (
        ("request", repro["request"], ""),
        ("app", repro["app"], "python"),
    ):
        fence = _fence(text)
        lines += [f"  {label}:", "", f"  {fence}{language}"]
        lines += [f"  {line}" for line in text.splitlines()]
        lines += [f"  {fence}", ""]
    lines += ["  </details>", ""]
    return lines


def render_markdown(matrix: Mapping[str, Any]) -> str:
    servers = list(matrix["results"])
    lines = ["# ASGI conformance matrix", ""]
    lines.append(
        f"Suite {matrix['suite_version']}, generated {matrix['generated_at']}"
        + (f" — **partial run ({why_partial(matrix)})**" if matrix.get("partial") else "")
        + "."
    )
    lines.append("")
    lines.append("| server | version | command | restarts |")
    lines.append("|---|---|---|---|")
    crashes: list[str] = []
    for name in servers:
        info = matrix["servers"].get(name, {})
        lines.append(
            f"| {_md(name)} | {_md(str(info.get('version', '?')))} "
            f"| `{_md(str(info.get('command', '')))}` | {int(info.get('restarts') or 0)} |"
        )
        crashes += [str(crash) for crash in info.get("crashes") or ()]
    lines.append("")
    if crashes:
        lines += [f"- {_md(crash)}" for crash in crashes] + [""]
    legend = ", ".join(f"{SYMBOLS[v]} {v}" for v in VERDICT_ORDER)
    lines.append(
        f"Legend: {legend}; {NOT_APPLICABLE}: the requirement does not exist on that protocol."
    )
    lines.append("")
    lines.append("| requirement | level | " + " | ".join(_md(s) for s in servers) + " |")
    lines.append("|---|---|" + "---|" * len(servers))
    for rid, entry in matrix["checks"].items():
        cells = []
        for server in servers:
            cell = matrix["results"][server].get(rid)
            if cell:
                known = " (known)" if cell.get("known") else ""
                cells.append(f"{SYMBOLS[cell['verdict']]} {cell['verdict']}{known}")
            else:
                cells.append("" if applies(matrix, server, rid) else NOT_APPLICABLE)
        title = f"[`{rid}`]({entry['url']}) {_md(entry['title'])}"
        lines.append(f"| {title} | {entry['level']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("## Findings")
    lines.append("")
    for server in servers:
        findings = [
            (rid, cell)
            for rid, cell in matrix["results"][server].items()
            if cell["verdict"] in ("fail", "warn", "error", "info", "unsupported")
            and cell["detail"]
        ]
        if not findings:
            continue
        lines.append(f"### {_md(server)}")
        lines.append("")
        for rid, cell in findings:
            lines.append(f"- **{cell['verdict']}** `{rid}`: {_md(cell['detail'])}")
            if cell.get("known"):
                lines.append(f"  - known failure: {_md(_known_text(cell['known']))}")
            lines.extend(_reproducer_lines(cell.get("reproducer")))
        lines.append("")
    tallies = []
    for server in servers:
        tally = counts(matrix["results"][server])
        tallies.append(f"- {_md(server)}: " + ", ".join(f"{n} {v}" for v, n in tally.items() if n))
    lines.append("## Counts")
    lines.append("")
    lines.extend(tallies)
    lines.append("")
    return "\n".join(lines)


def write_matrix(matrix: Mapping[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "matrix.json"
    md_path = directory / "matrix.md"
    html_path = directory / "matrix.html"
    json_path.write_text(json.dumps(matrix, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(matrix), encoding="utf-8")
    from conformance.report._html import render_html

    html_path.write_text(render_html(matrix), encoding="utf-8")
    return [json_path, md_path, html_path]


def load_matrix(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_cells(matrix: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    for server, row in matrix["results"].items():
        for rid, cell in row.items():
            yield server, rid, cell
