"""The package as PyPI would get it, and as a user would install it.

Every other test runs against the source tree (an editable install), where a file that the
build leaves out is still there. Here the sdist and the wheel are built from scratch
(``python -m build``: the sdist, then the wheel from the sdist, each in a fresh isolated
build environment), checked as PyPI checks an upload (``twine check --strict``), compared
file by file with the package, and the wheel installed into a fresh venv, where the demo
runs (``dev.py demo --venv``) with nothing of this checkout on ``sys.path``. Nothing is
reused between runs: a module, ``py.typed`` or any data file missing from the distributions
fails here. Only pip's cache of third-party wheels (click, starlette, ...) is used.
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import cli_telemetry

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "click-telemetry"
DOCUMENTS = {"README.md", "PRIVACY.md", "SECURITY.md", "CHANGELOG.md", "LICENSE", "mkdocs.yml"}


def run(argv: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` without PYTHONPATH; its output is in the assertion message if it fails."""
    result = subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


def package_files() -> set[str]:
    """Every file of the import package in the checkout, as the wheel should hold it."""
    found = set()
    for path in (ROOT / "cli_telemetry").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            found.add(path.relative_to(ROOT).as_posix())
    return found


def docs_files() -> set[str]:
    """The documentation site's sources: the README links into docs/, so the sdist holds
    them (and mkdocs.yml), where the links resolve and the site can be built."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, ROOT])
    return out


def only(directory: Path, pattern: str) -> Path:
    [path] = directory.glob(pattern)
    return path


def test_twine_finds_nothing_to_refuse(dist: Path) -> None:
    """What PyPI would refuse: metadata it cannot read, a README it cannot render."""
    result = run([sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir()])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_wheel_holds_the_package_its_license_and_its_command(dist: Path) -> None:
    wheel = only(dist, f"click_telemetry-{cli_telemetry.__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"click_telemetry-{cli_telemetry.__version__}.dist-info"
        metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE")
    assert {name for name in names if not name.startswith(f"{info}/")} == package_files()
    assert "cli_telemetry/py.typed" in names  # mypy reads the types only with it
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == cli_telemetry.__version__  # the one source, read by hatchling
    assert metadata["License-Expression"] == "MIT"
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert set(metadata.get_all("Provides-Extra") or ()) >= {"collector", "postgres"}
    assert f"{DISTRIBUTION} = cli_telemetry.collector.cli:main" in entry_points
    # PyInstaller finds the library's hook through it (tests/test_frozen_e2e.py builds with it).
    assert "hook-dirs = cli_telemetry._pyinstaller:get_hook_dirs" in entry_points
    assert "cli_telemetry/_pyinstaller/hook-cli_telemetry.py" in names


def test_the_sdist_holds_the_package_and_its_documents_and_nothing_else(dist: Path) -> None:
    """Anchored includes: bench/baseline/cli_telemetry (a do-nothing stand-in) stays out;
    the documentation site's sources are in."""
    sdist = only(dist, f"click_telemetry-{cli_telemetry.__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = (
        package_files() | DOCUMENTS | docs_files() | {"pyproject.toml", "PKG-INFO", ".gitignore"}
    )
    assert names == expected


def test_the_installed_wheel_runs_the_demo_without_this_checkout(
    dist: Path, tmp_path: Path
) -> None:
    """A fresh venv, the bare wheel first (its command works and names the extra it lacks),
    then the collector extra and the example tool: the demo runs from there."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    wheel = only(dist, "*.whl")
    pip: list[str | Path] = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    run([*pip, wheel], cwd=tmp_path)

    where = run(
        [python, "-c", "import cli_telemetry, sys; print(cli_telemetry.__file__); print(sys.path)"],
        cwd=tmp_path,
    ).stdout
    assert Path(where.splitlines()[0]).is_relative_to(env_dir), where
    assert str(ROOT) not in where, "the installed package must not see this checkout"
    command = bin_dir / DISTRIBUTION
    assert run([command, "--version"], cwd=tmp_path).stdout == (
        f"{DISTRIBUTION} {cli_telemetry.__version__}\n"
    )
    usage = run([python, "-m", "cli_telemetry", "--help"], cwd=tmp_path).stdout
    assert usage.startswith("Usage: python -m cli_telemetry [OPTIONS] COMMAND"), usage
    bare = subprocess.run(
        [command, "report", "--db", f"sqlite:///{tmp_path / 'r.sqlite3'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert (bare.returncode, bare.stdout) == (1, "")
    assert bare.stderr.endswith(f"pip install '{DISTRIBUTION}[collector]'\n"), bare.stderr
    assert bare.stderr.count("\n") == 1, "one line, not a traceback"

    run([*pip, f"{wheel}[collector]", ROOT / "examples" / "cli_app"], cwd=tmp_path)
    where = run([python, "-c", "import cli_app; print(cli_app.__file__)"], cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(env_dir), where
    # dev.py needs only the standard library: the venv's own interpreter runs it.
    demo = run([python, ROOT / "dev.py", "demo", "--venv", env_dir], cwd=tmp_path)
    assert "invocations 5, installs 1, errors 40.0%" in demo.stdout, demo.stdout
    assert "is now disabled" in demo.stdout
