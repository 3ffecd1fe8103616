"""The public surface is ``conformance/__init__.py``, and ``__all__`` says exactly what it is.

As httpx's ``tests/test_exported_members.py``: a name added to the package without
being exported (or exported without existing) fails here.
"""

from __future__ import annotations

import subprocess
import sys

import conformance


def test_all_is_exactly_the_public_names() -> None:
    public = {name for name in dir(conformance) if not name.startswith("_")}
    assert set(conformance.__all__) - {"__version__"} == public


def test_the_probe_apps_import_neither_pytest_nor_the_suite() -> None:
    """The probe runs inside every server the suite starts: its import must stay light."""
    code = (
        "import sys, conformance.apps.probe, conformance.apps.lifespan; "
        "heavy = [m for m in ('pytest', 'conformance._catalogue', 'hypothesis', 'anyio') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_all_is_sorted_and_unique() -> None:
    assert conformance.__all__ == sorted(set(conformance.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in conformance.__all__ if not hasattr(conformance, name)]
    assert missing == []


def test_exported_classes_and_functions_say_they_are_public() -> None:
    """Re-exported objects come from private modules; each has a docstring for the reader."""
    for name in conformance.__all__:
        value = getattr(conformance, name)
        if callable(value):
            assert value.__doc__, f"conformance.{name} has no docstring"


def test_version_is_a_release_string() -> None:
    parts = conformance.__version__.split(".")
    assert len(parts) == 3
    assert all(part.isdigit() for part in parts)
