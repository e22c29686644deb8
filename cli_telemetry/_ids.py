"""The two anonymous ids: a random install id and a salted hash of the machine id.

Both are created on the first recorded event, stored in ``ids`` (0600, ``key = value``
lines like the config file, read on every recorded run without json) and deleted by
``telemetry disable``. The machine id is hashed once and cached, so the hashing imports
(hmac, hashlib: ~3 ms) and, on macOS, the ``ioreg`` call happen on that first run only.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Final

from ._record import Record
from ._settings import ConfigError, parse_lines


class Ids(Record):
    __slots__ = ("install_id", "machine_id")

    def __init__(self, install_id: str, machine_id: str | None) -> None:
        self.install_id: Final = install_id
        self.machine_id: Final = machine_id

    def to_text(self) -> str:
        lines = [f"install_id = {self.install_id}"]
        if self.machine_id:
            lines.append(f"machine_id = {self.machine_id}")
        return "\n".join(lines) + "\n"


def read_ids(path: str) -> Ids | None:
    """The stored ids, or None when there are none (or they are not ours)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = parse_lines(f.read())
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    install_id = values.get("install_id")
    if not install_id:
        return None
    return Ids(install_id, values.get("machine_id") or None)


def load_or_create_ids(path: str, tool: str) -> Ids:
    """Read the ids, creating them once if missing.

    Concurrent first runs must agree on one install id, so the file is published with
    ``os.link`` (fails if it exists) rather than a rename (last writer wins).
    """
    ids = read_ids(path)
    if ids is not None:
        return ids
    from ._paths import make_private_dir

    make_private_dir(os.path.dirname(path))
    fresh = Ids(str(uuid.uuid4()), hashed_machine_id(tool))
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(fresh.to_text())
        try:
            os.link(tmp, path)
        except FileExistsError:
            existing = read_ids(path)
            if existing is not None:
                return existing
            os.replace(tmp, path)  # the existing file was not ours; take its place
        except OSError:  # no hard links on this file system
            os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return fresh


def hashed_machine_id(tool: str) -> str | None:
    """HMAC-SHA256 of the OS machine id, keyed by the tool's name.

    The key makes the value stable per machine for one tool, and different for another
    tool on the same machine, so ids cannot be joined across tools. The raw machine id
    never leaves this function.
    """
    raw = _os_machine_id()
    if not raw:
        return None
    import hashlib
    import hmac

    key = f"cli-telemetry/machine-id/v1/{tool}".encode()
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()


def _os_machine_id() -> str | None:
    if sys.platform == "win32":
        return _windows_machine_guid()
    if sys.platform == "darwin":
        return _macos_platform_uuid()
    # Not /etc/hostid: 32 bits, often derived from the IP address, would be reversible by
    # brute force through the (public) key. A machine id is 128 random bits, in hex.
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path, "rb") as f:
                value = f.read().decode("ascii").strip()  # no codec module import
        except (OSError, UnicodeDecodeError):
            continue
        if len(value) == 32 and all(c in "0123456789abcdef" for c in value.lower()):
            return value  # not "uninitialized", which every unbooted image shares
    return None


def _windows_machine_guid() -> str | None:
    try:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        with winreg.OpenKey(  # type: ignore[attr-defined,unused-ignore]
            winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined,unused-ignore]
            r"SOFTWARE\Microsoft\Cryptography",
            0,
            winreg.KEY_READ | winreg.KEY_WOW64_64KEY,  # type: ignore[attr-defined,unused-ignore]
        ) as key:
            value, _ = winreg.QueryValueEx(key, "MachineGuid")  # type: ignore[attr-defined,unused-ignore]
        return str(value) or None
    except OSError:
        return None


def _macos_platform_uuid() -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
            capture_output=True,
            text=True,
            timeout=2,
            stdin=subprocess.DEVNULL,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if "IOPlatformUUID" in line:
            return line.split("=", 1)[-1].strip().strip('"') or None
    return None
