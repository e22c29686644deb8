"""Starting the uploader: arguments, detachment, throttling, and spawn failures.

pytest-subprocess fakes ``subprocess.Popen`` for the Windows path (which uses it); the POSIX
path calls ``os.posix_spawn`` (subprocess costs 3-5 ms to import in a running CLI), so its
arguments are checked by wrapping that function, and the real thing is run by the
end-to-end delivery tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_subprocess import FakeProcess

from cli_telemetry import _spawn
from cli_telemetry._settings import UPLOAD_AT_ONCE_VARIABLE


def test_argv_is_this_interpreter_running_the_uploader_module() -> None:
    # -P: the current directory (an untrusted checkout, say) must not shadow any module.
    assert _spawn.uploader_argv() == [sys.executable, "-P", "-m", "cli_telemetry._uploader"]


def test_posix_spawn_detaches_with_dev_null_and_no_inherited_descriptors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_posix_spawn(*args: Any, **kwargs: Any) -> int:
        calls.append((args, kwargs))
        return 4242

    monkeypatch.setattr(os, "posix_spawn", fake_posix_spawn)
    read, write = os.pipe()
    os.set_inheritable(write, True)  # as if the tool had inherited a pipe from its parent
    try:
        assert _spawn.spawn(["/bin/true", "x"], '{"endpoint":"https://t0k3n@host"}') == 4242
    finally:
        os.close(read)
        os.close(write)
    [(args, kwargs)] = calls
    path, argv, env = args
    assert (path, argv) == ("/bin/true", ["/bin/true", "x"])
    # The options (an endpoint may hold a token) are in the environment, not the arguments
    # that `ps` shows every user.
    assert env[_spawn.OPTIONS_VARIABLE] == '{"endpoint":"https://t0k3n@host"}'
    assert env["PYTHONPATH"].split(os.pathsep) == [p for p in sys.path if p and p != os.getcwd()]
    assert {k: v for k, v in env.items() if k not in (_spawn.OPTIONS_VARIABLE, "PYTHONPATH")} == {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH"
    }
    import signal

    assert {signal.SIGTERM, signal.SIGHUP, signal.SIGINT} <= kwargs["setsigdef"]
    assert kwargs["setsigmask"] == ()
    assert kwargs["setsid"] is True
    actions = kwargs["file_actions"]
    assert actions[:3] == [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    assert (os.POSIX_SPAWN_CLOSE, write) in actions
    assert (os.POSIX_SPAWN_CLOSE, read) not in actions  # not inheritable: exec closes it


def test_windows_popen_flags(fp: FakeProcess) -> None:
    seen: dict[str, Any] = {}

    def record(process: Any) -> None:
        seen.update(process.kwargs)

    fp.register([sys.executable, "-P", "-m", "cli_telemetry._uploader"], callback=record)
    _spawn._spawn_windows(_spawn.uploader_argv(), {"A": "1"})
    assert seen["stdin"] == seen["stdout"] == seen["stderr"] == subprocess.DEVNULL
    assert seen["close_fds"] is True
    assert seen["env"] == {"A": "1"}
    flags = seen["creationflags"]
    assert flags == 0x08000000 | 0x00000008 | 0x00000200 | 0x00004000  # NO_WINDOW|DETACHED|
    # NEW_GROUP|BELOW_NORMAL_PRIORITY (see `_spawn.lower_priority`)


@pytest.mark.usefixtures("as_a_user")
def test_a_failed_spawn_is_silent_and_keeps_the_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import click
    from click.testing import CliRunner

    from cli_telemetry import Telemetry

    def fail(argv: list[str]) -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(_spawn, "spawn", fail)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "DO_NOT_TRACK"):
        monkeypatch.delenv(var, raising=False)
    telemetry = Telemetry("acme", version="1", endpoint="http://127.0.0.1:9/v1/events")
    (tmp_path / ".config" / "acme").mkdir(parents=True)
    (tmp_path / ".config" / "acme" / "telemetry.conf").write_text(
        "enabled = true\nconsent_policy = 1\n"
    )

    @telemetry.instrument
    @click.command()
    def cli() -> None:
        click.echo("done")

    for expected in (1, 2):
        result = CliRunner().invoke(cli, [])
        assert (result.exit_code, result.output) == (0, "done\n")
        assert telemetry.status().pending == expected  # recorded; only the upload waits
        os.utime(tmp_path / ".local/state/acme/telemetry/uploader.stamp", (0, 0))


def test_should_spawn_throttles_and_respects_a_future_stamp(tmp_path: Path) -> None:
    stamp = str(tmp_path / "uploader.stamp")
    now = time.time()
    assert _spawn.should_spawn(stamp, now) is True
    assert (tmp_path / "uploader.stamp").stat().st_mode & 0o777 == 0o600
    assert _spawn.should_spawn(stamp, now + 1) is False
    assert _spawn.should_spawn(stamp, now + _spawn.SPAWN_INTERVAL + 0.1) is True
    later = now + 3600  # an uploader backing off
    os.utime(stamp, (later, later))
    assert _spawn.should_spawn(stamp, now + 600) is False


def test_a_burst_of_processes_spawns_a_handful(tmp_path: Path) -> None:
    """100 processes racing through the throttle at once: few get through."""
    stamp = tmp_path / "uploader.stamp"
    code = (
        "import sys, time; from cli_telemetry import _spawn;"
        " sys.stdin.readline();"
        f" print(_spawn.should_spawn({str(stamp)!r}, time.time()))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(100)
    ]
    for proc in procs:  # release them together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(proc.stdout.read().strip())
        proc.stdout.close()
        proc.wait(timeout=60)
    assert results.count("True") >= 1
    assert results.count("True") <= 10, results.count("True")


def test_reap_collects_finished_uploaders_and_keeps_running_ones() -> None:
    done = os.posix_spawn("/bin/true", ["/bin/true"], os.environ)
    running = os.posix_spawn("/bin/sleep", ["/bin/sleep", "30"], os.environ)
    try:
        deadline = time.monotonic() + 10
        while (left := _spawn.reap([done, running])) != [running]:
            assert time.monotonic() < deadline, left
            time.sleep(0.01)
    finally:
        os.kill(running, 9)
        os.waitpid(running, 0)
    assert _spawn.reap([done]) == []


@contextlib.contextmanager
def uploader_lookalike() -> Iterator[int]:
    """A live process whose command line names the uploader module; its pid.

    It says so once it runs Python: until its exec, /proc shows the command line of the
    process it was forked from (pytest), which names no uploader.
    """
    code = "import time; print('ready', flush=True); time.sleep(60)"
    with subprocess.Popen(
        [sys.executable, "-c", code, "cli_telemetry._uploader"], stdout=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
            yield process.pid
        finally:
            process.kill()


def test_running_uploader_recognises_only_a_live_uploader(tmp_path: Path) -> None:
    pid_file = tmp_path / "uploader.pid"
    assert _spawn.running_uploader(str(pid_file)) is None  # no file
    pid_file.write_text("not a pid")
    assert _spawn.running_uploader(str(pid_file)) is None
    pid_file.write_text(str(os.getpid()))  # alive, but not an uploader (a reused pid)
    assert _spawn.running_uploader(str(pid_file)) is None
    with uploader_lookalike() as pid:
        pid_file.write_text(str(pid))
        assert _spawn.running_uploader(str(pid_file)) == pid
    assert _spawn.running_uploader(str(pid_file)) is None  # gone


def test_a_link_planted_at_the_stamp_is_replaced_not_followed(tmp_path: Path) -> None:
    """Through the link, the stamp's O_CREAT and utime would make or touch any file."""
    victim = tmp_path / "victim"
    stamp = tmp_path / "uploader.stamp"
    stamp.symlink_to(victim)
    _spawn.next_spawn_at(str(stamp), 1_000_000_000)
    assert not os.path.lexists(victim)
    assert not stamp.is_symlink() and stamp.stat().st_mtime == 1_000_000_000

    victim.write_text("keep")
    os.utime(victim, (5, 5))
    stamp.unlink()
    stamp.symlink_to(victim)
    assert _spawn.should_spawn(str(stamp), time.time()) is True
    assert (victim.read_text(), victim.stat().st_mtime) == ("keep", 5)
    assert not stamp.is_symlink()


def test_a_fifo_at_the_stamp_is_replaced_without_blocking(tmp_path: Path) -> None:
    stamp = tmp_path / "uploader.stamp"
    os.mkfifo(stamp)
    code = (
        "import sys; from cli_telemetry import _spawn;"
        " _spawn.next_spawn_at(sys.argv[1], 1_000_000_000)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(stamp)], capture_output=True, text=True,
        timeout=20, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert stamp.is_file() and stamp.stat().st_mtime == 1_000_000_000


# -- where there is no /proc (macOS, the BSDs), or no cheap check at all (Windows) ----------
# The branches are chosen by what exists when they run (PROC, FD_DIRS, os.name,
# os.supports_fd): pointed elsewhere here, the paths that only run there run here.


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_without_proc_a_fresh_pid_file_naming_a_live_process_is_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spawn, "PROC", str(tmp_path / "no-proc"))
    pid_file = tmp_path / "uploader.pid"
    pid_file.write_text(str(os.getpid()))  # alive; without /proc, that is all one can tell
    assert _spawn.running_uploader(str(pid_file)) == os.getpid()
    pid_file.write_text(str(_dead_pid()))
    assert _spawn.running_uploader(str(pid_file)) is None


def test_without_proc_a_pid_file_older_than_any_uploader_is_not_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed uploader's pid file, whose pid a program of the user's has now (after a
    reboot, say): believed, it would stop every later spawn while that program runs, and
    `telemetry disable` would signal it."""
    from cli_telemetry import _uploader

    assert _spawn.PID_FILE_LIFETIME > _uploader.DEADLINE + _uploader.HARD_STOP_GRACE
    monkeypatch.setattr(_spawn, "PROC", str(tmp_path / "no-proc"))
    pid_file = tmp_path / "uploader.pid"
    pid_file.write_text(str(os.getpid()))
    now = time.time()
    os.utime(pid_file, (now - _spawn.PID_FILE_LIFETIME + 5, now - _spawn.PID_FILE_LIFETIME + 5))
    assert _spawn.running_uploader(str(pid_file)) == os.getpid()
    os.utime(pid_file, (now - _spawn.PID_FILE_LIFETIME - 5, now - _spawn.PID_FILE_LIFETIME - 5))
    assert _spawn.running_uploader(str(pid_file)) is None


def test_on_linux_the_age_of_the_pid_file_does_not_matter(tmp_path: Path) -> None:
    """/proc tells an uploader apart from any other program: a long run is still one."""
    with uploader_lookalike() as pid:
        pid_file = tmp_path / "uploader.pid"
        pid_file.write_text(str(pid))
        os.utime(pid_file, (0, 0))
        assert _spawn.running_uploader(str(pid_file)) == pid


def test_on_windows_a_pid_file_is_never_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No /proc and no signal 0: the uploader lock decides, so nothing is ever signalled."""
    monkeypatch.setattr(_spawn, "PROC", str(tmp_path / "no-proc"))
    pid_file = tmp_path / "uploader.pid"
    pid_file.write_text(str(os.getpid()))
    with monkeypatch.context() as m:
        m.setattr(os, "name", "nt")
        found = _spawn.running_uploader(str(pid_file))
    assert found is None
    assert _spawn.running_uploader(str(pid_file)) == os.getpid()  # the control: POSIX


def test_on_windows_spawn_starts_a_windowless_process_and_keeps_no_pid(
    fp: FakeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    fp.register(_spawn.uploader_argv(), callback=lambda process: seen.update(process.kwargs))
    monkeypatch.setattr(os, "posix_spawn", lambda *a, **k: pytest.fail("posix_spawn"))
    with monkeypatch.context() as m:
        m.setattr(os, "name", "nt")
        pid = _spawn.spawn(_spawn.uploader_argv(), '{"tool":"acme"}')
    assert pid is None  # nothing to reap: reap() would need os.WNOHANG, which Windows lacks
    assert seen["env"][_spawn.OPTIONS_VARIABLE] == '{"tool":"acme"}'
    assert seen["env"]["PYTHONPATH"].split(os.pathsep) == [
        p for p in sys.path if p and p != os.getcwd()
    ]
    assert seen["creationflags"] & _spawn.CREATE_NO_WINDOW


def test_without_proc_the_descriptors_to_close_are_found_in_dev_fd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """macOS lists them in /dev/fd; with no listing at all, none are named (exec closes
    Python's own, which are not inheritable, anyway)."""
    if not os.path.isdir("/dev/fd"):
        pytest.skip("no /dev/fd here")
    read, write = os.pipe()
    os.set_inheritable(write, True)
    try:
        monkeypatch.setattr(_spawn, "FD_DIRS", (str(tmp_path / "no-proc"), "/dev/fd"))
        assert write in _spawn._inheritable_fds()
        assert read not in _spawn._inheritable_fds()
        monkeypatch.setattr(_spawn, "FD_DIRS", (str(tmp_path / "no-proc"),))
        assert _spawn._inheritable_fds() == []
    finally:
        os.close(read)
        os.close(write)


def test_the_stamp_is_set_by_name_where_utime_takes_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows: os.utime takes no descriptor (os.supports_fd), so the stamp opened without
    following a link is set by its name."""
    targets: list[object] = []
    real_utime = os.utime

    def utime(target: Any, times: tuple[float, float]) -> None:
        targets.append(target)
        real_utime(target, times)

    monkeypatch.setattr(os, "utime", utime)
    monkeypatch.setattr(os, "supports_fd", set())
    stamp = tmp_path / "uploader.stamp"
    _spawn.next_spawn_at(str(stamp), 1_000_000_000)
    assert targets == [str(stamp)]
    assert stamp.stat().st_mtime == 1_000_000_000


# -- a frozen app (PyInstaller) is its own uploader -----------------------------------------
# The real thing is tests/test_frozen_e2e.py, with the example built by PyInstaller; these
# pin each rule where a build cannot reach it (other platforms, older bootloaders, misuse).


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """This process as a frozen app: PyInstaller sets sys.frozen. A run that turns into
    the uploader lowers its priority: here it is noted in the list returned, and not done
    (it would slow the rest of the test session; the e2e test in test_delivery_e2e.py reads
    a real uploader's)."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    lowered: list[str] = []
    monkeypatch.setattr(_spawn, "lower_priority", lambda: lowered.append("lowered"))
    return lowered


@pytest.mark.usefixtures("frozen")
def test_a_frozen_app_runs_itself_with_the_uploaders_name_as_its_argument() -> None:
    assert _spawn.uploader_argv() == [sys.executable, "cli_telemetry._uploader"]


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_a_frozen_apps_uploader_is_a_new_instance_with_the_users_library_path(
    monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    parent = {
        "HOME": "/home/u",
        "_PYI_ARCHIVE_FILE": "/opt/acme",  # 6.10 and later: the same archive means a worker
        "_PYI_APPLICATION_HOME_DIR": "/tmp/_MEIabc",
        "_PYI_PARENT_PROCESS_LEVEL": "1",
        "_MEIPASS2": "/tmp/_MEIabc",  # before 6.10
        "LD_LIBRARY_PATH": "/tmp/_MEIabc:/opt/lib",
        "LD_LIBRARY_PATH_ORIG": "/opt/lib",
    }
    child = _spawn.frozen_environment(parent)
    users_path = {"LD_LIBRARY_PATH": "/opt/lib"} if platform == "linux" else {}
    if platform == "darwin":  # the bootloader does not touch it there: neither do we
        users_path = {k: v for k, v in parent.items() if k.startswith("LD_")}
    assert child == {"HOME": "/home/u", "PYINSTALLER_RESET_ENVIRONMENT": "1", **users_path}
    assert parent["_PYI_ARCHIVE_FILE"] == "/opt/acme"  # the tool's own is left alone

    # The user had no library path: the child gets none, not the bundle's.
    monkeypatch.setattr(sys, "platform", "linux")
    assert "LD_LIBRARY_PATH" not in _spawn.frozen_environment({"LD_LIBRARY_PATH": "/tmp/_MEIabc"})


@pytest.mark.usefixtures("frozen")
def test_a_frozen_app_spawns_with_its_environment_reset_and_no_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_posix_spawn(*args: Any, **kwargs: Any) -> int:
        calls.append(args)
        return 4242

    monkeypatch.setattr(os, "posix_spawn", fake_posix_spawn)
    monkeypatch.setenv("_PYI_ARCHIVE_FILE", "/opt/acme")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert _spawn.spawn(_spawn.uploader_argv(), '{"tool":"acme"}') == 4242
    [(path, argv, env)] = calls
    assert (path, argv) == (sys.executable, [sys.executable, "cli_telemetry._uploader"])
    assert env[_spawn.OPTIONS_VARIABLE] == '{"tool":"acme"}'
    assert env["PYINSTALLER_RESET_ENVIRONMENT"] == "1"
    assert "_PYI_ARCHIVE_FILE" not in env
    assert "PYTHONPATH" not in env  # the tool's path is inside its bundle


def uploader_marks(monkeypatch: pytest.MonkeyPatch, argv: list[str], options: str | None) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    if options is None:
        monkeypatch.delenv(_spawn.OPTIONS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(_spawn.OPTIONS_VARIABLE, options)


def test_a_frozen_app_started_as_its_uploader_runs_it_and_exits_with_its_code(
    monkeypatch: pytest.MonkeyPatch, frozen: list[str]
) -> None:
    from cli_telemetry import _uploader

    monkeypatch.setattr(_uploader, "main", lambda: 3)
    uploader_marks(monkeypatch, ["/opt/acme", "cli_telemetry._uploader"], "{}")
    with pytest.raises(SystemExit) as exit_:
        _spawn.run_if_frozen_uploader()
    assert exit_.value.code == 3
    assert frozen == ["lowered"]  # first: before the uploader's imports

    def broken() -> int:
        raise ValueError("the options are not JSON")

    monkeypatch.setattr(_uploader, "main", broken)
    with pytest.raises(SystemExit) as exit_:
        _spawn.run_if_frozen_uploader()
    assert exit_.value.code == 1  # it still never runs the tool's command


@pytest.mark.parametrize(
    ("is_frozen", "argv", "options"),
    [
        (False, ["acme", "cli_telemetry._uploader"], "{}"),  # not frozen: no meaning
        (True, ["/opt/acme", "cli_telemetry._uploader"], None),  # a user typed the word
        (True, ["/opt/acme", "deploy"], "{}"),  # a variable left exported in a shell
        (True, ["/opt/acme", "cli_telemetry._uploader", "x"], "{}"),
    ],
)
def test_without_both_marks_in_a_frozen_app_the_command_runs(
    monkeypatch: pytest.MonkeyPatch, is_frozen: bool, argv: list[str], options: str | None
) -> None:
    from cli_telemetry import _uploader

    monkeypatch.setattr(sys, "frozen", is_frozen, raising=False)
    monkeypatch.setattr(_uploader, "main", lambda: pytest.fail("the uploader ran"))
    uploader_marks(monkeypatch, argv, options)
    _spawn.run_if_frozen_uploader()  # returns: the command runs


@pytest.mark.usefixtures("as_a_user")
def test_an_instrumented_command_in_a_frozen_uploader_never_runs(
    monkeypatch: pytest.MonkeyPatch, frozen: list[str], tmp_path: Path
) -> None:
    """The hook is the instrumented command's ``main``: the author adds nothing. The
    uploader's run neither runs the command nor records it; the user's next run does both."""
    import click
    from click.testing import CliRunner

    from cli_telemetry import Telemetry, _uploader

    monkeypatch.setattr(_uploader, "main", lambda: 0)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "DO_NOT_TRACK"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".config" / "acme").mkdir(parents=True)
    (tmp_path / ".config" / "acme" / "telemetry.conf").write_text(
        "enabled = true\nconsent_policy = 1\n"
    )
    telemetry = Telemetry("acme", version="1")  # no endpoint: the events stay in the spool
    ran: list[str] = []

    @telemetry.instrument
    @click.command()
    def cli() -> None:
        ran.append("cli")

    uploader_marks(monkeypatch, ["/opt/acme", "cli_telemetry._uploader"], "{}")
    result = CliRunner().invoke(cli, [])
    assert (result.exit_code, result.output, ran, telemetry.status().pending) == (0, "", [], 0)
    uploader_marks(monkeypatch, ["/opt/acme"], None)
    assert CliRunner().invoke(cli, []).exit_code == 0
    assert (ran, telemetry.status().pending) == (["cli"], 1)


def _appended(tmp_path: Path, count: int, **config: Any) -> tuple[Any, Any, str]:
    from cli_telemetry import _append, _paths
    from cli_telemetry._settings import ToolConfig

    spool = str(tmp_path / "spool")
    for _ in range(count):
        _append.append(spool, [b"{}"])
    paths = _paths.resolve("acme", {"HOME": str(tmp_path)})
    return ToolConfig("acme", "1", **config), paths, spool


def test_upload_due_when_enough_events_wait_or_the_oldest_waited_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_telemetry._append import append, waiting
    from cli_telemetry.recording import upload_due

    monkeypatch.delenv(UPLOAD_AT_ONCE_VARIABLE, raising=False)
    config, paths, spool = _appended(tmp_path, 2, upload_after_events=3)
    now = time.time()
    assert not upload_due(config, paths, waiting(spool), 1000, 2_000_000, now)
    append(spool, [b"{}"])
    assert upload_due(config, paths, waiting(spool), 1000, 2_000_000, now)  # three wait
    config = config.replace(upload_after_events=10, upload_after_seconds=60.0)
    assert not upload_due(config, paths, waiting(spool), 1000, 2_000_000, now + 59)
    assert upload_due(config, paths, waiting(spool), 1000, 2_000_000, now + 61)  # a minute old
    monkeypatch.setenv(UPLOAD_AT_ONCE_VARIABLE, "1")
    assert upload_due(config, paths, waiting(spool), 1000, 2_000_000, now)


def test_a_clock_that_went_back_or_a_small_byte_bound_makes_it_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An oldest event dated ahead (the clock went back) would otherwise wait for 20 runs;
    large events under a small ``max_bytes`` would be trimmed before 20 wait."""
    from cli_telemetry._append import append, waiting
    from cli_telemetry.recording import upload_due

    monkeypatch.delenv(UPLOAD_AT_ONCE_VARIABLE, raising=False)
    config, paths, spool = _appended(tmp_path, 0, upload_after_events=20)
    append(spool, [b"x" * 700, b"x" * 700])
    now = time.time()
    assert not upload_due(config, paths, waiting(spool), 1000, 10_000, now)
    assert upload_due(config, paths, waiting(spool), 1000, 10_000, now - 120)  # clock back
    assert upload_due(config, paths, waiting(spool), 1000, 2_800, now)  # half the bytes


def test_the_policy_alone_never_fills_the_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_telemetry._append import waiting
    from cli_telemetry.recording import upload_due

    monkeypatch.delenv(UPLOAD_AT_ONCE_VARIABLE, raising=False)
    config, paths, spool = _appended(tmp_path, 5, upload_after_events=20)
    assert upload_due(config, paths, waiting(spool), 5, 2_000_000, time.time())  # max_events=5


def test_a_foreign_file_in_the_spool_does_not_stand_for_the_oldest_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_telemetry._append import append, oldest_ns, waiting
    from cli_telemetry.recording import upload_due

    monkeypatch.delenv(UPLOAD_AT_ONCE_VARIABLE, raising=False)
    config, paths, spool = _appended(tmp_path, 0)
    new = tmp_path / "spool" / "new"
    new.mkdir(parents=True)
    (new / "00000000000000000001-foreign.json").write_text("{}")
    [name] = append(spool, [b"{}"])
    names = waiting(spool)
    assert names is not None and len(names) == 2
    assert oldest_ns(names) == int(name[:20])
    assert not upload_due(config, paths, names, 1000, 2_000_000, time.time())


def test_a_spool_that_could_not_be_listed_is_due(tmp_path: Path) -> None:
    from cli_telemetry._append import waiting
    from cli_telemetry.recording import upload_due

    config, paths, spool = _appended(tmp_path, 0)
    assert waiting(spool) is None
    assert upload_due(config, paths, None, 1000, 2_000_000, time.time())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"upload_after_events": 0}, "upload_after_events must be a whole number"),
        ({"upload_after_events": True}, "upload_after_events must be a whole number"),
        ({"upload_after_seconds": -1}, "upload_after_seconds must be 0 or more"),
        ({"upload_after_seconds": float("nan")}, "upload_after_seconds must be 0 or more"),
        ({"upload_after_seconds": "60"}, "upload_after_seconds must be 0 or more"),
    ],
)
def test_an_upload_policy_that_makes_no_sense_is_the_authors_error(
    options: dict[str, Any], message: str
) -> None:
    from cli_telemetry import Telemetry
    from cli_telemetry.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        Telemetry("acme", version="1", **options)
    policy = Telemetry("acme", version="1", upload_after_events=5, upload_after_seconds=0)
    assert (policy.config.upload_after_events, policy.config.upload_after_seconds) == (5, 0.0)


def test_lowering_the_priority_where_it_is_refused_or_missing_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def refused(increment: int) -> int:
        calls.append(increment)
        if increment:
            raise PermissionError("a sandbox that refuses it")
        return 0

    monkeypatch.setattr(os, "nice", refused)
    _spawn.lower_priority()  # no exception reaches the uploader
    assert calls == [0, _spawn.UPLOADER_NICENESS]
    monkeypatch.delattr(os, "nice")  # Windows: the priority class is set at creation
    _spawn.lower_priority()
