"""The one anonymous id: a random install id, per tool and user account.

It is created on the first recorded event, stored in ``ids`` (0600, ``key = value`` lines
like the config file, read on every recorded run without json) and deleted by ``telemetry
disable``; enabling again makes a new one, unrelated to the old.

There is deliberately no machine-level id. A hash of the OS machine id keyed by anything
public (the tool's name, say) can be recomputed by anyone who can read ``/etc/machine-id``,
and it survives ``disable``, linking the new install id to the old. Keyed by a random secret
kept beside the install id (and deleted with it), it would say no more than the install id
does: the secret is per user, so the "machine" id would be per user too. Go's telemetry
sends no id at all; this library keeps the one that counting installations needs.

Each record has an id of its own too (`new_event_id`), so that a record sent twice is
counted once: a UUIDv7, whose first bits are the time the record was made.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Final

from ._settings import ConfigError, parse_lines
from ._values import Record

_MS_MAX: Final = (1 << 48) - 1
_VERSION_7: Final = 0x7 << 76
_VARIANT: Final = 0b10 << 62


def new_event_id(when: float | None = None) -> str:
    """A new record's ``event_id``: a UUIDv7 (RFC 9562), 48 bits of Unix time in
    milliseconds (``when``, a ``time.time()``, by default now), the version (7), 74 random
    bits (``os.urandom``) and the variant.

    Time-ordered rather than random (UUID4) for the collector: its unique index on the ids
    then grows at its right edge, where a random id dirtied a page of its own anywhere in
    the index for each event stored. The time it holds is the record's ``timestamp``
    (the caller passes it), to the millisecond, which the record carries anyway: the id
    says nothing more. Ids of one millisecond are not ordered among themselves (no counter:
    a record's process makes a handful), and 74 random bits make two alike as unlikely as
    two UUID4s of that millisecond alike. The install id stays a UUID4: its creation
    time is nobody's business."""
    ms = min(max(int((time.time() if when is None else when) * 1000), 0), _MS_MAX)
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    value = ms << 80 | _VERSION_7 | (rand >> 62 & 0xFFF) << 64 | _VARIANT | rand & ((1 << 62) - 1)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


IDS_LIMIT: Final = 4096
"""The file holds one line of ~50 bytes: anything much larger is not ours."""


class Ids(Record):
    __slots__ = ("install_id",)

    def __init__(self, install_id: str) -> None:
        self.install_id: Final = install_id

    def to_text(self) -> str:
        return f"install_id = {self.install_id}\n"


def read_ids(path: str) -> Ids | None:
    """The stored ids, or None when there are none (or they are not ours: an install id
    that is not a UUID, which the collector would refuse on every event)."""
    return _read(path)[0]


def _read(path: str) -> tuple[Ids | None, bool]:
    """The stored ids, and whether the file holds more than they (an earlier release wrote
    a ``machine_id`` line beside the install id)."""
    from ._paths import read_private
    from ._values import is_uuid

    try:
        values = parse_lines(read_private(path, IDS_LIMIT).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None, False
    install_id = values.get("install_id")
    if not is_uuid(install_id):
        return None, False
    return Ids(str(install_id)), set(values) != {"install_id"}


def load_or_create_ids(path: str) -> Ids:
    """Read the ids, creating them once if missing; a file an earlier release wrote keeps
    its install id and loses the rest (the machine id is no longer collected).

    Concurrent first runs must agree on one install id, so the file is published with
    ``os.link`` (fails if it exists) rather than a rename (last writer wins).
    """
    ids, more = _read(path)
    if ids is not None:
        if more:
            from ._paths import write_private

            write_private(path, ids.to_text())
        return ids
    from ._append import write_all
    from ._paths import CREATE_FLAGS, make_private_dir

    make_private_dir(os.path.dirname(path))
    fresh = Ids(str(uuid.uuid4()))
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, CREATE_FLAGS, 0o600)
    try:
        try:
            write_all(fd, fresh.to_text().encode())
        finally:
            os.close(fd)
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
