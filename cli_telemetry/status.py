"""`Status`: what ``<tool> telemetry status`` reports, also useful to authors in tests."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from ._record import Record

if TYPE_CHECKING:
    from ._settings import Source, ToolConfig


class Status(Record):
    """Whether telemetry is on and why, the ids, and the spool.

    ``last_upload`` is when events last arrived (UTC, ISO 8601), ``last_error`` the kind of
    the last delivery failure (``timeout``, ``http_503``, ``partial_rejected`` when a
    destination took a batch but refused some of its events, ...), ``dropped`` the events
    the spool's bounds pushed out, ``rejected`` those a destination refused for good: a
    whole batch or single events, each event counted once however many destinations
    refused it (`cli_telemetry.spool.Spool.settle`). ``deletions_waiting`` counts the
    deletion requests ``disable`` left that have not reached every destination yet,
    ``deletions_waiting_for`` names those destinations (`cli_telemetry.deletion`).
    """

    __slots__ = (
        "config_file",
        "deletions_waiting",
        "deletions_waiting_for",
        "dropped",
        "enabled",
        "install_id",
        "last_error",
        "last_upload",
        "pending",
        "reason",
        "rejected",
        "source",
        "spool_dir",
    )

    def __init__(
        self,
        enabled: bool,
        source: Source,
        reason: str,
        install_id: str | None,
        config_file: str,
        spool_dir: str,
        pending: int,
        dropped: int,
        rejected: int = 0,
        last_upload: str | None = None,
        last_error: str | None = None,
        deletions_waiting: int = 0,
        deletions_waiting_for: tuple[str, ...] = (),
    ) -> None:
        self.enabled: Final = enabled
        self.source: Final = source
        self.reason: Final = reason
        self.install_id: Final = install_id
        self.config_file: Final = config_file
        self.spool_dir: Final = spool_dir
        self.pending: Final = pending
        self.dropped: Final = dropped
        self.rejected: Final = rejected
        self.last_upload: Final = last_upload
        self.last_error: Final = last_error
        self.deletions_waiting: Final = deletions_waiting
        self.deletions_waiting_for: Final = deletions_waiting_for


def read_status(config: ToolConfig) -> Status:
    """The current decision, ids, spool and last upload, read from disk (writes nothing)."""
    from . import _paths, deletion
    from ._ids import read_ids
    from ._settings import EnvSettings
    from .delivery import UploadState
    from .recording import decide, open_spool

    env = EnvSettings.read(config.env_prefix)
    paths = _paths.resolve(config.tool)
    decision = decide(config, env, paths)
    ids = read_ids(paths.ids_file)
    stats = open_spool(config, paths, env).stats()
    upload = UploadState.load(paths.upload_state)
    now = time.time()
    waiting = [
        p
        for p in deletion.read(paths.deletion_file, env.report)
        if p.waiting_for() and not p.expired(now)
    ]
    return Status(
        enabled=decision.enabled,
        source=decision.source,
        reason=decision.reason,
        install_id=ids.install_id if ids else None,
        config_file=paths.config_file,
        spool_dir=paths.spool_dir,
        pending=stats.pending,
        dropped=stats.dropped,
        rejected=stats.rejected,
        last_upload=upload.last_upload,
        last_error=upload.last_error,
        deletions_waiting=len(waiting),
        deletions_waiting_for=tuple(sorted({name for p in waiting for name in p.waiting_for()})),
    )
