"""The requirement catalogue: data files in ``conformance/catalogue/``, one per area.

A matrix row is a requirement, never a pytest node id: ids are stable, dotted and
area-first (``http.scope.path-decoded``), so reports from different suite versions
and from parallel runs line up.  The catalogue is loaded from TOML so that it can
be read, reviewed and rendered without importing any check.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any

from conformance._verdicts import Level


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


__all__ = ["Requirement", "catalogue", "catalogue_digest", "requirement"]

#: Where the spec documents live, by the short names the catalogue uses.
SPEC_DOCUMENTS: Mapping[str, str] = {
    "asgi": "https://asgi.readthedocs.io/en/latest/specs/main.html",
    "www": "https://asgi.readthedocs.io/en/latest/specs/www.html",
    "lifespan": "https://asgi.readthedocs.io/en/latest/specs/lifespan.html",
    "tls": "https://asgi.readthedocs.io/en/latest/specs/tls.html",
    "ext": "https://asgi.readthedocs.io/en/latest/extensions.html",
}

#: The vendored spec documents (``catalogue/spec/``), by the same short names.
SPEC_FILES: Mapping[str, str] = {
    "asgi": "asgi.rst",
    "www": "www.rst",
    "lifespan": "lifespan.rst",
    "tls": "tls.rst",
    "ext": "extensions.rst",
}


def spec_text(spec: str) -> str:
    """The source of spec document ``spec`` (a key of :data:`SPEC_FILES`), as shipped."""
    source = resources.files("conformance") / "catalogue" / "spec" / SPEC_FILES[spec]
    return source.read_text(encoding="utf-8")


_ID = re.compile(r"^[a-z0-9]+(\.[a-z0-9][a-z0-9.-]*)+$")
_FIELDS = ("id", "title", "spec", "section", "level", "since", "rationale")
#: Fields a requirement may add: the one protocol it exists for, whether only over TLS.
_OPTIONAL = ("protocol", "tls", "quote", "ungraded")
#: The protocol families a requirement may be limited to, and the wires of each.
PROTOCOLS: Mapping[str, frozenset[str]] = {
    "http/1": frozenset({"http/1.1"}),
    "h2": frozenset({"h2"}),
    "h3": frozenset({"h3"}),
    # WebSocket by the HTTP/1.1 upgrade and by extended CONNECT over HTTP/2 (RFC 8441).
    # Over HTTP/3 (RFC 9220) only the h3.websocket.* rows run for now: a WebSocket
    # closing there can take hypercorn's whole QUIC listener down, so the full rows
    # wait for an instance per session on h3 columns.
    "http/1+h2": frozenset({"http/1.1", "h2"}),
}


@dataclass(frozen=True)
class Requirement:
    """One thing the spec asks of a server, as the matrix shows it."""

    id: str
    title: str
    spec: str
    section: str
    level: Level
    since: str
    rationale: str
    #: The one protocol family the requirement exists for (``http/1``, ``h2``), or None: every column.
    protocol: str | None = None
    #: True: only on TLS columns (``scheme`` ``https``, the ``tls`` extension); False: only
    #: on cleartext ones (``scheme`` ``http``); None: on both.
    tls: bool | None = None
    #: The spec's own sentence the row enforces, verbatim (whitespace collapsed): why it is its level.
    quote: str = ""
    #: For an ``info`` row whose sentence says must or should: why the row records instead
    #: (another row grades the sentence, or it binds the app).
    ungraded: str = ""

    def applies(self, wire: str, tls: bool) -> bool:
        """Whether a column speaking ``wire`` (over TLS if ``tls``) has this requirement at all.

        A check of HTTP/1 framing has nothing to judge on an HTTP/2 column: its cell
        there is not applicable, neither a pass nor a failure.
        """
        if self.protocol is not None and wire not in PROTOCOLS[self.protocol]:
            return False
        return self.tls is None or self.tls == tls

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def url(self) -> str:
        """A link to the section, built the way Sphinx builds its anchors."""
        anchor = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{SPEC_DOCUMENTS[self.spec]}#{anchor}"

    @property
    def citation(self) -> str:
        return f"{self.spec}.rst \u00a7{self.section}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = self.level.value
        data["url"] = self.url
        return data


def _parse(
    entry: Mapping[str, Any], source: str, defaults: Mapping[str, Any] | None = None
) -> Requirement:
    defaults = defaults or {}
    missing = [name for name in _FIELDS if name not in entry]
    unknown = sorted(set(entry) - set(_FIELDS) - set(_OPTIONAL))
    if missing or unknown:
        raise ValueError(
            f"{source}: requirement {entry.get('id')!r}: missing {missing}, unknown {unknown}"
        )
    if not _ID.match(entry["id"]):
        raise ValueError(f"{source}: {entry['id']!r} is not a dotted, lower-case, area-first id")
    if entry["spec"] not in SPEC_DOCUMENTS:
        raise ValueError(f"{source}: {entry['id']}: unknown spec document {entry['spec']!r}")
    protocol = entry.get("protocol", defaults.get("protocol"))
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"{source}: {entry['id']}: unknown protocol {protocol!r}")
    tls = entry.get("tls", defaults.get("tls"))
    if tls is not None and not isinstance(tls, bool):
        raise ValueError(f"{source}: {entry['id']}: tls must be true or false")
    return Requirement(
        id=entry["id"],
        title=entry["title"],
        spec=entry["spec"],
        section=entry["section"],
        level=Level(entry["level"]),
        since=str(entry["since"]),
        rationale=entry["rationale"],
        protocol=protocol,
        tls=tls,
        quote=entry.get("quote", ""),
        ungraded=entry.get("ungraded", ""),
    )


#: Areas in reading order (the matrix lists rows in this order); other files follow by name.
AREA_ORDER = (
    "http_scope.toml",
    "http_request.toml",
    "http_response.toml",
    "http_disconnect.toml",
    "http_errors.toml",
    "ext_http.toml",
    "lifespan.toml",
    "websocket_scope.toml",
    "websocket_handshake.toml",
    "websocket_messages.toml",
    "websocket_close.toml",
    "ext_websocket.toml",
)


def _file_order(item: Any) -> tuple[int, str]:
    name = str(item.name)
    return (AREA_ORDER.index(name) if name in AREA_ORDER else len(AREA_ORDER), name)


@cache
def catalogue() -> Mapping[str, Requirement]:
    """Every requirement, keyed by id, in reading order (:data:`AREA_ORDER`, then file order)."""
    found: dict[str, Requirement] = {}
    folder = resources.files("conformance") / "catalogue"
    for item in sorted(folder.iterdir(), key=_file_order):
        if not item.name.endswith(".toml"):
            continue
        data = tomllib.loads(item.read_text(encoding="utf-8"))
        # A file may set ``protocol`` / ``tls`` for all its rows (the WebSocket-over-HTTP/1.1 areas).
        defaults = {key: data[key] for key in _OPTIONAL if key in data}
        for entry in data.get("requirement", []):
            req = _parse(entry, item.name, defaults)
            if req.id in found:
                raise ValueError(f"{item.name}: requirement {req.id!r} is declared twice")
            found[req.id] = req
    return found


@cache
def catalogue_digest() -> str:
    """A short, stable fingerprint of what the rows mean: two matrices with the same one
    judged the same sentences at the same levels, so their columns may sit side by side.

    It covers each requirement's id, level, spec document, section and quote, in
    catalogue order; titles and rationales are prose about a row and may be reworded
    without changing what a verdict means.
    """
    rows = [
        [req.id, req.level.value, req.spec, req.section, req.quote] for req in catalogue().values()
    ]
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def requirement(requirement_id: str) -> Requirement:
    """Look one requirement up; an unknown id is a bug in a check, said plainly."""
    try:
        return catalogue()[requirement_id]
    except KeyError:
        raise KeyError(f"no requirement {requirement_id!r} in the catalogue") from None
