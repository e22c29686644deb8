"""`_paths`: the no-import shortcut must give exactly what platformdirs would.

platformdirs' `Unix` and `MacOS` classes can be instantiated on any POSIX host and read
``os.environ`` when a property is accessed, so each case sets the same environment in
``os.environ`` (through monkeypatch) and in the mapping passed to `_fast_dirs`.
"""

from __future__ import annotations

import itertools
import os
import stat
import sys
from pathlib import Path

import platformdirs
import pytest
from platformdirs.macos import MacOS
from platformdirs.unix import Unix

from cli_telemetry import _paths

TOOLS = ("acme", "my-tool")

# None means "unset"; the rest are set verbatim.
HOMES = ("/home/alice", "/home/alice/", "/")
XDG_VALUES: tuple[str | None, ...] = (None, "", "relative/dir", "~/tilde", "/abs/dir", "/abs/dir/")

XDG_VARS = ("XDG_CONFIG_HOME", "XDG_STATE_HOME")


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]) -> dict[str, str]:
    """Make ``os.environ`` hold ``env`` (None: unset); return it as a plain mapping."""
    for var, value in env.items():
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    return {var: value for var, value in env.items() if value is not None}


def _case_id(case: tuple[str, str, str | None, str | None]) -> str:
    return "-".join("unset" if part is None else repr(part) for part in case)


CASES = list(itertools.product(TOOLS, HOMES, XDG_VALUES, XDG_VALUES))


# -- Linux and the BSDs: the XDG spec, as platformdirs.unix.Unix reads it ---------------


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_fast_dirs_on_linux_agree_with_platformdirs_unix(
    monkeypatch: pytest.MonkeyPatch, case: tuple[str, str, str | None, str | None]
) -> None:
    tool, home, config, state = case
    env = _apply(monkeypatch, {"HOME": home, "XDG_CONFIG_HOME": config, "XDG_STATE_HOME": state})

    fast = _paths._fast_dirs(tool, env, "linux")

    assert fast is not None, "an absolute HOME on Linux must not need platformdirs"
    reference = Unix(tool, appauthor=False)
    assert fast == (reference.user_config_dir, reference.user_state_dir)


@pytest.mark.parametrize("platform", ["freebsd14", "openbsd7", "netbsd10"])
def test_fast_dirs_on_the_bsds_agree_with_platformdirs_unix(
    monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    env = _apply(
        monkeypatch,
        {"HOME": "/home/bob", "XDG_CONFIG_HOME": "/etc/xdg-bob", "XDG_STATE_HOME": None},
    )

    fast = _paths._fast_dirs("acme", env, platform)

    reference = Unix("acme", appauthor=False)
    assert fast == (reference.user_config_dir, reference.user_state_dir)
    assert fast == ("/etc/xdg-bob/acme", "/home/bob/.local/state/acme")


def test_fast_dirs_on_linux_spell_out_the_xdg_defaults() -> None:
    """An anchor independent of platformdirs, so a change in both cannot go unnoticed."""
    assert _paths._fast_dirs("acme", {"HOME": "/home/u"}, "linux") == (
        "/home/u/.config/acme",
        "/home/u/.local/state/acme",
    )
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "/s"}
    assert _paths._fast_dirs("acme", env, "linux") == ("/c/acme", "/s/acme")


# -- macOS: ~/Library/Application Support, as platformdirs.macos.MacOS reads it ---------


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_fast_dirs_on_macos_agree_with_platformdirs_macos_where_they_answer(
    monkeypatch: pytest.MonkeyPatch, case: tuple[str, str, str | None, str | None]
) -> None:
    tool, home, config, state = case
    env = _apply(monkeypatch, {"HOME": home, "XDG_CONFIG_HOME": config, "XDG_STATE_HOME": state})

    fast = _paths._fast_dirs(tool, env, "darwin")

    if not config and not state:
        assert fast is not None, "macOS without XDG variables is the shortcut's case"
    if fast is not None:
        reference = MacOS(tool, appauthor=False)
        assert fast == (reference.user_config_dir, reference.user_state_dir)


def test_fast_dirs_on_macos_spell_out_application_support() -> None:
    assert _paths._fast_dirs("acme", {"HOME": "/Users/u"}, "darwin") == (
        "/Users/u/Library/Application Support/acme",
        "/Users/u/Library/Application Support/acme",
    )


@pytest.mark.parametrize("var", XDG_VARS)
@pytest.mark.parametrize("value", ["/abs/dir", "relative/dir"])
def test_fast_dirs_on_macos_defer_when_an_xdg_variable_is_set(var: str, value: str) -> None:
    assert _paths._fast_dirs("acme", {"HOME": "/Users/u", var: value}, "darwin") is None


# -- where platformdirs decides ----------------------------------------------------------


def test_fast_dirs_defer_on_windows() -> None:
    env = {"HOME": "/home/u", "USERPROFILE": "C:\\Users\\u"}
    assert _paths._fast_dirs("acme", env, "win32") is None
    assert _paths._fast_dirs("acme", {}, "win32") is None


@pytest.mark.parametrize("platform", ["linux", "darwin", "freebsd14"])
@pytest.mark.parametrize(
    "home", [None, "", "relative/home", "~", "~alice", "./home"], ids=lambda h: repr(h)
)
def test_fast_dirs_defer_without_an_absolute_home(platform: str, home: str | None) -> None:
    env = {"XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "/s"} if platform != "darwin" else {}
    if home is not None:
        env["HOME"] = home
    assert _paths._fast_dirs("acme", env, platform) is None


# -- resolve -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/alice", "XDG_CONFIG_HOME": None, "XDG_STATE_HOME": None},
        {"HOME": "/home/alice", "XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "/st"},
        {"HOME": "/home/alice", "XDG_CONFIG_HOME": "rel", "XDG_STATE_HOME": ""},
        # These two fall back to platformdirs (reading os.environ, set to the same values).
        {"HOME": None, "XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": None},
        {"HOME": "relative/home", "XDG_CONFIG_HOME": None, "XDG_STATE_HOME": "/st"},
    ],
    ids=["defaults", "xdg", "bad-xdg", "no-home", "relative-home"],
)
def test_resolve_puts_files_in_platformdirs_directories(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]
) -> None:
    environ = _apply(monkeypatch, env)

    paths = _paths.resolve("acme", environ)

    reference = platformdirs.PlatformDirs("acme", appauthor=False)
    assert paths.config_file == os.path.join(reference.user_config_dir, "telemetry.conf")
    assert paths.state_dir == os.path.join(reference.user_state_dir, "telemetry")
    assert paths.ids_file == os.path.join(reference.user_state_dir, "telemetry", "ids")
    assert paths.spool_dir == os.path.join(reference.user_state_dir, "telemetry", "spool")


def test_resolve_spells_out_the_file_names() -> None:
    paths = _paths.resolve("acme", {"HOME": "/home/u", "XDG_STATE_HOME": "/var/st"})
    assert paths.config_file == "/home/u/.config/acme/telemetry.conf"
    assert paths.state_dir == "/var/st/acme/telemetry"
    assert paths.ids_file == "/var/st/acme/telemetry/ids"
    assert paths.spool_dir == "/var/st/acme/telemetry/spool"


def test_resolve_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/from-environ")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/cfg-from-environ")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)

    paths = _paths.resolve("acme")

    assert paths.config_file == "/cfg-from-environ/acme/telemetry.conf"
    assert paths.state_dir == "/home/from-environ/.local/state/acme/telemetry"


@pytest.mark.parametrize("home", ["/home/u", "", "relative"])
def test_a_tests_directory_holds_every_tools_files(home: str) -> None:
    """What the pytest fixture sets: wherever HOME and XDG say, the files are the test's."""
    environ = {"HOME": home, "XDG_STATE_HOME": "/var/st", "CLI_TELEMETRY_TEST_DIR": "/t/dir"}
    paths = _paths.resolve("acme", environ)
    assert paths == _paths.Paths(
        "/t/dir/acme/telemetry.conf", "/t/dir/acme/telemetry", testing=True
    )
    assert paths.spool_dir == "/t/dir/acme/telemetry/spool"


@pytest.mark.parametrize("value", ["", "relative/dir"])
def test_a_relative_or_empty_test_directory_is_ignored(value: str) -> None:
    paths = _paths.resolve("acme", {"HOME": "/home/u", "CLI_TELEMETRY_TEST_DIR": value})
    assert paths == _paths.resolve("acme", {"HOME": "/home/u"})
    assert not paths.testing


# -- resolve where this machine is not: Windows, and macOS with XDG variables --------------
# `resolve` reads sys.platform when it is called, and asks platformdirs' class for that
# platform; both are set here, so the branch that only runs there runs here.


def test_resolve_on_windows_asks_platformdirs_for_the_local_app_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not the roaming profile: telemetry belongs to this machine's install, and a roaming
    install id would follow the user from machine to machine."""
    from platformdirs import windows

    asked: list[str] = []

    def folder(csidl_name: str) -> str:
        asked.append(csidl_name)
        return {"CSIDL_LOCAL_APPDATA": "C:\\Users\\u\\AppData\\Local"}[csidl_name]

    monkeypatch.setattr(windows, "get_win_folder", folder)
    monkeypatch.setattr(platformdirs, "PlatformDirs", windows.Windows)
    monkeypatch.setattr(sys, "platform", "win32")

    paths = _paths.resolve("acme", {"HOME": "/home/u", "USERPROFILE": "C:\\Users\\u"})

    local = os.path.join("C:\\Users\\u\\AppData\\Local", "acme")
    assert paths.config_file == os.path.join(local, "telemetry.conf")
    assert paths.state_dir == os.path.join(local, "telemetry")
    assert set(asked) == {"CSIDL_LOCAL_APPDATA"}


@pytest.mark.parametrize("tool", TOOLS)
def test_the_privacy_pages_paths_are_where_resolve_puts_them(
    monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    """`by_system`, written out for the privacy page, says what `resolve` does on each
    system, for a home directory with no XDG variable set."""
    from platformdirs import windows

    shown = {system: (config, state) for system, config, state in _paths.by_system(tool)}
    for system, platform, home in (("Linux", "linux", "/home/u"), ("macOS", "darwin", "/Users/u")):
        monkeypatch.setattr(sys, "platform", platform)
        paths = _paths.resolve(tool, {"HOME": home})
        config, state = shown[system]
        assert paths.config_file == config.replace("~", home, 1)
        assert paths.state_dir + "/" == state.replace("~", home, 1)

    local = "C:\\Users\\u\\AppData\\Local"
    monkeypatch.setattr(windows, "get_win_folder", lambda csidl_name: local)
    monkeypatch.setattr(platformdirs, "PlatformDirs", windows.Windows)
    monkeypatch.setattr(sys, "platform", "win32")
    paths = _paths.resolve(tool, {"USERPROFILE": "C:\\Users\\u"})
    config, state = shown["Windows"]
    user_folder = "C:\\Users\\u\\"
    assert paths.config_file.replace(os.sep, "\\") == user_folder + config
    assert paths.state_dir.replace(os.sep, "\\") + "\\" == user_folder + state


def test_resolve_on_macos_with_xdg_variables_asks_platformdirs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _apply(
        monkeypatch,
        {"HOME": "/Users/u", "XDG_CONFIG_HOME": "/Users/u/.config", "XDG_STATE_HOME": None},
    )
    monkeypatch.setattr(platformdirs, "PlatformDirs", MacOS)
    monkeypatch.setattr(sys, "platform", "darwin")
    asked: list[str] = []
    real = _paths._platformdirs

    def spy(tool: str) -> tuple[str, str]:
        asked.append(tool)
        return real(tool)

    monkeypatch.setattr(_paths, "_platformdirs", spy)

    paths = _paths.resolve("acme", env)

    assert asked == ["acme"]
    reference = MacOS("acme", appauthor=False)
    assert paths.config_file == os.path.join(reference.user_config_dir, "telemetry.conf")
    assert paths.state_dir == os.path.join(reference.user_state_dir, "telemetry")


def test_resolve_on_macos_without_xdg_variables_imports_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(_paths, "_platformdirs", lambda tool: pytest.fail("asked platformdirs"))

    paths = _paths.resolve("acme", {"HOME": "/Users/u"})

    assert paths.config_file == "/Users/u/Library/Application Support/acme/telemetry.conf"
    assert paths.state_dir == "/Users/u/Library/Application Support/acme/telemetry"


# -- make_private_dir --------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("permissive_umask")
def test_make_private_dir_creates_every_missing_parent_0700(tmp_path: Path) -> None:
    leaf = tmp_path / "a" / "b" / "c" / "d"

    _paths.make_private_dir(str(leaf))

    assert leaf.is_dir()
    created = [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c", leaf]
    assert {str(p): oct(_mode(p)) for p in created} == {str(p): oct(0o700) for p in created}


@pytest.mark.usefixtures("permissive_umask")
def test_make_private_dir_is_idempotent_and_leaves_existing_dirs_alone(tmp_path: Path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    leaf = existing / "x" / "y"

    _paths.make_private_dir(str(leaf))
    _paths.make_private_dir(str(leaf))
    _paths.make_private_dir(str(existing / "x"))

    assert leaf.is_dir()
    assert _mode(existing) == 0o755, "a directory that already existed keeps its mode"
    assert _mode(existing / "x") == 0o700
    assert _mode(leaf) == 0o700
    assert sorted(p.name for p in existing.rglob("*")) == ["x", "y"]


def test_make_private_dir_under_a_restrictive_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        _paths.make_private_dir(str(tmp_path / "p" / "q"))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "p") == 0o700
    assert _mode(tmp_path / "p" / "q") == 0o700


# -- write_private and read_private: files it did not make ----------------------------------


def test_write_private_never_writes_through_a_link_planted_at_a_temporary_name(
    tmp_path: Path,
) -> None:
    """A temporary name anyone could predict (``<path>.<pid>.tmp``), opened without O_EXCL,
    let a planted link redirect the write to any file the user (or root) can write."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    path = tmp_path / "telemetry.conf"
    for pid in (os.getpid(), os.getpid() + 1):
        (tmp_path / f"telemetry.conf.{pid}.tmp").symlink_to(victim)

    _paths.write_private(str(path), "enabled = false\n")

    assert victim.read_text() == "keep me"
    assert path.read_text() == "enabled = false\n" and not path.is_symlink()
    assert _mode(path) == 0o600


def test_write_private_uses_a_new_random_temporary_name_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        opened.append((path, flags))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    target = str(tmp_path / "upload.json")
    _paths.write_private(target, "{}")
    _paths.write_private(target, "{}")

    [(first, flags), (second, _)] = opened
    assert first != second and first.startswith(target + ".") and first.endswith(".tmp")
    assert flags & os.O_EXCL and flags & os.O_CREAT and flags & os.O_NOFOLLOW


def test_read_private_reads_a_regular_file_of_ours(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    path.write_bytes(b"install_id = x\n")
    assert _paths.read_private(str(path), 100) == b"install_id = x\n"
    with pytest.raises(FileNotFoundError):
        _paths.read_private(str(tmp_path / "missing"), 100)


def test_read_private_refuses_a_link_a_fifo_a_device_and_a_large_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"x")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")  # opened without O_NONBLOCK, reading it would block
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "large").write_bytes(b"x" * 101)
    (tmp_path / "directory").mkdir()

    for name, why in [
        ("link", "is a symbolic link"),
        ("fifo", "is not a regular file"),
        ("zero", "is a symbolic link"),
        ("large", "is larger than 100 bytes"),
        ("directory", "is not a regular file"),
    ]:
        with pytest.raises(_paths.UnsafeFile) as caught:
            _paths.read_private(str(tmp_path / name), 100)
        assert isinstance(caught.value, OSError)
        assert caught.value.strerror == why, name
        assert str(caught.value) == f"{tmp_path / name} {why}"
    with pytest.raises(_paths.UnsafeFile, match="is not a regular file"):
        _paths.read_private("/dev/null", 100)


@pytest.mark.skipif(os.geteuid() != 0, reason="a file another user owns takes root to make")
def test_read_private_refuses_another_users_file_and_one_others_can_write(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.write_bytes(b"x")
    os.chown(theirs, 65534, 65534)
    loose = tmp_path / "loose"
    loose.write_bytes(b"x")
    loose.chmod(0o646)
    with pytest.raises(_paths.UnsafeFile, match="belongs to uid 65534"):
        _paths.read_private(str(theirs), 100)
    with pytest.raises(_paths.UnsafeFile, match="writable by other users"):
        _paths.read_private(str(loose), 100)


# -- untrusted: the directories of a run ------------------------------------------------------


def _home_paths(home: Path) -> _paths.Paths:
    return _paths.resolve("acme", {"HOME": str(home)})


def test_a_fresh_home_is_trusted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    assert _paths.untrusted(_home_paths(home), environ={"HOME": str(home)}) is None


def test_directories_it_made_are_trusted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    paths = _home_paths(home)
    _paths.make_private_dir(os.path.dirname(paths.config_file))
    _paths.make_private_dir(paths.spool_dir)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) is None


@pytest.mark.parametrize("mode", [0o777, 0o707, 0o702])
def test_a_directory_others_can_write_is_not_trusted(tmp_path: Path, mode: int) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    paths = _home_paths(home)
    _paths.make_private_dir(paths.spool_dir)
    os.chmod(paths.state_dir, mode)
    why = _paths.untrusted(paths, environ={"HOME": str(home)})
    assert why == f"{paths.state_dir} is writable by other users"
    assert _paths.untrusted(paths, state=False, environ={"HOME": str(home)}) is None


def test_a_missing_directory_is_created_only_where_it_would_be_ours(tmp_path: Path) -> None:
    """Nothing exists yet: the first existing ancestor decides."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / ".local").write_text("a file")
    paths = _home_paths(home)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) == (
        f"{home / '.local'} is not a directory"
    )
    assert _paths.untrusted(paths, state=False, environ={"HOME": str(home)}) is None
    home.chmod(0o777)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) == (
        f"{home} is writable by other users"
    )


def test_a_missing_home_is_not_trusted(tmp_path: Path) -> None:
    home = tmp_path / "missing"
    why = _paths.untrusted(_home_paths(home), environ={"HOME": str(home)})
    assert why == f"the home directory {home} does not exist"


def test_a_tests_directory_does_not_depend_on_the_home_directory(tmp_path: Path) -> None:
    """A CI container often runs as a user who does not own HOME (or has none): a test's
    files are elsewhere, so HOME is not checked; the test's own directory still is."""
    missing = str(tmp_path / "missing")
    directory = tmp_path / "telemetry"
    directory.mkdir(mode=0o700)
    environ = {"HOME": missing, "CLI_TELEMETRY_TEST_DIR": str(directory)}
    paths = _paths.resolve("acme", environ)
    assert _paths.untrusted(paths, environ=environ) is None
    directory.chmod(0o777)
    assert _paths.untrusted(paths, environ=environ) == f"{directory} is writable by other users"


@pytest.mark.skipif(os.geteuid() != 0, reason="a file another user owns takes root to make")
def test_another_users_home_is_not_trusted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    why = _paths.untrusted(_home_paths(home), environ={"HOME": str(home)})
    assert why == (
        f"the home directory {home} belongs to uid 65534, and this runs as uid 0 (sudo without -H?)"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="a file another user owns takes root to make")
def test_a_link_another_user_made_is_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    paths = _home_paths(home)
    config_dir = Path(paths.config_file).parent
    config_dir.parent.mkdir(parents=True)
    config_dir.symlink_to(mine)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) is None  # the user's own
    os.lchown(config_dir, 65534, 65534)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) == (
        f"{config_dir} is a symbolic link that uid 65534 made"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's group takes root")
def test_group_write_is_trusted_only_for_the_users_private_group(tmp_path: Path) -> None:
    import grp
    import pwd

    group = grp.getgrgid(os.getegid())
    if group.gr_name != pwd.getpwuid(os.geteuid()).pw_name or group.gr_mem:
        pytest.skip("this user's group is not a private group")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    paths = _home_paths(home)
    _paths.make_private_dir(paths.spool_dir)
    Path(paths.spool_dir).chmod(0o770)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) is None
    os.chown(paths.spool_dir, -1, 65534)
    assert _paths.untrusted(paths, environ={"HOME": str(home)}) == (
        f"{paths.spool_dir} is writable by group 65534"
    )


# -- where there are no uids (Windows) -------------------------------------------------------


def test_without_uids_the_ownership_checks_pass_what_they_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no geteuid: a profile is per user and guarded by ACLs, so the checks that
    compare owners and mode bits step aside rather than refuse everything (or crash)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    paths = _home_paths(home)
    _paths.make_private_dir(paths.spool_dir)
    os.chmod(paths.state_dir, 0o777)  # noqa: S103 - what the checks refuse, with uids
    loose = tmp_path / "loose"
    loose.write_bytes(b"x")
    loose.chmod(0o666)
    environ = {"HOME": str(home)}
    assert _paths.untrusted(paths, environ=environ) is not None  # here, with uids
    with pytest.raises(_paths.UnsafeFile, match="writable by other users"):
        _paths.read_private(str(loose), 100)

    monkeypatch.delattr(os, "geteuid")

    assert _paths.untrusted(paths, environ=environ) is None
    assert _paths.read_private(str(loose), 100) == b"x"
    with pytest.raises(_paths.UnsafeFile, match="is not a regular file"):
        _paths.read_private("/dev/null", 100)  # what needs no uid is still refused
