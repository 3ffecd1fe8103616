"""The static HTML page of a matrix.

Rendered by jinja2 with autoescaping on: every detail and log excerpt comes from
the server under test and is hostile until proven otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from conformance._matrix import NOT_APPLICABLE, SYMBOLS, applies, why_partial


__all__ = ["TEMPLATES", "render_html"]

#: The report's templates (this page, the badge of conformance/cli/_badge.py), autoescaped.
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("conformance.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(matrix: Mapping[str, Any]) -> str:
    template = TEMPLATES.get_template("matrix.html.j2")
    return template.render(
        matrix=matrix,
        servers=list(matrix["results"]),
        symbols=SYMBOLS,
        applies=lambda server, rid: applies(matrix, server, rid),
        not_applicable=NOT_APPLICABLE,
        why_partial=why_partial(matrix) if matrix.get("partial") else "",
    )
