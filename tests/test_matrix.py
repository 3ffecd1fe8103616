"""The matrix (``conformance._matrix``): folding reports into cells, and its renderings.

Every string a server sends (details, logs, its version, a user's command) is hostile
until proven otherwise: it must never break the Markdown table nor inject markup.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import Verdict, catalogue
from conformance._matrix import (
    SCHEMA_VERSION,
    SYMBOLS,
    MatrixBuilder,
    counts,
    iter_cells,
    load_matrix,
    render_markdown,
    render_terminal,
    write_matrix,
)


KNOWN = list(catalogue())
HOSTILE = [
    "a | b || c",
    "line one\nline two\r\nline three\rfour",
    "<script>alert(1)</script>",
    "`code` and ``more`` ```",
    "\\| escaped pipe, trailing backslash \\",
    "# heading\n- list\n> quote\n| --- |",
    "[link](javascript:alert(1)) *bold* _it_",
    "&lt;already&gt; escaped",
    "\u2028sep\u2029para\x85nel\x0bvt\x0cff",
]


def _build(results: list[tuple[str, str, Verdict, str, str]]) -> dict[str, Any]:
    builder = MatrixBuilder("9.9.9")
    for target, rid, verdict, detail, check in results:
        builder.add_result(
            target=target, requirement=rid, verdict=verdict, detail=detail, check=check
        )
    return builder.build()


# -- folding ------------------------------------------------------------------------------


def test_the_worst_verdict_stands_for_the_cell() -> None:
    builder = MatrixBuilder("1")
    rid = KNOWN[0]
    for verdict, check in [
        (Verdict.PASS, "a"),
        (Verdict.WARN, "b"),
        (Verdict.INFO, "c"),
        (Verdict.FAIL, "d"),
        (Verdict.UNSUPPORTED, "e"),
    ]:
        builder.add_result(
            target="s", requirement=rid, verdict=verdict, detail=f"{check} saw", check=check
        )
    cell = builder.build()["results"]["s"][rid]
    assert cell["verdict"] == "fail"
    # The worst findings first, prefixed by their check; details below warn and not
    # the cell's verdict are left out of the summary (they stay in "checks").
    assert cell["detail"].splitlines() == ["[d] d saw", "[b] b saw"]
    assert [c["check"] for c in cell["checks"]] == ["a", "b", "c", "d", "e"]
    assert [c["verdict"] for c in cell["checks"]] == ["pass", "warn", "info", "fail", "unsupported"]


def test_a_single_finding_is_its_own_detail() -> None:
    matrix = _build([("s", KNOWN[0], Verdict.INFO, "observed x", "test_x")])
    cell = matrix["results"]["s"][KNOWN[0]]
    assert (cell["verdict"], cell["detail"]) == ("info", "observed x")
    assert cell["checks"] == [{"check": "test_x", "verdict": "info", "detail": "observed x"}]


def test_a_lone_pass_stays_pass_and_error_beats_everything() -> None:
    matrix = _build(
        [
            ("s", KNOWN[0], Verdict.PASS, "", "a"),
            ("s", KNOWN[1], Verdict.FAIL, "broken", "a"),
            ("s", KNOWN[1], Verdict.ERROR, "harness error", "b"),
            ("s", KNOWN[1], Verdict.PASS, "", "c"),
        ]
    )
    assert matrix["results"]["s"][KNOWN[0]]["verdict"] == "pass"
    assert matrix["results"]["s"][KNOWN[1]]["verdict"] == "error"


def test_identical_details_are_listed_once() -> None:
    matrix = _build(
        [
            ("s", KNOWN[0], Verdict.FAIL, "same", "a"),
            ("s", KNOWN[0], Verdict.FAIL, "same", "a"),
        ]
    )
    assert matrix["results"]["s"][KNOWN[0]]["detail"] == "[a] same"


def test_the_log_of_a_bad_verdict_is_kept_and_a_good_ones_is_not() -> None:
    builder = MatrixBuilder("1")
    builder.add_result(
        target="s", requirement=KNOWN[0], verdict=Verdict.PASS, detail="", check="a", log="p"
    )
    builder.add_result(
        target="s", requirement=KNOWN[1], verdict=Verdict.WARN, detail="w", check="a", log="boom"
    )
    results = builder.build()["results"]["s"]
    assert "log" not in results[KNOWN[0]]
    assert results[KNOWN[1]]["log"] == "boom"


_verdicts = st.sampled_from(list(Verdict))


@given(
    st.lists(
        st.tuples(st.sampled_from(["uvicorn", "daphne"]), st.sampled_from(KNOWN[:4]), _verdicts),
        min_size=1,
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_folding_does_not_depend_on_report_order(
    results: list[tuple[str, str, Verdict]], rng: Any
) -> None:
    """xdist delivers reports in any order: the verdicts must not care."""
    rows = [(t, r, v, f"{v.value} detail", f"check{i}") for i, (t, r, v) in enumerate(results)]
    shuffled = list(rows)
    rng.shuffle(shuffled)
    one, other = _build(rows), _build(shuffled)
    verdicts = {t: {r: c["verdict"] for r, c in row.items()} for t, row in one["results"].items()}
    assert verdicts == {
        t: {r: c["verdict"] for r, c in row.items()} for t, row in other["results"].items()
    }
    for (target, rid), worst in _worst(rows).items():
        assert one["results"][target][rid]["verdict"] == worst.value


def _worst(rows: list[tuple[str, str, Verdict, str, str]]) -> dict[tuple[str, str], Verdict]:
    worst: dict[tuple[str, str], Verdict] = {}
    for target, rid, verdict, _, _ in rows:
        if (target, rid) not in worst or verdict.severity > worst[target, rid].severity:
            worst[target, rid] = verdict
    return worst


# -- the document -------------------------------------------------------------------------


def test_build_has_the_documented_keys_and_catalogue_order() -> None:
    builder = MatrixBuilder("1.2.3")
    builder.add_server("uvicorn", {"name": "uvicorn", "version": "0.1", "command": "x"})
    builder.add_server("idle", {"name": "idle"})
    for rid in [KNOWN[3], "zz.unknown.b", KNOWN[1], "zz.unknown.a"]:
        builder.add_result(
            target="uvicorn", requirement=rid, verdict=Verdict.PASS, detail="", check="c"
        )
    matrix = builder.build()
    assert set(matrix) >= {
        "schema_version",
        "generated_at",
        "suite_version",
        "partial",
        "notes",
        "servers",
        "checks",
        "results",
    }
    assert matrix["schema_version"] == SCHEMA_VERSION == 1
    assert matrix["suite_version"] == "1.2.3"
    assert matrix["partial"] is False
    generated = datetime.datetime.fromisoformat(matrix["generated_at"])
    assert generated.tzinfo is not None
    assert abs(datetime.datetime.now(datetime.timezone.utc) - generated).total_seconds() < 60
    # Rows: catalogue order first, then ids the catalogue does not know, sorted.
    assert list(matrix["results"]["uvicorn"]) == [
        KNOWN[1],
        KNOWN[3],
        "zz.unknown.a",
        "zz.unknown.b",
    ]
    assert list(matrix["checks"]) == [KNOWN[1], KNOWN[3]]
    assert matrix["checks"][KNOWN[1]] == catalogue()[KNOWN[1]].to_json()
    # A selected server with no result is still a column (with an empty row).
    assert list(matrix["servers"]) == ["uvicorn", "idle"]
    assert matrix["results"]["idle"] == {}
    json.dumps(matrix)


def test_a_result_for_an_undeclared_server_adds_the_server() -> None:
    matrix = _build([("surprise", KNOWN[0], Verdict.PASS, "", "c")])
    assert matrix["servers"] == {"surprise": {"name": "surprise"}}


def test_server_info_is_merged_not_replaced() -> None:
    builder = MatrixBuilder("1")
    builder.add_server("s", {"name": "s", "version": "1", "command": "template"})
    builder.add_server("s", {"command": "the real command"})
    assert builder.build()["servers"]["s"] == {
        "name": "s",
        "version": "1",
        "command": "the real command",
    }


def test_counts_tally_every_verdict() -> None:
    matrix = _build(
        [
            ("s", KNOWN[0], Verdict.PASS, "", "c"),
            ("s", KNOWN[1], Verdict.PASS, "", "c"),
            ("s", KNOWN[2], Verdict.ERROR, "x", "c"),
        ]
    )
    assert counts(matrix["results"]["s"]) == {
        "pass": 2,
        "fail": 0,
        "warn": 0,
        "unsupported": 0,
        "info": 0,
        "error": 1,
    }
    assert [(s, r) for s, r, _ in iter_cells(matrix)] == [
        ("s", KNOWN[0]),
        ("s", KNOWN[1]),
        ("s", KNOWN[2]),
    ]


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    builder = MatrixBuilder("1")
    builder.add_server("s", {"name": "s", "version": "1.0", "command": "serve {app}"})
    builder.add_result(
        target="s", requirement=KNOWN[0], verdict=Verdict.FAIL, detail="ünïcode ✗", check="c"
    )
    matrix = builder.build()
    written = write_matrix(matrix, tmp_path / "new" / "dir")
    names = [p.name for p in written]
    assert names[:2] == ["matrix.json", "matrix.md"]
    assert all(p.is_file() for p in written)
    assert load_matrix(written[0]) == matrix
    assert "ünïcode ✗" in written[0].read_text(encoding="utf-8")
    assert written[1].read_text(encoding="utf-8") == render_markdown(matrix)


# -- Markdown -----------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    """Split a GFM table row on its unescaped pipes (a pipe after an odd run of ``\\``)."""
    cells, current, backslashes = [], "", 0
    for char in line.strip():
        if char == "|" and backslashes % 2 == 0:
            cells.append(current)
            current = ""
        else:
            current += char
        backslashes = backslashes + 1 if char == "\\" else 0
    cells.append(current)
    assert (cells[0], cells[-1]) == ("", ""), f"row does not start and end with a pipe: {line!r}"
    return cells[1:-1]


def _tables(markdown: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in markdown.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _hostile_matrix() -> dict[str, Any]:
    builder = MatrixBuilder("1")
    for index, text in enumerate(HOSTILE):
        name = f"srv{index}|{text}"
        builder.add_server(name, {"name": name, "version": text, "command": f"run {text}"})
        for rid in KNOWN[:3]:
            builder.add_result(
                target=name,
                requirement=rid,
                verdict=Verdict.FAIL,
                detail=text,
                check="c",
                log=text,
            )
    builder.notes.append("<b>note</b>")
    return builder.build()


def test_hostile_text_never_breaks_a_markdown_table() -> None:
    matrix = _hostile_matrix()
    markdown = render_markdown(matrix)
    servers, grid = _tables(markdown)
    assert len(servers) == 2 + len(HOSTILE)
    assert all(len(_cells(line)) == 4 for line in servers)
    assert len(grid) == 2 + len(matrix["checks"])
    assert all(len(_cells(line)) == 2 + len(HOSTILE) for line in grid)


def test_hostile_text_stays_on_its_line_and_injects_no_markup() -> None:
    markdown = render_markdown(_hostile_matrix())
    assert "<" not in markdown
    assert "\r" not in markdown
    for separator in ("\u2028", "\u2029", "\x85", "\x0b", "\x0c"):
        assert separator not in markdown
    findings = markdown.split("## Findings", 1)[1].split("## Counts", 1)[0]
    bullets = [line for line in findings.split("\n") if line and not line.startswith("### ")]
    assert len(bullets) == 3 * len(HOSTILE)
    assert all(line.startswith("- **fail** `") for line in bullets)
    for line in markdown.split("\n"):
        assert not line.startswith(("# heading", "> quote", "- list"))


def test_escaped_text_reads_back_as_the_original() -> None:
    """Escaping is lossless: un-escaping a detail gives the server's text (lines joined)."""
    matrix = _build([("s", KNOWN[0], Verdict.FAIL, "a|b `c` <d> *e* _f_ [g] \\h", "c")])
    line = next(
        line for line in render_markdown(matrix).split("\n") if line.startswith("- **fail**")
    )
    escaped = line.split(": ", 1)[1]
    text = re.sub(r"\\(.)", r"\1", escaped).replace("&lt;", "<").replace("&gt;", ">")
    assert text == "a|b `c` <d> *e* _f_ [g] \\h"


def test_markdown_shows_every_cell_and_the_counts() -> None:
    matrix = _build(
        [
            ("uvicorn", KNOWN[0], Verdict.PASS, "", "c"),
            ("uvicorn", KNOWN[1], Verdict.WARN, "slow", "c"),
            ("daphne", KNOWN[0], Verdict.ERROR, "no start", "c"),
        ]
    )
    markdown = render_markdown(matrix)
    _, grid = _tables(markdown)
    header = [c.strip() for c in _cells(grid[0])]
    assert header == ["requirement", "level", "uvicorn", "daphne"]
    first = [c.strip() for c in _cells(grid[2])]
    second = [c.strip() for c in _cells(grid[3])]
    assert first[2:] == [f"{SYMBOLS['pass']} pass", f"{SYMBOLS['error']} error"]
    assert second[2:] == [f"{SYMBOLS['warn']} warn", ""]
    assert "- uvicorn: 1 pass, 1 warn" in markdown
    assert "- daphne: 1 error" in markdown
    assert "partial" not in markdown


def test_a_partial_matrix_says_so() -> None:
    builder = MatrixBuilder("1")
    builder.add_result(target="s", requirement=KNOWN[0], verdict=Verdict.PASS, detail="", check="c")
    builder.partial = True
    assert "**partial run (interrupted)**" in render_markdown(builder.build())


# -- terminal -----------------------------------------------------------------------------


def _wide_matrix(servers: list[str], extra_ids: tuple[str, ...] = ()) -> dict[str, Any]:
    rows = []
    verdicts = list(Verdict)
    for s_index, server in enumerate(servers):
        for r_index, rid in enumerate([*KNOWN, *extra_ids]):
            verdict = verdicts[(s_index + r_index) % len(verdicts)]
            rows.append((server, rid, verdict, "detail", "c"))
    return _build(rows)


@pytest.mark.parametrize(
    "servers",
    [
        ["uvicorn", "hypercorn", "daphne", "granian"],
        ["uvicorn:websockets-sansio", "hypercorn:uvloop", "granian:asyncio", "daphne"],
        ["a", "b", "c", "d"],
    ],
)
def test_terminal_matrix_of_four_servers_fits_in_100_columns(servers: list[str]) -> None:
    matrix = _wide_matrix(servers, ("zz." + "very-long-requirement-id-" * 4,))
    lines = render_terminal(matrix)
    assert lines
    assert max(len(line) for line in lines) <= 100
    # Every row is there, each row has one symbol per server, in the same columns.
    id_width = len(lines[0]) - len(lines[0].lstrip())
    body = lines[1 : 1 + len(KNOWN) + 1]
    assert len(body) == len(matrix["results"][servers[0]])
    positions = {
        tuple(i for i, ch in enumerate(line) if i >= id_width and ch != " ") for line in body
    }
    assert len(positions) == 1
    assert len(positions.pop()) == len(servers)


def test_terminal_matrix_has_legend_and_counts() -> None:
    matrix = _build(
        [
            ("uvicorn", KNOWN[0], Verdict.PASS, "", "c"),
            ("uvicorn", KNOWN[1], Verdict.FAIL, "x", "c"),
        ]
    )
    matrix["servers"]["uvicorn"]["version"] = "0.54.0"
    lines = render_terminal(matrix)
    assert lines[0].strip() == "uvicorn"
    assert lines[1].split() == [KNOWN[0], SYMBOLS["pass"]]
    assert lines[2].split() == [KNOWN[1], SYMBOLS["fail"]]
    assert "legend: ✓ pass, ✗ fail, ! warn, - unsupported, i info, E error" in lines
    assert lines[-1] == "uvicorn 0.54.0: 1 pass, 1 fail"


def test_terminal_matrix_of_nothing_is_empty() -> None:
    """``pytest --co`` builds a matrix whose servers have no row: nothing to draw, no crash."""
    builder = MatrixBuilder("1")
    builder.add_server("uvicorn", {"name": "uvicorn"})
    assert render_terminal(builder.build()) == []
    assert render_terminal(MatrixBuilder("1").build()) == []


def test_a_missing_cell_is_blank() -> None:
    matrix = _build(
        [
            ("uvicorn", KNOWN[0], Verdict.PASS, "", "c"),
            ("daphne", KNOWN[1], Verdict.PASS, "", "c"),
        ]
    )
    lines = render_terminal(matrix)
    assert lines[1].count(SYMBOLS["pass"]) == 1
    assert lines[2].count(SYMBOLS["pass"]) == 1
    assert lines[1].index(SYMBOLS["pass"]) < lines[2].index(SYMBOLS["pass"])


def test_terminal_matrix_numbers_columns_whose_names_do_not_fit() -> None:
    """Seven columns with long variant names: numbered headers, each number keyed to its server."""
    servers = [
        "uvicorn",
        "hypercorn",
        "daphne",
        "granian",
        "uvicorn:websockets",
        "uvicorn:websockets-sansio",
        "uvicorn:wsproto",
    ]
    matrix = _build([(s, rid, Verdict.PASS, "", "c") for s in servers for rid in KNOWN[:3]])
    lines = render_terminal(matrix)
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == [str(n) for n in range(1, 8)]
    assert lines[1].split()[0] == KNOWN[0]  # the id is whole: the numbers leave it room
    keyed = [line.split(":", 1)[0] for line in lines if line[:2].rstrip(":").isdigit()]
    assert keyed == [str(n) for n in range(1, 8)]
    assert any(line.startswith("6: uvicorn:websockets-sansio ") for line in lines)


def test_a_row_of_another_protocol_is_not_applicable_not_blank() -> None:
    """An HTTP/1-only row on an h2 column shows n/a (and the legend says so); a row that
    exists there but was not run stays blank."""
    from conformance._matrix import NOT_APPLICABLE
    from conformance.report._html import render_html

    http1_only = "http.keepalive.persistent"
    shared = "http.scope.type"
    matrix = _build(
        [
            ("hypercorn", http1_only, Verdict.PASS, "", "c"),
            ("hypercorn", shared, Verdict.PASS, "", "c"),
        ]
    )
    matrix["servers"]["hypercorn+h2c"] = {"name": "hypercorn+h2c", "protocol": "h2", "tls": False}
    matrix["results"]["hypercorn+h2c"] = {}
    md = render_markdown(matrix).splitlines()
    row = next(line for line in md if f"`{http1_only}`" in line)
    assert row.rstrip(" |").endswith(NOT_APPLICABLE)
    other = next(line for line in md if f"`{shared}`" in line)
    assert NOT_APPLICABLE not in other
    assert any("does not exist on that protocol" in line for line in md)
    assert any("· n/a" in line for line in render_terminal(matrix))
    assert render_html(matrix).count(f">{NOT_APPLICABLE}</td>") == 1
