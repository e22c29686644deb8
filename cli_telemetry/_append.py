"""The hot path's half of the spool: one run appends its events, with no lock and no import.

Every recorded run does this and nothing else of `cli_telemetry.spool`, whose claims, trims
and purges belong to the uploader and the ``telemetry`` commands; importing that module
(~45 kB of bytecode) cost a run about as much as the rest of its recording did. The file
names and the bounds are defined here and used by both (see `cli_telemetry.spool` for the
layout, and why one file per event needs no lock).
"""

from __future__ import annotations

import os
import time
from typing import Final

from ._paths import CREATE_FLAGS, make_private_dir
from ._values import MAX_EVENT_BYTES

DEFAULT_MAX_EVENTS: Final = 1000
DEFAULT_MAX_BYTES: Final = 2_000_000


def event_file_name(time_ns: int, random_hex: str, size: int) -> str:
    """``<time_ns:20>-<random:12 hex>-<size:7>.json``.

    The time sorts the names oldest first; the random part keeps concurrent writers apart;
    the size lets the hot path check the byte bound from a directory listing, without a
    stat per file (1,000 stats cost ~3 ms).
    """
    return f"{time_ns:020d}-{random_hex}-{size:07d}.json"


def named_size(name: str) -> int:
    """The size an event file's name gives. Cheap, and tolerant: a foreign name counts as
    empty."""
    size = name[34:41]
    return int(size) if len(name) == 46 and size.isascii() and size.isdigit() else 0


def append(directory: str, events: list[bytes], after_ns: int = 0) -> list[str]:
    """Add encoded events atomically to the spool at ``directory`` (written to ``tmp/``,
    renamed into ``new/``); returns their file names, whose times are strictly increasing
    and later than ``after_ns``, so the events of one invocation keep their order even
    where the clock is coarse (Windows before 3.13: ~15.6 ms)."""
    tmp_dir = os.path.join(directory, "tmp")
    new_dir = os.path.join(directory, "new")
    appended = []
    last_ns = after_ns
    for data in events:
        last_ns = max(time.time_ns(), last_ns + 1)
        name = event_file_name(last_ns, os.urandom(6).hex(), len(data))
        tmp = os.path.join(tmp_dir, name)
        try:
            fd = os.open(tmp, CREATE_FLAGS, 0o600)
        except FileNotFoundError:
            create_dirs(directory)
            fd = os.open(tmp, CREATE_FLAGS, 0o600)
        try:
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, os.path.join(new_dir, name))
            except FileNotFoundError:
                # tmp/ existed but new/ did not (yet): another process is creating them,
                # or one died between the two mkdirs.
                create_dirs(directory)
                os.replace(tmp, os.path.join(new_dir, name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        appended.append(name)
    return appended


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to the descriptor ``fd``: ``os.write`` until all is written (a
    buffered file object would cost every run ~0.01 ms to build, for one write)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def waiting(directory: str) -> list[str] | None:
    """The names in ``new/``, unsorted and unfiltered (this runs on every command), or None
    if it cannot be listed: what `over_bounds` and the upload policy read."""
    try:
        return os.listdir(os.path.join(directory, "new"))
    except OSError:
        return None


def over_bounds(
    directory: str, max_events: int, max_bytes: int, names: list[str] | None = None
) -> bool:
    """Whether the waiting events are more than ``max_events`` or ``max_bytes``: one
    directory listing (or ``names``, `waiting`'s), and the sizes from the names."""
    if names is None:
        names = waiting(directory)
        if names is None:
            return False
    return len(names) > max_events or (
        len(names) * MAX_EVENT_BYTES > max_bytes and sum(map(named_size, names)) > max_bytes
    )


def oldest_ns(names: list[str]) -> int | None:
    """When the oldest event of a listing was appended (``time.time_ns()``), from its name:
    the names sort by time, so this is one ``min``; a foreign name that sorts first costs a
    filtered pass."""
    if not names:
        return None
    first = min(names)
    if not _is_event_name(first):
        events = [name for name in names if _is_event_name(name)]
        if not events:
            return None
        first = min(events)
    return int(first[:20])


def _is_event_name(name: str) -> bool:
    # Enough to trust its time (`cli_telemetry.spool.is_event_file` checks all of it).
    return len(name) == 46 and name[20] == "-" and name[:20].isascii() and name[:20].isdigit()


def create_dirs(directory: str) -> None:
    for name in ("new", "claimed", "tmp"):
        make_private_dir(os.path.join(directory, name))
