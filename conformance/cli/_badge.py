"""``badge MATRIX TARGET -o badge.svg``: a shields-style flat badge of one server's score.

The score counts rows, not cells, so a server with several columns (``hypercorn``
stands for ``hypercorn``, ``hypercorn+h2``, ``hypercorn:x+h2c``, ...) is scored against
the catalogue once.  Over the chosen columns a row is

- *judged* when some column passed or failed it; unsupported (the server does not
  offer the feature), info and error cells judge nothing;
- *passed* when it is judged and no column failed it.

"MUST" means the rows that give ``fail`` when broken: level MUST, and level
``optional`` (a MUST of an optional feature, judged only where the server offers it,
see ``conformance/_verdicts.py``).  The message is ``MUST passed/judged``, with the
number of error cells after it when there are any.

The colour, first match wins:

=========  =========================================================================
red        some MUST row failed: a fact no harness error elsewhere can undo
grey       no MUST row was judged, or some cell is an error (the score is unverified)
yellow     no MUST failed, but a SHOULD row warned (or failed)
green      none of the above
=========  =========================================================================
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.cli._input import CommandError, columns, read_matrix, write_text
from conformance.report._html import TEMPLATES


__all__ = ["Score", "configure", "render_badge", "score", "select_columns"]

#: The levels whose broken rows are ``fail`` (conformance/_verdicts.py ``verdict_for``).
BINDING_LEVELS = frozenset({"MUST", "optional"})
#: The colours of shields.io's named ones (brightgreen, yellow, red, lightgrey).
COLOURS: Mapping[str, str] = {
    "green": "#4c1",
    "yellow": "#dfb317",
    "red": "#e05d44",
    "grey": "#9f9f9f",
}
LABEL = "ASGI"


@dataclass(frozen=True)
class Score:
    columns: tuple[str, ...]
    passed: int
    judged: int
    must_failed: int
    should_flagged: int
    errors: int

    @property
    def colour(self) -> str:
        """A key of :data:`COLOURS` (the table in the module docstring)."""
        if self.must_failed:
            return "red"
        if self.errors or not self.judged:
            return "grey"
        return "yellow" if self.should_flagged else "green"

    @property
    def message(self) -> str:
        text = f"MUST {self.passed}/{self.judged}" if self.judged else "not judged"
        if self.errors:
            text += f", {self.errors} error{'' if self.errors == 1 else 's'}"
        return text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("matrix", type=Path, metavar="MATRIX")
    parser.add_argument(
        "target", metavar="TARGET", help="a column, or a server name for all its columns"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="SVG")
    parser.set_defaults(handler=_badge)


def _badge(args: argparse.Namespace) -> int:
    matrix = read_matrix(args.matrix)
    chosen = select_columns(matrix, args.target)
    if not chosen:
        known = ", ".join(columns(matrix)) or "none"
        raise CommandError(
            f"unknown target {args.target!r} in {args.matrix}; known columns: {known}"
        )
    result = score(matrix, chosen)
    print(f"wrote {write_text(args.output, render_badge(result, args.target))}: {result.message}")
    return 0


def select_columns(matrix: Mapping[str, Any], target: str) -> list[str]:
    """The columns ``target`` names: itself, and those it is the name of followed by
    ``+`` (a protocol or TLS column) or ``:`` (a variant)."""
    return [
        name
        for name in columns(matrix)
        if name == target or name.startswith((f"{target}+", f"{target}:"))
    ]


def score(matrix: Mapping[str, Any], chosen: list[str]) -> Score:
    passed = judged = must_failed = should_flagged = errors = 0
    verdicts: dict[str, set[str]] = {}
    for name in chosen:
        for rid, cell in matrix["results"].get(name, {}).items():
            verdicts.setdefault(rid, set()).add(cell["verdict"])
            errors += cell["verdict"] == "error"
    for rid, seen in verdicts.items():
        level = matrix["checks"].get(rid, {}).get("level")
        if level in BINDING_LEVELS and "fail" in seen:
            judged += 1
            must_failed += 1
        elif level in BINDING_LEVELS and "pass" in seen:
            judged += 1
            passed += 1
        elif level == "SHOULD" and seen & {"warn", "fail"}:
            should_flagged += 1
    return Score(tuple(chosen), passed, judged, must_failed, should_flagged, errors)


def render_badge(result: Score, target: str) -> str:
    label_width, message_width = _panel(LABEL), _panel(result.message)
    # Autoescaped: the target and column names come from the user and from the matrix,
    # and a server may be called ``<script>``.
    svg = TEMPLATES.get_template("badge.svg.j2").render(
        label=LABEL,
        message=result.message,
        title=_xml_text(f"ASGI conformance of {target}: {result.message}"),
        colour=COLOURS[result.colour],
        label_width=label_width,
        message_width=message_width,
        width=label_width + message_width,
    )
    return svg + "\n"  # jinja2 drops the template's last newline


#: Estimated advance widths, in pixels, of Verdana at 11px (the face shields draws with).
#: No font is measured: a badge a pixel too wide or narrow still reads well.
_WIDTHS: Mapping[str, float] = {
    **dict.fromkeys("ijl'|.,:;!", 3.2),
    **dict.fromkeys(" ", 3.9),
    **dict.fromkeys("frtI()[]{}/\\-", 4.6),
    **dict.fromkeys("abcdeghknopqsuvxyz", 6.6),
    **dict.fromkeys("0123456789+=<>#$?_~^*", 7.0),
    **dict.fromkeys("mw", 10.2),
    **dict.fromkeys("MW%@", 11.0),
}
_UPPER = 7.6
_OTHER = 7.5
_WIDE = 11.0  # an East Asian wide or full-width character
_PADDING = 6  # either side of a panel's text


def text_width(text: str) -> float:
    width = 0.0
    for char in text:
        if char in _WIDTHS:
            width += _WIDTHS[char]
        elif unicodedata.east_asian_width(char) in "WF":
            width += _WIDE
        else:
            width += _UPPER if char.isupper() else _OTHER
    return width


def _panel(text: str) -> int:
    return round(text_width(text)) + 2 * _PADDING


# What XML 1.0 cannot hold even escaped (controls, lone surrogates, U+FFFE/FFFF): a
# hostile name may contain them, and escaping alone would leave the SVG ill-formed.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
