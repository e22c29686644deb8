"""`Status`: what ``<tool> telemetry status`` reports, also useful to authors in tests."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from ._values import Record

if TYPE_CHECKING:
    from ._aliases import Source
    from ._settings import ToolConfig
    from .delivery import UploadState


class SinkStatus(Record):
    """One destination's state, from ``upload.json`` (`cli_telemetry.delivery.UploadState`).

    ``last_upload`` is when it last took events, ``last_error`` the kind of its last
    failure or refusal (cleared by a clean delivery; ``redirect:https://host`` when its
    endpoint redirects, see `cli_telemetry.sinks.http.redirected`), ``failures`` how many
    attempts in a row failed, ``next_attempt`` when it may be sent to again while it backs
    off (UTC, ISO 8601; None when it may be sent to now, by the next upload).
    """

    __slots__ = ("failures", "last_error", "last_upload", "name", "next_attempt")

    def __init__(
        self,
        name: str,
        last_upload: str | None = None,
        last_error: str | None = None,
        failures: int = 0,
        next_attempt: str | None = None,
    ) -> None:
        self.name: Final = name
        self.last_upload: Final = last_upload
        self.last_error: Final = last_error
        self.failures: Final = failures
        self.next_attempt: Final = next_attempt

    @classmethod
    def of(cls, name: str, upload: UploadState, now: float) -> SinkStatus:
        from .delivery import iso_seconds

        retry_at = upload.retry_at(name)
        return cls(
            name,
            last_upload=upload.sink_last_upload(name),
            last_error=upload.sink_last_error(name),
            failures=upload.failures(name),
            next_attempt=iso_seconds(retry_at) if retry_at > now else None,
        )

    def describe(self) -> list[str]:
        """Its lines in ``telemetry status``: the state, and what a redirect means."""
        from .sinks.base import REDIRECT, is_redirect

        parts = [f"last delivery {self.last_upload or 'never'}"]
        if self.last_error:
            in_a_row = f", {self.failures} failure(s) in a row" if self.failures else ""
            parts.append(f"last error {self.last_error}{in_a_row}")
        if self.next_attempt:
            parts.append(f"next attempt after {self.next_attempt}")
        else:
            parts.append("next attempt with the next upload")
        lines = [f"  {self.name}: {'; '.join(parts)}"]
        if is_redirect(self.last_error):
            target = self.last_error[len(REDIRECT) + 1 :] if self.last_error else ""
            where = f" to {target}" if target else ""
            lines.append(
                f"    its endpoint redirects{where}; redirects are not followed (the events"
                " and their token would go to a host nobody configured): the tool's"
                " endpoint needs correcting"
            )
        return lines


class Status(Record):
    """Whether telemetry is on and why, the ids, and the spool.

    ``last_upload`` is when events last arrived (UTC, ISO 8601), ``last_error`` the kind of
    the last delivery failure (``timeout``, ``http_503``, ``partial_rejected`` when a
    destination took a batch but refused some of its events, ...), ``dropped`` the events
    the spool's bounds pushed out, ``rejected`` those a destination refused for good: a
    whole batch or single events, each event counted once however many destinations
    refused it (`cli_telemetry.spool.Spool.settle`). ``sinks`` has each destination's own
    state (`SinkStatus`), in the order the tool sends to them. ``deletions_waiting`` counts
    the deletion requests ``disable`` left that have not reached every destination yet,
    ``deletions_waiting_for`` names those destinations (`cli_telemetry.deletion`).

    ``upload_due`` says the upload policy (`cli_telemetry.recording.upload_due`) starts the
    uploader with the next recorded command (its throttle and each destination's backoff
    permitting); when it does not yet, ``upload_due_at`` is when the oldest waiting event
    will have waited ``upload_after_seconds`` (UTC, ISO 8601; the policy is also due
    earlier, once ``upload_after_events`` wait). Both are false and None when no event
    waits or telemetry is off (nothing is sent then): without them, a user who sees three
    events waiting could not tell why nothing is sent.
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
        "sinks",
        "source",
        "spool_dir",
        "upload_due",
        "upload_due_at",
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
        sinks: tuple[SinkStatus, ...] = (),
        last_upload: str | None = None,
        last_error: str | None = None,
        deletions_waiting: int = 0,
        deletions_waiting_for: tuple[str, ...] = (),
        upload_due: bool = False,
        upload_due_at: str | None = None,
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
        self.sinks: Final = sinks
        self.last_upload: Final = last_upload
        self.last_error: Final = last_error
        self.deletions_waiting: Final = deletions_waiting
        self.deletions_waiting_for: Final = deletions_waiting_for
        self.upload_due: Final = upload_due
        self.upload_due_at: Final = upload_due_at

    def as_dict(self) -> dict[str, Any]:
        """The fields, each sink's as a dict too (what ``status --json`` prints)."""
        fields = super().as_dict()
        fields["sinks"] = [sink.as_dict() for sink in self.sinks]
        return fields


def read_status(config: ToolConfig) -> Status:
    """The current decision, ids, spool and last upload, read from disk (writes nothing)."""
    from . import _append, _paths, deletion
    from ._ids import read_ids
    from ._settings import EnvSettings
    from .delivery import UploadState, iso_seconds
    from .recording import decide, open_spool, spool_bounds, upload_due

    env = EnvSettings.read(config.env_prefix)
    paths = _paths.resolve(config.tool)
    decision = decide(config, env, paths)
    ids = read_ids(paths.ids_file)
    stats = open_spool(config, paths, env).stats()
    now = time.time()
    upload = UploadState.load(paths.upload_state, now=now)
    sinks = tuple(SinkStatus.of(spec["name"], upload, now) for spec in config.sink_specs(env))
    waiting = [
        p
        for p in deletion.read(paths.deletion_file, env.report)
        if p.waiting_for() and not p.expired(now)
    ]
    names = _append.waiting(paths.spool_dir) if decision.enabled else None
    due, due_at = False, None
    if names:
        max_events, max_bytes = spool_bounds(config)
        due = upload_due(config, paths, names, max_events, max_bytes, now)
        oldest = _append.oldest_ns(names)
        if not due and oldest is not None:
            due_at = iso_seconds(oldest / 1e9 + config.upload_after_seconds)
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
        sinks=sinks,
        last_upload=upload.last_upload,
        last_error=upload.last_error,
        deletions_waiting=len(waiting),
        deletions_waiting_for=tuple(sorted({name for p in waiting for name in p.waiting_for()})),
        upload_due=due,
        upload_due_at=due_at,
    )
