"""Starting the detached uploader: the per-OS details live here, and only here.

The command's process must not wait for the uploader, hold a pipe open for it, or leave a
console window, so the child gets /dev/null for stdin, stdout and stderr, its own session
(POSIX) or a detached, windowless process group (Windows), and no other inherited file.

On POSIX this uses ``os.posix_spawn`` rather than ``subprocess``: importing subprocess costs
3-5 ms, more than everything else telemetry adds to a command, while posix_spawn is ~0.2 ms.
A spawned uploader that outlives the command is re-parented to init, which reaps it; a
long-lived host (a test runner calling the tool in-process) reaps its own via `reap`.

A frozen app (PyInstaller: ``sys.frozen``) has no interpreter to run ``-m`` with: it starts
its own executable as a new instance (`frozen_environment`), which the instrumented command
turns into an uploader before the tool's command runs (`run_if_frozen_uploader`), as
``multiprocessing.freeze_support`` does for its workers.

Spawns are throttled through the mtime of ``uploader.stamp``: a command spawns only if the
stamp is older than `SPAWN_INTERVAL`, and touches it first. A running uploader keeps newer
events flowing itself, and one that failed sets the stamp into the future (its backoff), so
a burst of commands starts a handful of uploaders at most, and the extra ones exit at once
when they find the uploader lock taken.

Before any of that, the command's upload policy (`cli_telemetry.recording.upload_due`)
decides whether the events waiting are worth an uploader yet: one run costs the user's
machine 100-250 ms of CPU however few events it sends, so a command starts one only once
``upload_after_events`` wait or the oldest has waited ``upload_after_seconds``, or a
deletion request waits.

The uploader runs at the lowest CPU priority (`lower_priority`): it is background work,
and the user's next command, started while it sends, must not share a core with it on
equal terms.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import TYPE_CHECKING, Any, Final, TypedDict

from ._settings import SPAWN_INTERVAL as SPAWN_INTERVAL
from ._settings import UPLOADER_OPTIONS_VARIABLE

if TYPE_CHECKING:
    from ._paths import Paths
    from ._settings import ToolConfig

# Windows process creation flags (subprocess only defines them on Windows).
CREATE_NEW_PROCESS_GROUP: Final = 0x00000200
BELOW_NORMAL_PRIORITY_CLASS: Final = 0x00004000
DETACHED_PROCESS: Final = 0x00000008
CREATE_NO_WINDOW: Final = 0x08000000

PROC: Final = "/proc"
"""Linux's process table, where a pid's command line is read; macOS has none, Windows
neither (tests point this elsewhere to take those paths)."""
FD_DIRS: Final = ("/proc/self/fd", "/dev/fd")
"""Where this process's open descriptors are listed: Linux, then macOS and the BSDs."""
PID_FILE_LIFETIME: Final = 60.0
"""An uploader deletes its pid file when its run ends, within its deadline and hard stop
(35 s, `cli_telemetry._uploader`); an older pid file was left by one that was killed."""

OPTIONS_VARIABLE: Final = UPLOADER_OPTIONS_VARIABLE
"""Where the uploader's options travel (`cli_telemetry._settings.UPLOADER_OPTIONS_VARIABLE`)."""
UPLOADER_MODULE: Final = "cli_telemetry._uploader"
"""In every uploader's command line (``-m`` names it; a frozen app gets it as its only
argument), so that `running_uploader` recognises an uploader by its /proc entry."""


class UploaderOptions(TypedDict):
    """What a command tells its uploader: enough to act without importing the tool."""

    tool: str
    env_prefix: str
    consent: str
    policy_version: int
    sinks: list[dict[str, Any]]
    """`cli_telemetry.providers.Provider.to_json` of each sink, the collector first."""
    max_events: int
    max_bytes: int


def start_uploader(
    config: ToolConfig,
    sinks: list[dict[str, Any]],
    paths: Paths,
    uploaders: list[int],
) -> None:
    """Start a detached uploader for ``sinks``, unless one runs, started recently or is
    backing off. ``uploaders`` holds the pids this process started (a long-lived host
    reaps them here)."""
    from ._values import encode
    from .recording import spool_bounds

    uploaders[:] = reap(uploaders)
    if running_uploader(paths.uploader_pid) is not None:
        return  # it picks up the new events itself
    if not should_spawn(paths.uploader_stamp, time.time()):
        return
    max_events, max_bytes = spool_bounds(config)
    options: UploaderOptions = {
        "tool": config.tool,
        "env_prefix": config.env_prefix,
        "consent": config.consent,
        "policy_version": config.policy_version,
        "sinks": sinks,
        "max_events": max_events,
        "max_bytes": max_bytes,
    }
    pid = spawn(uploader_argv(), encode(options))
    if pid is not None:
        uploaders.append(pid)


def should_spawn(stamp: str, now: float) -> bool:
    """True, and the stamp touched, if no uploader started (or is backing off) recently.
    Only a regular file is a stamp: whatever else is at its name is replaced."""
    from ._paths import modified_after

    if modified_after(stamp, now - SPAWN_INTERVAL):
        return False
    next_spawn_at(stamp, now)
    return True


def running_uploader(pid_file: str) -> int | None:
    """The pid of the uploader running now, if the pid file names a live one, else None.

    Cheap (a small read, and on Linux /proc), so a command checks it before spawning, and an
    uploader before it imports filelock: in a burst, the running uploader takes the new
    events, and nobody starts a process only to find the lock taken. The lock stays the
    authority. A pid reused by another program is told apart by its command line on Linux;
    where there is no /proc (macOS, the BSDs) only a pid file younger than an uploader's
    longest run is believed, so that a pid file a killed uploader left cannot name, for
    good, whatever program of the user's gets that pid (after a reboot, say): no uploader
    would start again while it runs, and ``telemetry disable`` would signal it. Windows
    has no cheap check at all: the lock decides.
    """
    from ._paths import read_private

    try:
        pid = int(read_private(pid_file, 64).strip() or b"0")
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as f:
            return pid if UPLOADER_MODULE.encode() in f.read(65536) else None
    except FileNotFoundError:
        if os.path.isdir(f"{PROC}/self"):
            return None  # Linux, and no such process
    except OSError:
        return None
    if os.name == "nt":
        return None  # no cheap check: let the lock decide
    try:
        if time.time() - os.lstat(pid_file).st_mtime > PID_FILE_LIFETIME:
            return None
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def next_spawn_at(stamp: str, when: float) -> None:
    """Let commands spawn again from ``when`` (+ SPAWN_INTERVAL): the uploader's way to ask
    for a backoff (a future time) or to free the throttle at once (0).

    The time is set through the descriptor, never by name: the stamp is opened without
    following a link and without waiting on a FIFO, and whatever is at its name that is not
    a regular file (a link someone planted, a FIFO) is replaced by one: through a link,
    ``O_CREAT`` and ``utime`` would create or touch any file the user, or root, can write.
    """
    from ._paths import TOUCH_FLAGS

    try:
        fd = os.open(stamp, TOUCH_FLAGS, 0o600)
    except OSError:
        if not os.path.lexists(stamp):
            raise
        fd = -1
    if fd >= 0 and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        fd = -1
    if fd < 0:
        os.unlink(stamp)  # not a stamp: the state dir is ours, and so is the name
        fd = os.open(stamp, TOUCH_FLAGS | os.O_EXCL, 0o600)
    try:
        os.utime(fd if os.utime in os.supports_fd else stamp, (when, when))
    finally:
        os.close(fd)


def uploader_argv() -> list[str]:
    """The tool's own interpreter, with ``-P``: ``-m`` would otherwise put the current
    directory first on sys.path, and a ``filelock.py`` in an untrusted checkout would run.

    A frozen app's ``sys.executable`` is the app itself (for a onefile build, the file the
    user ran, not the unpacked copy), and it has no ``-m``: it is run with the module's
    name as its argument, which only `run_if_frozen_uploader` gives a meaning to."""
    if getattr(sys, "frozen", False):
        return [sys.executable, UPLOADER_MODULE]
    return [sys.executable, "-P", "-m", UPLOADER_MODULE]


def spawn(argv: list[str], options_json: str) -> int | None:
    """Start ``argv`` detached; returns its pid on POSIX (for `reap`), None on Windows.

    The child gets the tool's sys.path as PYTHONPATH, so that it finds cli_telemetry where
    the tool did even when that path was built at run time (zipapp, pex, shiv). A frozen
    app's child gets `frozen_environment` instead: a frozen interpreter ignores PYTHONPATH,
    and the tool's path lies inside the tool's own bundle.
    """
    env = {**os.environ, OPTIONS_VARIABLE: options_json}
    if getattr(sys, "frozen", False):
        env = frozen_environment(env)
    else:
        cwd = os.getcwd()
        # Not the current directory, which `python -m tool` put on the tool's path: the
        # uploader must not import a stray module from an untrusted checkout.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and p != cwd)
    if os.name == "nt":
        _spawn_windows(argv, env)
        return None
    return _spawn_posix(argv, env)


def frozen_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a frozen app's uploader: a new instance of the app, as the user would
    start it, not a worker of the running one.

    PyInstaller's bootloader (6.10 and later) takes a child started from ``sys.executable``
    for a worker that shares its parent's unpacked bundle, and a onefile parent deletes
    that bundle when it exits: the uploader, which outlives the command, would lose its
    files. ``PYINSTALLER_RESET_ENVIRONMENT=1`` asks for a new instance, which unpacks a
    bundle of its own and deletes it when it ends. The bootloader's own variables are not
    passed on either (``_PYI_*``, and ``_MEIPASS2`` before 6.10): without them every
    version starts a new instance.

    On Linux and the other non-macOS POSIX systems the bootloader put the bundle first on
    ``LD_LIBRARY_PATH`` and kept the user's value in ``LD_LIBRARY_PATH_ORIG``; the child
    gets the user's value back, or none. Its own bootloader puts its own bundle first, and
    the parent's directory, gone once the command ends (and free to be made again by
    anyone in a shared /tmp), is never on the path the uploader loads libraries from.
    """
    env = {k: v for k, v in env.items() if not k.startswith("_PYI_") and k != "_MEIPASS2"}
    env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    if os.name == "posix" and sys.platform != "darwin":
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
    return env


def run_if_frozen_uploader() -> None:
    """In a frozen app that `spawn` started as its uploader, run the uploader and exit:
    the tool's command never runs. Returns in every other run.

    The instrumented command's ``main`` calls it first, so a tool needs no code of its own
    (the entry point of a frozen click tool is the command), and only when the app is
    frozen and the options variable is set: every other run pays two dict look-ups, not
    the import of this module. Both marks are needed, the argument that no user types and
    the options in the environment: a variable left exported in a shell does not turn a
    user's command into an uploader, and outside a frozen app neither mark means anything.
    The uploader's output is /dev/null and its exit code nobody's: whatever fails in it
    ends the process, and never runs the tool's command instead.
    """
    if not getattr(sys, "frozen", False):
        return
    if sys.argv[1:] != [UPLOADER_MODULE] or OPTIONS_VARIABLE not in os.environ:
        return
    code = 1
    try:
        lower_priority()
        from ._uploader import main

        code = main()
    except Exception:
        pass  # options that are not JSON, a bundle without the sinks: nothing to say
    raise SystemExit(code)


def _spawn_posix(argv: list[str], env: dict[str, str]) -> int:
    # The C module's plain ints: `signal` would build its enums (~0.6 ms) for five numbers.
    import _signal as signal  # type: ignore[import-not-found]  # (it has no stub)

    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
    # A shell's `trap '' TERM` would otherwise be inherited, and `telemetry disable` could
    # not stop the uploader.
    defaults = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT}
    return os.posix_spawn(
        argv[0], argv, env, file_actions=actions, setsid=True, setsigdef=defaults, setsigmask=()
    )


def _inheritable_fds() -> list[int]:
    """Open descriptors above 2 that an exec would pass on (Python's own are not
    inheritable; one the tool inherited from its parent, say a pipe, may be)."""
    for fd_dir in FD_DIRS:
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        fds = []
        for name in names:
            fd = int(name)
            if fd > 2:
                try:
                    if os.get_inheritable(fd):
                        fds.append(fd)
                except OSError:  # the listing's own descriptor, closed by now
                    pass
        return fds
    return []


def _spawn_windows(argv: list[str], env: dict[str, str]) -> None:
    import subprocess

    subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        creationflags=(
            CREATE_NO_WINDOW
            | DETACHED_PROCESS
            | CREATE_NEW_PROCESS_GROUP
            | BELOW_NORMAL_PRIORITY_CLASS  # see `lower_priority`
        ),
    )


UPLOADER_NICENESS: Final = 19


def lower_priority() -> None:
    """Give the uploader the lowest CPU priority (niceness 19), first thing in its process.

    An uploader run costs 100-250 ms of CPU (an interpreter, urllib3, a connection), most
    of it while the user may already run their next command: at niceness 19 it gets what
    the commands leave (Linux's scheduler weighs it at about 1.5% of a normal process's
    share of a busy core), and Linux's I/O schedulers that have priorities (BFQ) derive
    its I/O priority from it. It still runs, so its deadline holds on a busy machine.
    posix_spawn has no attribute for it, so the uploader sets its own; on Windows
    `_spawn_windows` starts it below normal priority instead. A failure (a sandbox that
    refuses it) changes nothing else.
    """
    if not hasattr(os, "nice"):
        return
    try:
        os.nice(UPLOADER_NICENESS - os.nice(0))
    except OSError:
        pass


def reap(pids: list[int]) -> list[int]:
    """Collect the exit status of uploaders that finished; returns those still running."""
    running = []
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if done == 0:
            running.append(pid)
    return running
