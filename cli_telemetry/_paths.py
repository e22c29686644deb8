"""Where cli-telemetry keeps its files, and which of them it trusts: the only module that knows.

platformdirs is the authority on per-user directories, but importing it costs ~7-20 ms, more
than the whole budget of a command's overhead. On Linux and the BSDs the answer is fixed by
the XDG Base Directory specification, and on macOS (with no XDG variable set) it is
``~/Library/Application Support/<tool>``, so those cases are computed here with no import;
everything else (Windows, a relative or missing HOME, XDG variables on macOS) asks
platformdirs. ``tests/test_paths.py`` checks the shortcut against platformdirs' own classes.

Files it did not make are not trusted, as pip does not trust a cache directory it does not
own and OpenSSH's StrictModes refuses keys that others could change:

- `untrusted`: the directories a run uses must be the user's own and writable by nobody else,
  or telemetry is off for that run; one is only created inside a directory that is; and root
  running in another user's home (``sudo`` without ``-H``) uses nothing there.
- `read_private`: every file is read without following a link, only if it is a regular file
  of the user's that nobody else can write, and only up to a size.
- `write_private`: every file is written under a random temporary name, created exclusively
  (a link planted at the name is refused), then renamed into place.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from typing import Final

from ._values import Record

_OURS: Final = (
    getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)
READ_FLAGS: Final = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _OURS
"""Never through a link, and without blocking: opening a FIFO to read would wait for a writer
(for ever); a regular file ignores O_NONBLOCK."""
CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OURS
"""A new file: never one that exists, nor a link planted at its name (O_EXCL refuses a link
even when it dangles)."""
TOUCH_FLAGS: Final = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | _OURS
"""A file that may exist already (the spawn stamp), opened to set its time, never through a
link, and without waiting for a reader if it is a FIFO."""

TEST_DIR_VARIABLE: Final = "CLI_TELEMETRY_TEST_DIR"
"""An absolute directory that stands in for every tool's config and state directories, in a
test: each tool's files are then in ``<dir>/<tool>/`` (`Paths.testing`). The pytest plugin's
``telemetry_events`` fixture sets it, in the test's process and in the environment it gives
to subprocesses; a relative value is ignored, as XDG variables are.

It is a variable, and not a patch of this module, so that a tool run as a subprocess is
isolated the same way as one run in process, and on every OS (Windows asks the system, not
the environment, for its folders); and it is read here, where every path comes from, so that
nothing else (HOME, XDG variables, the tool's own files) has to change for a test."""


class Paths(Record):
    """The files of one tool's telemetry.

    ``state_dir`` (``<user state dir>/<tool>/telemetry``) holds everything that
    ``telemetry disable`` deletes: the ids, the fingerprint of the last traits identified,
    the spool and its counters; and, until it reaches every sink, the deletion request
    ``disable`` leaves (`deletion_file`).

    ``testing`` says the files are a test's (`TEST_DIR_VARIABLE`): the run then records as if
    its user had consented (`cli_telemetry._settings.decide`), and nothing is ever sent from
    there (no uploader is started, and one that was would not send).
    """

    __slots__ = ("config_file", "state_dir", "testing")

    def __init__(self, config_file: str, state_dir: str, testing: bool = False) -> None:
        self.config_file: Final = config_file
        self.state_dir: Final = state_dir
        self.testing: Final = testing

    @property
    def ids_file(self) -> str:
        return os.path.join(self.state_dir, "ids")

    @property
    def spool_dir(self) -> str:
        return os.path.join(self.state_dir, "spool")

    @property
    def identified_file(self) -> str:
        """A fingerprint of the traits last identified (`cli_telemetry._identified`)."""
        return os.path.join(self.state_dir, "identified")

    @property
    def uploader_lock(self) -> str:
        """Held by the one running uploader for its whole life."""
        return os.path.join(self.state_dir, "uploader.lock")

    @property
    def uploader_pid(self) -> str:
        """The running uploader's pid, for ``telemetry disable`` to stop it."""
        return os.path.join(self.state_dir, "uploader.pid")

    @property
    def uploader_stamp(self) -> str:
        """Its mtime throttles spawning: a recent start, or a backoff's end (see _spawn)."""
        return os.path.join(self.state_dir, "uploader.stamp")

    @property
    def upload_state(self) -> str:
        """The last upload, the last error's kind, consecutive failures (JSON)."""
        return os.path.join(self.state_dir, "upload.json")

    @property
    def deletion_file(self) -> str:
        """The deletion requests ``disable`` left, until every sink has them (`deletion`)."""
        return os.path.join(self.state_dir, "deletion.json")


def resolve(tool: str, environ: Mapping[str, str] | None = None) -> Paths:
    """Return the paths for ``tool``, importing platformdirs only where it must (and in a
    test, `TEST_DIR_VARIABLE`'s)."""
    env = os.environ if environ is None else environ
    test_dir = env.get(TEST_DIR_VARIABLE)
    if test_dir and os.path.isabs(test_dir):
        tool_dir = os.path.join(test_dir, tool)
        return Paths(
            config_file=os.path.join(tool_dir, "telemetry.conf"),
            state_dir=os.path.join(tool_dir, "telemetry"),
            testing=True,
        )
    dirs = _fast_dirs(tool, env, sys.platform) or _platformdirs(tool)
    config_dir, state_dir = dirs
    return Paths(
        config_file=os.path.join(config_dir, "telemetry.conf"),
        state_dir=os.path.join(state_dir, "telemetry"),
    )


def by_system(tool: str) -> tuple[tuple[str, str, str], ...]:
    """Where ``tool``'s files are by default on each system, as a person looks for them:
    (system, the config file, the state directory), for the tool's privacy page.

    Written out, not computed: this machine is one system, and the page is for all three.
    ``tests/test_paths.py`` holds each against `resolve` on that system (with no XDG
    variable set, as most people have none; ``telemetry status`` prints the real paths).
    """
    windows = f"AppData\\Local\\{tool}"
    mac = f"~/Library/Application Support/{tool}"
    return (
        ("Linux", f"~/.config/{tool}/telemetry.conf", f"~/.local/state/{tool}/telemetry/"),
        ("macOS", f"{mac}/telemetry.conf", f"{mac}/telemetry/"),
        ("Windows", f"{windows}\\telemetry.conf", f"{windows}\\telemetry\\"),
    )


def _fast_dirs(tool: str, env: Mapping[str, str], platform: str) -> tuple[str, str] | None:
    """(config dir, state dir) without platformdirs, or None where it should decide."""
    home = env.get("HOME", "")
    if not os.path.isabs(home) or platform == "win32":
        return None
    if platform == "darwin":
        if any(env.get(var) for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME")):
            return None
        app_support = os.path.join(home, "Library", "Application Support", tool)
        return app_support, app_support
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        config = _xdg(env, "XDG_CONFIG_HOME", home, ".config")
        state = _xdg(env, "XDG_STATE_HOME", home, ".local/state")
        return os.path.join(config, tool), os.path.join(state, tool)
    return None


def _xdg(env: Mapping[str, str], var: str, home: str, default: str) -> str:
    # The spec: a relative value is invalid and must be ignored.
    value = env.get(var, "")
    return value if os.path.isabs(value) else os.path.join(home, default)


def _platformdirs(tool: str) -> tuple[str, str]:
    import platformdirs

    dirs = platformdirs.PlatformDirs(tool, appauthor=False)
    return dirs.user_config_dir, dirs.user_state_dir


def make_private_dir(path: str) -> None:
    """Create ``path`` and any missing parents with mode 0700, as the XDG spec asks.

    ``os.makedirs`` would apply the mode to the leaf only. A missing home directory is not
    ours to create: then nothing is.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path or parent == os.path.normpath(os.path.expanduser("~")):
            raise
        make_private_dir(parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass


def unwritable(path: str) -> str | None:
    """Why files could not be created under ``path``, or None if they probably can.

    Debug mode writes nothing, so it uses this look (no writes) to show what would fail.
    """
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return f"{path} has no existing parent"
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def write_private(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temp file, then a rename), mode 0600.

    A reader sees the old content or the new, never a mix; a failed write leaves the old
    file and no temp file. The directory must exist. The temporary name is random and
    created exclusively: a name anyone could predict (the pid) would let a link planted
    there redirect the write to any file the user, or root, can write.
    """
    tmp = f"{path}.{os.urandom(8).hex()}.tmp"
    fd = os.open(tmp, CREATE_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


STALE_TEMPORARY_SECONDS: Final = 10.0
"""A temporary file is written and renamed in microseconds: one this old belongs to a writer
that was killed in between."""


def remove_stale_temporaries(directory: str, now: float) -> int:
    """Delete the temporary files that writers killed between writing and renaming left in
    ``directory`` (``<name>.<random>.tmp``, older than `STALE_TEMPORARY_SECONDS`); returns
    how many. Nothing ever reads them; this keeps them from piling up."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not name.endswith(".tmp"):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < now - STALE_TEMPORARY_SECONDS:
                os.unlink(path)
                removed += 1
        except OSError:
            pass
    return removed


class UnsafeFile(OSError):
    """Where a file of ours should be, something else is: a link, a FIFO or a device, a file
    too large, or one another user owns or can write. An OSError, so that every reader that
    takes an unreadable file for a missing or corrupt one needs nothing new."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} {why}")
        self.filename = path
        self.strerror = why

    def __str__(self) -> str:
        return f"{self.filename} {self.strerror}"


def modified_after(path: str, when: float) -> bool:
    """Whether ``path`` is a regular file (not followed if a link) modified after ``when``:
    one lstat, and no exception."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_mtime > when


def read_private(path: str, limit: int) -> bytes:
    """The bytes of ``path``, a file this library wrote, if it still is one.

    Never through a link (O_NOFOLLOW); never a FIFO or a device (opened without blocking,
    then refused: a FIFO would hang the tool, /dev/zero exhaust its memory); never more than
    ``limit`` bytes; and only a file of this user's that nobody else can write. Raises
    FileNotFoundError when there is none, and `UnsafeFile` when what is there is not such a
    file. It makes the system calls ``open().read()`` makes (open, fstat, read, close), in
    about half the time.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        if os.path.islink(path):
            raise UnsafeFile(path, "is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(path, "is not a regular file")
        why = _foreign(st)
        if why is not None:
            raise UnsafeFile(path, why)
        data = b""
        while st.st_size <= limit and len(data) <= limit:  # it may grow while it is read
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                return data
            data += chunk
        raise UnsafeFile(path, f"is larger than {limit} bytes")
    finally:
        os.close(fd)


def untrusted(
    paths: Paths,
    *,
    config: bool = True,
    state: bool = True,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Why this run must not use, nor create, its files (``config``: the config dir;
    ``state``: the state dirs and the spool), or None when it may. Telemetry is then off.

    - A home directory (``HOME``) that belongs to another user: root with a user's HOME
      (``sudo`` without ``-H``, ``sudo -E``) would read what that user planted, follow their
      links, and leave root's files in their home. It uses nothing there. A test's paths
      (`Paths.testing`) are not in the home directory, so its owner does not matter then
      (a CI container often runs as a user who does not own HOME).
    - Each directory of ours that exists (the tool's config dir; the tool's state dir,
      ``telemetry`` and the spool) must belong to this user, and nobody else may write to it
      (but the user's private group, see `_private_group`); a link to one counts if this
      user, or root, made the link (dotfile managers link ~/.config/<tool>).
    - A missing one is created (0700, by `make_private_dir`) only where the first existing
      directory above it passes the same test.

    What lies below the spool is in a directory nobody else can change, so it is not
    checked. On a recorded run this is a stat and four lstats, a few microseconds.
    """
    if not hasattr(os, "geteuid"):
        return None  # Windows: profiles are per user, and guarded by ACLs
    env = os.environ if environ is None else environ
    home = env.get("HOME", "")
    if os.path.isabs(home) and not paths.testing:
        try:
            owner = os.stat(home).st_uid
        except FileNotFoundError:
            return f"the home directory {home} does not exist"
        except OSError as exc:
            return f"cannot look at the home directory {home} ({exc.strerror})"
        if owner != os.geteuid():
            return (
                f"the home directory {home} belongs to uid {owner}, and this runs as uid"
                f" {os.geteuid()} (sudo without -H?)"
            )
    if config:
        why = _check_dirs(os.path.dirname(paths.config_file), ())
        if why is not None:
            return why
    if state:
        return _check_dirs(os.path.dirname(paths.state_dir), (paths.state_dir, paths.spool_dir))
    return None


def _check_dirs(top: str, below: tuple[str, ...]) -> str | None:
    """``top`` and each directory below it, in order, as far as they exist."""
    for path in (top, *below):
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            # To be created in the directory above: checked already, unless this is the top.
            return _check_ancestor(os.path.dirname(top)) if path == top else None
        except OSError as exc:
            return f"cannot look at {path} ({exc.strerror})"
        why = _check_dir(path, st)
        if why is not None:
            return why
    return None


def _check_ancestor(path: str) -> str | None:
    """The first existing directory at or above ``path``, where the missing ones go."""
    while True:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(path)
            if parent == path:
                return f"{path} does not exist"
            path = parent
            continue
        except OSError as exc:
            return f"cannot look at {path} ({exc.strerror})"
        return _check_dir(path, st)


def _check_dir(path: str, st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in (os.geteuid(), 0):
            return f"{path} is a symbolic link that uid {st.st_uid} made"
        try:
            st = os.stat(path)
        except OSError:
            return f"{path} is a broken symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    why = _foreign(st)
    return None if why is None else f"{path} {why}"


def _foreign(st: os.stat_result) -> str | None:
    """Why another user could have made or changed the file or directory ``st`` describes,
    or None (always None where there are no uids)."""
    if not hasattr(os, "geteuid"):
        return None
    euid = os.geteuid()
    if st.st_uid != euid:
        return f"belongs to uid {st.st_uid}, not to uid {euid}"
    if st.st_mode & stat.S_IWOTH:
        return "is writable by other users"
    if st.st_mode & stat.S_IWGRP and not _private_group(st.st_gid):
        return f"is writable by group {st.st_gid}"
    return None


def _private_group(gid: int) -> bool:
    """Whether ``gid`` is this user's private group: named as the user, with no other member.

    Debian, Ubuntu and Fedora give each user such a group and a umask of 002, so a tool's
    own config dir is often group-writable; refusing it would turn telemetry off for them
    for no reason. Another account whose *primary* group it is would go unnoticed (finding
    one means reading every account, too slow for every run): that is an administrator's
    mistake, not something a user can do. Only runs for a group-writable directory.
    """
    if gid != os.getegid():
        return False
    try:
        import grp
        import pwd

        group = grp.getgrgid(gid)
        name = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return False
    return group.gr_name == name and all(member == name for member in group.gr_mem)
