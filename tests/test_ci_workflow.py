"""The hosted CI's workflow (``.github/workflows/ci.yml``), which cannot run from here.

What can be checked here is checked: that GitHub would accept the file (the schema of
workflow files, vendored in check-jsonschema, so no network), and that it runs the README's
test command on the three systems and on every Python version the package says it supports.
Whether the suite passes on macOS and Windows only a run there can tell.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def test_github_would_accept_the_workflow() -> None:
    schema = ["--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_runs_the_readme_command_on_three_systems_and_every_supported_python() -> None:
    [job] = workflow()["jobs"].values()
    matrix = job["strategy"]["matrix"]
    assert set(matrix["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert job["strategy"]["fail-fast"] is False  # one system's failure hides no other's
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    prefix = "Programming Language :: Python :: 3."
    supported = [c for c in pyproject["project"]["classifiers"] if c.startswith(prefix)]
    assert matrix["python"] == [c.rsplit(" :: ", 1)[1] for c in supported]
    assert pyproject["project"]["requires-python"] == f">={matrix['python'][0]}"
    # `python3` is `python` where setup-python installs it (Windows has no python3).
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "$ python3 dev.py test" in readme
    runs = [step["run"] for step in job["steps"] if "run" in step]
    tests = [run for run in runs if run.endswith("python dev.py test")]
    assert len(tests) == 2, runs  # Linux as root (as .ci/run), the others as the user
    conditions = {step.get("if") for step in job["steps"] if step.get("run") in tests}
    assert conditions == {"runner.os == 'Linux'", "runner.os != 'Linux'"}
