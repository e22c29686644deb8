"""What this install last identified with: a fingerprint of the traits of the last identify
recorded, so that `cli_telemetry.Telemetry.identify`, made on every run, records one per
change (`news`).

A module of its own, imported only by a run that has an identify to record: a tool that
never identifies pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._ids import Ids
    from ._paths import Paths
    from ._settings import EnvSettings
    from .events import Scalar

IDENTIFIED_LIMIT: Final = 256
"""The file holds one line of ~30 bytes."""
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_MASK64: Final = 2**64 - 1


def news(
    env: EnvSettings,
    paths: Paths,
    ids: Ids,
    traits: Mapping[str, Scalar],
    earlier: str | None,
    *,
    trusted: bool = True,
) -> str | None:
    """The fingerprint of ``traits`` if this install did not identify with them last: not
    in the last identify recorded (`last_identified`; not read unless the files are
    ``trusted``), nor in one ``earlier`` in this run. None, said in debug mode, if it did.
    """
    fingerprint = traits_fingerprint(ids.install_id, traits)
    last = earlier
    if last is None and trusted:
        last = last_identified(paths.identified_file)
    if fingerprint == last:
        env.report("identify not recorded: these traits were recorded last")
        return None
    return fingerprint


def traits_fingerprint(install_id: str, traits: Mapping[str, Scalar]) -> str:
    """The 64-bit FNV-1a hash of ``install_id`` and ``traits`` (as JSON, sorted), in hex.

    The install id is part of it: a new id (``telemetry disable``, then ``enable``)
    identifies again, as a new installation must. A hash, so that no second copy of the
    traits is kept in clear; not a cryptographic one, which could not hide them anyway
    (they are values declared in the tool's code, which anyone could try one by one), and
    whose module, hashlib, costs ~3 ms to import (OpenSSL): a whole run's budget.
    """
    from ._values import encode

    data = encode([install_id, dict(sorted(traits.items()))]).encode("utf-8")
    return f"{fnv1a_64(data):016x}"


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data`` (tests/test_identified.py checks the reference's
    vectors)."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return value


def last_identified(path: str) -> str | None:
    """The fingerprint `remember` stored, or None: none was, or the file is not ours
    (`cli_telemetry._paths.read_private`), and then the next identify is recorded."""
    from ._paths import read_private
    from ._settings import ConfigError, parse_lines

    try:
        values = parse_lines(read_private(path, IDENTIFIED_LIMIT).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    return values.get("traits")


def remember(path: str, fingerprint: str) -> None:
    """Store ``fingerprint`` (0600, atomically), once its identify is in the spool: the
    directory exists then. ``telemetry disable`` deletes it with the install id."""
    from ._paths import write_private

    write_private(path, f"traits = {fingerprint}\n")
