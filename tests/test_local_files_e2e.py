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

import grp
import json
import os
import pwd
import resource
import shutil
import stat
import subprocess
import tempfile
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


# -- directories someone else can change -----------------------------------------------------

DIRECTORIES: dict[str, Callable[[Tool], Path]] = {
    "config dir": lambda tool: tool.config_file.parent,
    "tool's state dir": lambda tool: tool.state_dir.parent,
    "telemetry state dir": lambda tool: tool.state_dir,
    "spool": lambda tool: tool.spool_dir,
}


def loosen(path: Path, how: str) -> None:
    if how == "owned by another user":
        os.chown(path, OTHER, OTHER)
    elif how == "writable by another group":
        os.chown(path, -1, OTHER)
        path.chmod(0o770)
    else:
        path.chmod(0o777)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("owned by another user", marks=as_root),
        pytest.param("writable by another group", marks=as_root),
        "writable by everyone",
    ],
)
@pytest.mark.parametrize("which", DIRECTORIES)
def test_a_directory_others_can_change_turns_telemetry_off(
    tool: Tool, which: str, how: str
) -> None:
    tool.enable()
    tool.run("hello")
    assert len(tool.events()) == 1
    directory = DIRECTORIES[which](tool)
    loosen(directory, how)

    assert outcome(tool.run("hello")) == HELLO
    assert len(tool.events()) == 1, "nothing more is recorded"
    debug = tool.run("hello", env=DEBUG)
    assert debug.returncode == 0
    assert "cli-telemetry: would not record: telemetry is off (" in debug.stderr
    assert str(directory) in debug.stderr
    state = status(tool)
    assert (state["enabled"], state["source"]) == (False, "files")
    assert str(directory) in state["reason"]
    text = tool.run("telemetry", "status")
    assert text.returncode == 0 and str(directory) in text.stdout.splitlines()[0]


def _own_group_is_private() -> bool:
    group = grp.getgrgid(os.getegid())
    name = pwd.getpwuid(os.geteuid()).pw_name
    return group.gr_name == name and set(group.gr_mem) <= {name}


def test_a_directory_writable_only_by_the_users_own_group_is_trusted(tool: Tool) -> None:
    """Under a umask of 002 (Debian's and Ubuntu's default for user private groups) a tool
    creates its config dir group-writable; that group holds the user alone."""
    if not _own_group_is_private():
        pytest.skip("this user's group is not a private group")
    tool.enable()
    tool.run("hello")
    for directory in DIRECTORIES.values():
        directory(tool).chmod(0o770)
    assert outcome(tool.run("hello")) == HELLO
    assert len(tool.events()) == 2


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


# -- root with another user's HOME (sudo -E) ------------------------------------------------------


@pytest.fixture
def users_home() -> Iterator[Path]:
    """A home directory that belongs to uid 65534, where that user can reach it."""
    top = Path(tempfile.mkdtemp(prefix="cli-telemetry-home-"))
    top.chmod(0o755)
    home = top / "home"
    home.mkdir(mode=0o700)
    os.chown(home, OTHER, OTHER)
    yield home
    shutil.rmtree(top)


def as_user(tool: Tool, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the tool as the home's owner (uid 65534)."""
    return subprocess.run(
        tool.command(*args), env=tool.env, capture_output=True, text=True, timeout=60,
        check=False, cwd=tool.home, user=OTHER, group=OTHER, extra_groups=[],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def everything_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


@as_root
def test_root_in_an_empty_home_of_another_user_creates_nothing(users_home: Path) -> None:
    tool = Tool(users_home)
    tty = tool.run_tty("hello")  # a notice to save, on a terminal
    assert (tty.returncode, tty.stdout) == (0, "Hello, world!\n")
    assert "collects usage data" not in tty.terminal
    assert outcome(tool.run("hello")) == HELLO
    assert tool.run("telemetry", "status").returncode == 0
    state = status(tool)
    assert (state["enabled"], state["source"]) == (False, "files")
    assert "uid 65534" in state["reason"]
    for command in ("enable", "disable"):
        result = tool.run("telemetry", command)
        assert result.returncode == 1 and result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and "uid 65534" in result.stderr, command
    assert everything_under(users_home) == []


@as_root
def test_root_with_another_users_home_follows_none_of_their_links(
    users_home: Path, tmp_path: Path
) -> None:
    tool = Tool(users_home)
    assert as_user(tool, "telemetry", "enable").returncode == 0
    assert outcome(as_user(tool, "hello")) == HELLO
    [event] = tool.event_files()
    # What the user plants, for root to follow: each link leads somewhere of root's.
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "kept").mkdir()
    (victims / "kept" / "precious").write_text("root's")
    plants = {
        tool.spool_dir / "tmp": victims / "spool-tmp",
        tool.spool_dir / "claimed" / "batch": victims / "kept",
        tool.state_dir / "uploader.stamp": victims / "stamp",
        tool.state_dir / "upload.json": victims / "upload.json",
    }
    (victims / "spool-tmp").mkdir()
    for link, target in plants.items():
        if link.is_dir():
            link.rmdir()
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(target)
    for path in [tool.spool_dir / "claimed", *plants]:
        os.lchown(path, OTHER, OTHER)
    before = {str(p): p.lstat() for p in everything_under(users_home)}

    env = {"CLI_APP_TELEMETRY_ENDPOINT": closed_port()}  # root's run would spawn an uploader
    assert outcome(tool.run("hello", env=env)) == HELLO
    deploy = tool.run("deploy", "start", "web", "--env", "prod", env=env)
    assert deploy.returncode == 0, deploy.stderr
    assert tool.run("telemetry", "status", env=env).returncode == 0
    for command in ("enable", "disable"):
        result = tool.run("telemetry", command, env=env)
        assert result.returncode == 1 and result.stdout == "", command
        assert len(result.stderr.splitlines()) == 1 and "uid 65534" in result.stderr, command

    after = {str(p): p.lstat() for p in everything_under(users_home)}
    assert sorted(after) == sorted(before), "nothing created or deleted in the user's home"
    assert all(st.st_uid == OTHER for st in after.values()), "nothing of root's there"
    assert [(p, st.st_mtime_ns) for p, st in after.items()] == [
        (p, st.st_mtime_ns) for p, st in before.items()
    ]
    assert tool.event_files() == [event]
    assert sorted(p.name for p in victims.rglob("*")) == ["kept", "precious", "spool-tmp"]
    assert (victims / "kept" / "precious").read_text() == "root's"


def test_a_users_own_link_to_a_private_directory_of_theirs_is_followed(
    tool: Tool, tmp_path: Path
) -> None:
    """Dotfile managers link ~/.config/<tool> into a repository: that link is the user's."""
    real = tmp_path / "dotfiles" / "cli-app"
    real.mkdir(parents=True, mode=0o700)
    tool.config_file.parent.parent.mkdir(parents=True)
    tool.config_file.parent.symlink_to(real)
    tool.enable()
    assert (real / "telemetry.conf").is_file()
    assert outcome(tool.run("hello")) == HELLO
    assert len(tool.events()) == 1


def test_a_state_dir_made_private_again_records_again(tool: Tool) -> None:
    """The refusal lasts as long as its cause, and the debug output names the fix."""
    tool.enable()
    tool.run("hello")
    tool.state_dir.chmod(0o777)
    tool.run("hello")
    assert len(tool.events()) == 1
    tool.state_dir.chmod(0o700)
    tool.run("hello")
    assert len(tool.events()) == 2
    assert stat.S_IMODE(tool.state_dir.stat().st_mode) == 0o700
