"""Where cli-telemetry keeps its files: the only module that knows.

platformdirs is the authority on per-user directories, but importing it costs ~7-20 ms, more
than the whole budget of a command's overhead. On Linux and the BSDs the answer is fixed by
the XDG Base Directory specification, and on macOS (with no XDG variable set) it is
``~/Library/Application Support/<tool>``, so those cases are computed here with no import;
everything else (Windows, a relative or missing HOME, XDG variables on macOS) asks
platformdirs. ``tests/test_paths.py`` checks the shortcut against platformdirs' own classes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Final

from ._record import Record


class Paths(Record):
    """The files of one tool's telemetry.

    ``state_dir`` (``<user state dir>/<tool>/telemetry``) holds everything that
    ``telemetry disable`` deletes: the ids, the spool and its counters.
    """

    __slots__ = ("config_file", "state_dir")

    def __init__(self, config_file: str, state_dir: str) -> None:
        self.config_file: Final = config_file
        self.state_dir: Final = state_dir

    @property
    def ids_file(self) -> str:
        return os.path.join(self.state_dir, "ids")

    @property
    def spool_dir(self) -> str:
        return os.path.join(self.state_dir, "spool")

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


def resolve(tool: str, environ: Mapping[str, str] | None = None) -> Paths:
    """Return the paths for ``tool``, importing platformdirs only where it must."""
    env = os.environ if environ is None else environ
    dirs = _fast_dirs(tool, env, sys.platform) or _platformdirs(tool)
    config_dir, state_dir = dirs
    return Paths(
        config_file=os.path.join(config_dir, "telemetry.conf"),
        state_dir=os.path.join(state_dir, "telemetry"),
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
    file and no temp file. The directory must exist.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
