"""The catalogue and the checks name each other: no orphan requirement, no unknown id."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import conformance.suite
from conformance import Level, catalogue
from conformance._catalogue import _parse
from conformance._registry import checks_by_requirement


def _import_suite() -> None:
    for module in pkgutil.iter_modules(conformance.suite.__path__):
        importlib.import_module(f"conformance.suite.{module.name}")


def test_every_requirement_has_a_check() -> None:
    _import_suite()
    checked = checks_by_requirement()
    orphans = [rid for rid in catalogue() if rid not in checked]
    assert orphans == []


def test_every_check_names_a_known_requirement() -> None:
    _import_suite()
    unknown = [rid for rid in checks_by_requirement() if rid not in catalogue()]
    assert unknown == []


def test_unknown_requirement_id_fails_at_import() -> None:
    from conformance import requirement

    with pytest.raises(KeyError, match=r"no requirement 'http\.scope\.no-such-thing'"):
        requirement("http.scope.no-such-thing")


def test_http_area_has_at_least_25_requirements() -> None:
    assert len([rid for rid in catalogue() if rid.startswith("http.")]) >= 25


def test_entries_are_complete_and_link_to_their_section() -> None:
    for req in catalogue().values():
        assert req.title
        assert req.rationale
        assert req.section
        assert req.level in set(Level)
        assert req.url.startswith("https://asgi.readthedocs.io/")
    scope_type = catalogue()["http.scope.type"]
    assert scope_type.url.endswith("www.html#http-connection-scope")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "Bad Id"}, "missing"),
        (
            {
                "id": "BadId",
                "title": "t",
                "spec": "www",
                "section": "s",
                "level": "MUST",
                "since": "2.0",
                "rationale": "r",
            },
            "dotted",
        ),
        (
            {
                "id": "http.x",
                "title": "t",
                "spec": "nope",
                "section": "s",
                "level": "MUST",
                "since": "2.0",
                "rationale": "r",
            },
            "unknown spec",
        ),
    ],
)
def test_malformed_entries_are_refused(entry: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _parse(entry, "test.toml")
