"""Someone else's CLI, unchanged: Flask's own test suite, bare and instrumented.

Flask's CLI is a custom group class (`FlaskGroup`, an `AppGroup`, a `click.Group`) that
loads an app at run time, resolves the app's commands lazily and nests groups (an app's
``@app.cli.group()``, blueprints' groups). Its sdist ships the tests that hold that
behaviour. The test installs Flask and its test dependencies at pinned versions
(``flask_suite/requirements.txt``) in a venv of its own, with this checkout (built without
the network), runs Flask's suite twice in fresh homes, once bare and once with
``flask_suite/telemetry_plugin.py`` loaded (telemetry enabled, its root and every root the
suite builds instrumented, each spawning an uploader that sends to a loopback endpoint, as
the CLI's users' runs would: the run takes the suite's opt-in to record under a test
runner), and compares the outcomes test by test from the two JUnit reports.

It then checks that the instrumented run did record: each of its two tools delivered events
to the endpoint, so the comparison cannot pass by instrumenting nothing.

The venv and the unpacked suite are cached in ``build/flask-suite/<key>`` (the key hashes
the pins and the Python version), so only the first run needs the network (~15 s); after
that the whole test takes a few seconds. The checkout is installed afresh on every run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest
from conftest import clean_environ, poll
from filelock import FileLock
from loopback import Endpoint

from cli_telemetry._settings import RECORD_UNDER_TEST_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "flask_suite"
REQUIREMENTS = HERE / "requirements.txt"
SDIST = HERE / "sdist.txt"
CACHE = ROOT / "build" / "flask-suite"
TOOLS = ("flask", "flask-apps")
"""The plugin's two tools: the ``flask`` program's root, and the roots the suite builds."""
ENDPOINT_VARIABLE = "CLI_TELEMETRY_FLASK_SUITE_ENDPOINT"

Outcomes = dict[str, list[str]]
"""Each test's outcomes (one per JUnit testcase of that id): ``passed``, ``skipped``,
``failure``, ``error`` (``error+failure`` when a test failed and its teardown too)."""


@dataclass(frozen=True)
class Suite:
    python: Path
    tests: Path  # the directory holding Flask's pyproject.toml (its pytest settings) and tests/


@dataclass(frozen=True)
class SuiteRun:
    outcomes: Outcomes
    messages: dict[str, str]  # the first failure or error text of each test that had one
    seconds: float  # the whole process, interpreter start to exit


def _pip(python: Path, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stderr}"


def _build(where: Path) -> None:
    """The venv with the pinned requirements, and Flask's tests unpacked from its sdist."""
    python = where / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=300)
    _pip(python, "install", "-r", str(REQUIREMENTS))
    download = where / "download"
    _pip(
        python,
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--require-hashes",
        "-r",
        str(SDIST),
        "-d",
        str(download),
    )
    (archive,) = download.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        wanted = [
            member
            for member in tar.getmembers()
            if member.name == f"{top}/pyproject.toml" or member.name.startswith(f"{top}/tests/")
        ]
        tar.extractall(where, members=wanted, filter="data")
    (where / top).rename(where / "suite")


@pytest.fixture(scope="module")
def suite() -> Suite:
    """The cached venv (built under a lock, marked complete only once whole), with this
    checkout installed into it afresh."""
    material = REQUIREMENTS.read_bytes() + SDIST.read_bytes() + sys.version.encode()
    where = CACHE / hashlib.sha256(material).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    python = where / "venv" / "bin" / "python"
    with FileLock(str(CACHE / f"{where.name}.lock"), timeout=900):
        if not (where / "complete").exists():
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir()
            _build(where)
            (where / "complete").write_text("")
        # Its dependencies are among the pins, already there; hatchling builds it.
        _pip(python, "install", "--no-build-isolation", str(ROOT))
    return Suite(python, where / "suite")


def outcomes_of(report: Path) -> tuple[Outcomes, dict[str, str]]:
    """Each test's outcomes in a JUnit report, and the text of its first failure or error."""
    # The report is the one our own subprocess just wrote.
    tree = ElementTree.parse(report)  # noqa: S314
    outcomes: Outcomes = {}
    messages: dict[str, str] = {}
    for case in tree.iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        tags = sorted({child.tag for child in case} & {"failure", "error", "skipped"})
        outcomes.setdefault(test, []).append("+".join(tags) or "passed")
        for child in case:
            if child.tag in ("failure", "error") and test not in messages:
                messages[test] = f"{child.get('message', '')}\n{child.text or ''}".strip()
    return outcomes, messages


def differences(bare: SuiteRun, instrumented: SuiteRun) -> str:
    """The tests whose outcomes differ, one line each, with what the instrumented run said
    where it failed; empty when every test ended the same."""
    lines = []
    for test in sorted(bare.outcomes.keys() | instrumented.outcomes.keys()):
        before = bare.outcomes.get(test, ["absent"])
        after = instrumented.outcomes.get(test, ["absent"])
        if before != after:
            lines.append(f"{test}: bare {'/'.join(before)}, instrumented {'/'.join(after)}")
            said = instrumented.messages.get(test) or bare.messages.get(test)
            if said:
                lines += [f"    {line}" for line in said.splitlines()[-12:]]
    if not lines:
        return ""
    changed = sum(1 for line in lines if not line.startswith("    "))
    return f"{changed} test(s) of Flask's suite ended differently:\n" + "\n".join(lines)


def suite_env(home: Path) -> dict[str, str]:
    """conftest's isolated environment, without Flask's variables or a Python path: both
    runs get the same one, and the instrumented run adds only the plugin's."""
    home.mkdir()
    env = clean_environ(home)
    for name in [*env]:
        if name.startswith("FLASK_") or name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            del env[name]
    return env


def run_suite(suite: Suite, env: dict[str, str], report: Path, *plugin: str) -> SuiteRun:
    started = time.monotonic()
    result = subprocess.run(
        [
            str(suite.python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *plugin,
            f"--junitxml={report}",
        ],
        cwd=suite.tests,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - started
    # 0: all passed, 1: some failed; anything else means the suite did not run through.
    assert result.returncode in (0, 1), f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    outcomes, messages = outcomes_of(report)
    return SuiteRun(outcomes, messages, seconds)


def uploaders_in(home: Path) -> list[int]:
    """The live uploaders started with this HOME (detached: not our children to wait for)."""
    marker = f"HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"cli_telemetry._uploader" not in (entry / "cmdline").read_bytes():
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def waiting(home: Path, tool: str) -> int:
    """The events of ``tool`` still in its spool (new, or claimed by an uploader that died)."""
    spool = home / ".local" / "state" / tool / "telemetry" / "spool"
    return len([*spool.glob("new/*.json"), *spool.glob("claimed/*/*.json")])


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/environ").exists(),
    reason="finds the detached uploaders of a run by their environment in /proc (Linux)",
)
def test_flask_suite_ends_the_same_with_telemetry(
    suite: Suite, endpoint: Endpoint, tmp_path: Path
) -> None:
    bare = run_suite(suite, suite_env(tmp_path / "bare"), tmp_path / "bare.xml")

    home = tmp_path / "instrumented"
    env = {**suite_env(home), "PYTHONPATH": str(HERE), ENDPOINT_VARIABLE: endpoint.url}
    # Flask's tests run its CLI under pytest, with CliRunner: an author's tests, which the
    # library keeps from recording. This harness stands for the CLI's users instead (every
    # run recorded, every uploader started), so it takes the suite's own opt-in.
    env[RECORD_UNDER_TEST_VARIABLE] = "1"
    enable = subprocess.run(
        [str(suite.python), "-m", "telemetry_plugin", "enable"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert enable.returncode == 0, enable.stderr
    report = tmp_path / "instrumented.xml"
    instrumented = run_suite(suite, env, report, "-p", "telemetry_plugin")

    assert len(bare.outcomes) > 400, f"Flask's suite ran {len(bare.outcomes)} tests"
    changed = differences(bare, instrumented)
    if changed:
        pytest.fail(changed, pytrace=False)

    # What telemetry did meanwhile: both tools recorded, and their uploaders delivered.
    assert poll(lambda: not uploaders_in(home), timeout=60), uploaders_in(home)
    delivered = {tool: 0 for tool in TOOLS}
    for event in endpoint.events:
        delivered[event["tool"]] += 1
    left = {tool: waiting(home, tool) for tool in TOOLS}
    counts = {outcome: 0 for outcome in ("passed", "skipped", "failure", "error")}
    for outcomes in instrumented.outcomes.values():
        for outcome in outcomes:
            for part in outcome.split("+"):
                counts[part] += 1
    print(
        f"Flask's suite: {len(bare.outcomes)} tests, {counts} in both runs;"
        f" {bare.seconds:.1f} s bare, {instrumented.seconds:.1f} s instrumented;"
        f" events delivered {delivered}, left in the spool {left}"
    )
    silent = [tool for tool in TOOLS if delivered[tool] == 0]
    assert not silent, f"no events of {silent} reached the endpoint ({left} in the spool)"


def test_the_comparison_names_each_test_that_ended_differently(tmp_path: Path) -> None:
    """The comparison itself, on two small JUnit reports as pytest writes them."""

    def report(name: str, cases: str) -> SuiteRun:
        path = tmp_path / name
        path.write_text(f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>')
        return SuiteRun(*outcomes_of(path), seconds=0.0)

    bare = report(
        "bare.xml",
        '<testcase classname="tests.test_a" name="test_same"/>'
        '<testcase classname="tests.test_a" name="test_broken"/>'
        '<testcase classname="tests.test_a" name="test_skip[x]"><skipped message="no"/></testcase>'
        '<testcase classname="tests.test_a" name="test_fails"><failure message="old"/></testcase>'
        '<testcase classname="tests.test_a" name="test_gone"/>',
    )
    instrumented = report(
        "instrumented.xml",
        '<testcase classname="tests.test_a" name="test_same"/>'
        '<testcase classname="tests.test_a" name="test_broken">'
        '<failure message="AssertionError">line 1\nassert out == "x"</failure>'
        '<error message="teardown"/></testcase>'
        '<testcase classname="tests.test_a" name="test_skip[x]"/>'
        '<testcase classname="tests.test_a" name="test_fails"><failure message="old"/></testcase>',
    )
    assert bare.outcomes["tests.test_a::test_skip[x]"] == ["skipped"]
    assert instrumented.outcomes["tests.test_a::test_broken"] == ["error+failure"]
    assert differences(bare, bare) == ""
    assert differences(bare, instrumented).splitlines() == [
        "3 test(s) of Flask's suite ended differently:",
        "tests.test_a::test_broken: bare passed, instrumented error+failure",
        "    AssertionError",
        "    line 1",
        '    assert out == "x"',
        "tests.test_a::test_gone: bare passed, instrumented absent",
        "tests.test_a::test_skip[x]: bare skipped, instrumented passed",
    ]
