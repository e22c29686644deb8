"""Files it did not make are not trusted: the example tool, run as a real process, next to
directories and files that someone else made or could change.

Each test plants what an attacker (another local user, or the user themselves when root runs
the tool with their HOME) or an unlucky accident would leave, and checks that the tool's own
output is untouched, that nothing is recorded from or written into what it should not trust,
and that the debug output and ``telemetry status`` say why.

Files owned by another user take root to make (``os.chown``): those tests are skipped
elsewhere (CI runs as root).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool, poll
from loopback import Endpoint, closed_port

OTHER = 65534  # nobody, and nogroup: a user and a group that are not the test's
HELLO = (0, "Hello, world!\n", "")
DEBUG = {"CLI_APP_TELEMETRY_DEBUG": "1"}

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="making a file another user owns takes root (CI runs as root)"
)


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def status(tool: Tool, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = tool.run("telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def limited_memory() -> None:
    """In the child: an address space of 2 GiB, so that reading /dev/zero to the end fails
    fast with MemoryError instead of taking the test machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))


def run_limited(
    tool: Tool, *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """``tool.run``, with the memory bound above, and a timeout that a hang runs into."""
    return subprocess.run(
        tool.command(*args), env={**tool.env, **(env or {})}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout, check=False, cwd=tool.home,
        preexec_fn=limited_memory,
    )  # fmt: skip


# -- a config file it did not write ------------------------------------------------------------

PLANTED_CONFIG = "enabled = true\nconsent_policy = 1\n"


@pytest.mark.parametrize(
    "how",
    [pytest.param("owned by another user", marks=as_root), "writable by others", "a link"],
)
def test_a_config_file_it_did_not_write_is_not_obeyed(tool: Tool, tmp_path: Path, how: str) -> None:
    tool.config_file.parent.mkdir(parents=True, mode=0o700)
    elsewhere = tmp_path / "elsewhere.conf"
    if how == "a link":
        elsewhere.write_text(PLANTED_CONFIG)
        tool.config_file.symlink_to(elsewhere)
    else:
        tool.config_file.write_text(PLANTED_CONFIG)
        if how == "owned by another user":
            os.chown(tool.config_file, OTHER, OTHER)
        else:
            tool.config_file.chmod(0o666)

    assert outcome(tool.run("hello")) == HELLO
    assert tool.events() == [], "a planted file turns nothing on"
    debug = tool.run("hello", env=DEBUG)
    assert "would not record: telemetry is off (the config file" in debug.stderr
    state = status(tool)
    assert (state["enabled"], state["source"]) == (False, "config")
    assert f"the config file cannot be used ({tool.config_file} " in state["reason"]

    # The user's own choice replaces it (and never writes through the link).
    assert tool.run("telemetry", "enable").returncode == 0
    assert not tool.config_file.is_symlink()
    assert tool.config_file.stat().st_uid == os.geteuid()
    assert tool.config_file.stat().st_mode & 0o777 == 0o600
    assert outcome(tool.run("hello")) == HELLO
    assert len(tool.events()) == 1
    if how == "a link":
        assert elsewhere.read_text() == PLANTED_CONFIG


# -- FIFOs, devices and links where its files should be ----------------------------------------

PLACES: dict[str, Callable[[Tool], Path]] = {
    "config file": lambda tool: tool.config_file,
    "ids": lambda tool: tool.ids_file,
    "uploader.pid": lambda tool: tool.state_dir / "uploader.pid",
    "uploader.stamp": lambda tool: tool.state_dir / "uploader.stamp",
    "upload.json": lambda tool: tool.state_dir / "upload.json",
    "spool stats": lambda tool: tool.spool_dir / "stats.json",
}
CASES = [
    (place, kind)
    for place in PLACES
    for kind in ("a FIFO", "a link to /dev/zero")
    if (place, kind) != ("uploader.stamp", "a link to /dev/zero")  # see test_spawn: no utime
]


@pytest.mark.parametrize(("place", "kind"), CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_a_fifo_or_a_device_where_a_file_should_be_neither_hangs_nor_exhausts_memory(
    tool: Tool, place: str, kind: str
) -> None:
    tool.enable()
    tool.run("hello")
    path = PLACES[place](tool)
    path.unlink(missing_ok=True)
    if kind == "a FIFO":
        os.mkfifo(path, 0o600)
        past = 1_000_000_000
        os.utime(path, (past, past))  # an old stamp: the next command would spawn
    else:
        path.symlink_to("/dev/zero")
    env = {"CLI_APP_TELEMETRY_ENDPOINT": closed_port()}  # the spawn path reads pid and stamp

    assert outcome(run_limited(tool, "hello", env=env)) == HELLO
    result = run_limited(tool, "telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert Path("/dev/zero").is_char_device()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.mark.parametrize("kind", ["a link to /dev/zero", "a FIFO"])
def test_a_spool_entry_that_is_no_event_file_is_dropped_unread_and_the_rest_is_sent(
    tool: Tool, endpoint: Endpoint, kind: str
) -> None:
    """Read, the first would make every uploader run die of MemoryError, and the second
    would hang it until its watchdog: the events behind either were never sent."""
    tool.enable()
    tool.run("hello")
    [event_file] = tool.event_files()
    planted = event_file.with_name("0" * 19 + "1" + event_file.name[20:])  # claimed first
    if kind == "a FIFO":
        os.mkfifo(planted, 0o600)
    else:
        planted.symlink_to("/dev/zero")

    result = run_limited(tool, "hello", env={"CLI_APP_TELEMETRY_ENDPOINT": endpoint.url})

    assert outcome(result) == HELLO
    assert poll(lambda: len(endpoint.events) == 2, timeout=20), endpoint.requests
    assert poll(tool.uploader_stopped, timeout=20)
    assert not os.path.lexists(planted)
    stats = json.loads((tool.spool_dir / "stats.json").read_text())
    assert stats["corrupt"] == 1
