"""Bytecode under the suite's own cache when the environment forbids writing it (conformance/_bytecode.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


_PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from conformance._bytecode import cache_bytecode
chosen = cache_bytecode()
import probe_module
print(json.dumps({
    "chosen": chosen,
    "prefix": sys.pycache_prefix,
    "writes": not sys.dont_write_bytecode,
    "env_prefix": os.environ.get("PYTHONPYCACHEPREFIX"),
    "env_disabled": "PYTHONDONTWRITEBYTECODE" in os.environ,
}))
"""


def _run(tmp_path: Path, **env: str) -> dict[str, object]:
    sources = tmp_path / "src"
    sources.mkdir(exist_ok=True)
    (sources / "probe_module.py").write_text("VALUE = 1\n", encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environment |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), **env}
    root = str(Path(__file__).resolve().parent.parent)
    environment["PYTHONPATH"] = root
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(sources)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_bytecode_goes_to_the_suites_cache_not_next_to_the_sources(tmp_path: Path) -> None:
    result = _run(tmp_path, PYTHONDONTWRITEBYTECODE="1")
    prefix = tmp_path / "cache" / "asgi-conformance" / "pycache"
    assert result == {
        "chosen": str(prefix),
        "prefix": str(prefix),
        "writes": True,
        "env_prefix": str(prefix),
        "env_disabled": False,
    }
    assert list(prefix.rglob("probe_module*.pyc")), "the import was not cached under the prefix"
    assert not (tmp_path / "src" / "__pycache__").exists()


@pytest.mark.parametrize(
    "env",
    [{}, {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/nonexistent-prefix"}],
    ids=["bytecode-allowed", "prefix-already-named"],
)
def test_an_environment_that_allows_bytecode_or_names_a_prefix_is_left_alone(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result = _run(tmp_path, **env)
    assert result["chosen"] is None
    assert result["env_prefix"] == env.get("PYTHONPYCACHEPREFIX")
    assert not (tmp_path / "cache").exists()


def test_a_conformance_run_caches_the_plugins_loaded_after_its_own(tmp_path: Path) -> None:
    """Pytest rewrites the environment's plugins before any hook: the plugin chooses the cache on import."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST"))}
    environment |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q"]
    subprocess.run(
        [*command, "--asgi-server=uvicorn"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        check=True,
        timeout=120,
    )
    prefix = tmp_path / "cache" / "asgi-conformance" / "pycache"
    rewritten = {p.name.partition(".")[0] for p in prefix.rglob("*-pytest-*.pyc")}
    # anyio's plugin is loaded after this one (entry points in distribution order)
    # and the suite modules after every plugin.
    assert "pytest_plugin" in rewritten
    assert "test_http_scope" in rewritten
