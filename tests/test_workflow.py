"""The GitHub Actions workflow a server author copies (docs/github-actions.yml) is valid and true.

It is loaded as YAML, its steps do what the README says (install, judge with a
known-failures file, upload the report whatever happened), the README shows it
verbatim, and its pytest command is accepted by the plugin as written.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml


ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "docs" / "github-actions.yml"


def _steps() -> dict[str, dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # YAML 1.1 reads the bare key `on` as True.
    assert {"push", "pull_request"} <= set(workflow.get("on", workflow.get(True)))
    [job] = workflow["jobs"].values()
    steps: dict[str, dict[str, Any]] = {
        step.get("name", step.get("uses", "")): {**step, "env": job.get("env", {})}
        for step in job["steps"]
    }
    return steps


def _judge_command() -> list[str]:
    step = _steps()["Judge the server"]
    line = " ".join(step["run"].split())
    return shlex.split(line.replace('"$ASGI_SERVER"', shlex.quote(step["env"]["ASGI_SERVER"])))


def test_the_workflow_installs_judges_and_keeps_the_report() -> None:
    steps = _steps()
    install = steps["Install the suite and the server under test"]["run"]
    assert "pip install 'asgi-conformance[all]'" in install
    command = _judge_command()
    assert command[:3] == ["python", "-m", "pytest"]
    assert "--asgi-known-failures=asgi-known-failures.toml" in command
    assert "--asgi-report=asgi-report" in command
    keep = steps["Keep the report"]
    assert keep["uses"].startswith("actions/upload-artifact@")
    assert keep["if"] == "always()"  # a failed run's report is the one worth reading
    assert keep["with"]["path"].rstrip("/") == "asgi-report"


def test_the_readme_shows_the_workflow_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```yaml\n{WORKFLOW.read_text(encoding='utf-8')}```" in readme


def test_the_plugin_accepts_the_workflows_command(tmp_path: Path) -> None:
    (tmp_path / "asgi-known-failures.toml").write_text(
        '["uvicorn*"]\n"http.scope.path-decoded" = { reason = "an example" }\n', encoding="utf-8"
    )
    command = [sys.executable, *_judge_command()[1:], "--co", "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == pytest.ExitCode.OK, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "requirement(s):" in proc.stdout
