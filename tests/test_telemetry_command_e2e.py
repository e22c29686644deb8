"""Every ``telemetry`` subcommand works, or answers one clear line on stderr with exit code 1,
never a traceback, whatever state the config and state directories are in.

These are the user's explicit requests, so unlike a recorded run they do report what went
wrong. Each situation is made by the home's owner (as root, the tool runs as uid 65534 in a
home of that user's: root ignores permission bits), then each subcommand runs in it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool

OTHER = 65534


@pytest.fixture
def home() -> Iterator[Path]:
    """A home of the user the tool runs as (uid 65534 under root), that user can reach."""
    top = Path(tempfile.mkdtemp(prefix="cli-telemetry-cmd-"))
    top.chmod(0o755)
    path = top / "home"
    path.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(path, OTHER, OTHER)
    yield path
    for sub in [path, *path.rglob("*")]:
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o700)
    shutil.rmtree(top)


def no_file_space() -> None:
    # Python ignores SIGXFSZ, so writing past the limit fails with EFBIG, as ENOSPC would.
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


class User:
    """The example tool, run as the home's owner."""

    def __init__(self, home: Path) -> None:
        self.tool = Tool(home)
        self.preexec: Callable[[], None] | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        user: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = {"user": OTHER, "group": OTHER, "extra_groups": []}
        return subprocess.run(
            self.tool.command(*args), env=self.tool.env, capture_output=True, text=True,
            timeout=60, check=False, cwd=self.tool.home, stdin=subprocess.DEVNULL,
            preexec_fn=self.preexec, **user,
        )  # fmt: skip

    def own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, OTHER, OTHER)

    def used(self) -> None:
        """Telemetry enabled and one event recorded: every directory exists."""
        assert self.run("telemetry", "enable").returncode == 0
        assert self.run("hello").returncode == 0
        assert self.tool.spool_dir.is_dir()


def missing(user: User) -> None:
    pass


def config_unreadable(user: User) -> None:
    user.used()
    user.tool.config_file.parent.chmod(0)


def state_unreadable(user: User) -> None:
    user.used()
    user.tool.state_dir.chmod(0)


def config_unwritable(user: User) -> None:
    user.used()
    user.tool.config_file.parent.chmod(0o500)


def state_unwritable(user: User) -> None:
    user.used()
    user.tool.state_dir.chmod(0o500)


def config_under_a_file(user: User) -> None:
    config = user.tool.home / ".config"
    config.write_text("a file where the config directory should be")
    user.own(config)


def state_under_a_file(user: User) -> None:
    assert user.run("telemetry", "enable").returncode == 0
    local = user.tool.home / ".local"
    local.mkdir()
    (local / "state").write_text("a file where the state directory should be")
    user.own(local)
    user.own(local / "state")


def disk_full(user: User) -> None:
    user.used()
    user.preexec = no_file_space


# The exit code each subcommand answers with: 0 it worked, 1 it said why it could not.
SITUATIONS: dict[str, tuple[Callable[[User], None], dict[str, int]]] = {
    "missing": (missing, {"status": 0, "enable": 0, "disable": 0}),
    "config unreadable": (config_unreadable, {"status": 0, "enable": 1, "disable": 1}),
    "state unreadable": (state_unreadable, {"status": 0, "enable": 0, "disable": 1}),
    "config unwritable": (config_unwritable, {"status": 0, "enable": 1, "disable": 1}),
    "state unwritable": (state_unwritable, {"status": 0, "enable": 0, "disable": 1}),
    "config under a file": (config_under_a_file, {"status": 0, "enable": 1, "disable": 1}),
    "state under a file": (state_under_a_file, {"status": 0, "enable": 0, "disable": 0}),
    "disk full": (disk_full, {"status": 0, "enable": 1, "disable": 1}),
}
COMMANDS = [["status"], ["status", "--json"], ["enable"], ["disable"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("situation", SITUATIONS)
def test_each_subcommand_works_or_says_why_in_one_line(
    home: Path, situation: str, command: list[str]
) -> None:
    user = User(home)
    make, expected = SITUATIONS[situation]
    make(user)

    result = user.run("telemetry", *command)

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expected[command[0]], (result.stdout, result.stderr)
    if result.returncode:
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: ")
        where = user.tool.config_file if command == ["enable"] else user.tool.home
        assert str(where) in line, line
    elif command == ["status", "--json"]:
        state = json.loads(result.stdout)
        assert state["config_file"] == str(user.tool.config_file)
    elif command == ["status"]:
        assert result.stdout.startswith("Telemetry for cli-app is ")


def test_disable_deletes_nothing_in_a_state_dir_others_can_write(home: Path) -> None:
    user = User(home)
    user.used()
    user.tool.state_dir.chmod(0o777)
    result = user.run("telemetry", "disable")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "disabled" in line and str(user.tool.state_dir) in line
    assert len(user.tool.event_files()) == 1
    assert "enabled = false" in user.tool.config_file.read_text()
