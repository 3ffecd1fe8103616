"""The HTML page escapes everything a server sent."""

from __future__ import annotations

from typing import Any

from conformance._matrix import MatrixBuilder
from conformance._verdicts import Verdict
from conformance.report._html import render_html


HOSTILE = '<script>alert("x")</script> & <img src=x onerror=y>'


def _matrix() -> dict[str, Any]:
    builder = MatrixBuilder("test")
    builder.add_server("evil<b>", {"name": "evil<b>", "version": HOSTILE, "command": HOSTILE})
    builder.add_result(
        target="evil<b>",
        requirement="http.scope.type",
        verdict=Verdict.FAIL,
        detail=HOSTILE,
        check="test_scope_type_is_http",
        log=HOSTILE,
    )
    return builder.build()


def test_server_text_is_escaped() -> None:
    page = render_html(_matrix())
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "evil&lt;b&gt;" in page


def test_page_has_a_cell_per_result() -> None:
    page = render_html(_matrix())
    assert 'class="cell fail"' in page
    assert "http.scope.type" in page


def test_server_without_version_or_command_still_renders() -> None:
    builder = MatrixBuilder("test")
    builder.add_result(
        target="late",
        requirement="http.scope.type",
        verdict=Verdict.PASS,
        detail="",
        check="test_scope_type_is_http",
    )
    page = render_html(builder.build())
    assert "<td>late</td><td>?</td>" in page
