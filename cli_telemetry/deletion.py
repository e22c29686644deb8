"""The deletion request ``telemetry disable`` leaves behind, until every sink has it.

``disable`` deletes the install id and the events still waiting at once; what was sent
before is in the author's collector and at the providers. So, for the id it deletes, it
writes a `cli_telemetry.events.DeletionRequest` into ``deletion.json`` (beside the ids, mode
0600, outside the spool: the spool's bounds never push it out) and starts the uploader. The
uploader hands each waiting request to the sinks it is for, those of the tool's sinks that
pass deletions on (`cli_telemetry.sinks.base.Forgetting`: the collector, a webhook,
`Pending`), before anything else and whatever the consent says (a request carries no usage
data), with the per-sink backoff of events; a provider's event API takes no deletion with a
key a tool can ship, so a tool that sends only there leaves no request (`EVENTS_ONLY`). A
later run of the tool that reads its config (that is, one without ``DO_NOT_TRACK`` or the
tool's own off switch, which stop a run before any file is looked at) starts the uploader
again while a request waits, and so does ``telemetry status``.

The file keeps the install id after ``disable`` deleted the ids file: for as long as a sink
lacks the request, and never longer than `LIFETIME`, so that an endpoint that is gone for
good does not keep an id on the disk forever. Several requests can wait at once (disable,
enable, disable again before the first arrived).

This module is the file's one owner; the uploader, ``disable`` and ``status`` use it, the
running command only tests that the file exists (and a file no run rewrote for `LIFETIME`
holds only expired requests: `waiting` deletes it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._values import Record

if TYPE_CHECKING:
    from ._paths import Paths
    from ._settings import ToolConfig
    from .events import DeletionRequest

LIFETIME: Final = 30 * 86400.0
"""How long a request waits for a sink that never takes it: a month of retries (the backoff
reaches its cap of hours within a day) covers an outage; an endpoint that is still gone
then is gone, and the install id it would carry goes too."""
EVENTS_ONLY: Final = frozenset(
    f"cli_telemetry.sinks.{name}"
    for name in (
        "posthog:PostHogSink",
        "segment:SegmentSink",
        "rudderstack:RudderStackSink",
        "mixpanel:MixpanelSink",
        "amplitude:AmplitudeSink",
        "otlp:OtlpSink",
    )
)
"""The built-in sinks that take no deletion request (no ``forget``): a tool that sends only
to these leaves none (the collector's sink, a webhook and a custom provider may take one)."""
FILE_LIMIT: Final = 1024 * 1024
"""A request is about 250 bytes: a file larger than this is not one we wrote."""


class Pending(Record):
    """One waiting request: the record itself, the names of the sinks done with it (each
    took it, refused it for good, or cannot take deletions), when ``disable`` wrote it
    (``time.time()``), and the sinks it is for: those of the tool when ``disable`` ran that
    may take it. A later run's sinks may differ (an endpoint given by a variable then, and
    not now): the request waits for those it is for, and goes to no sink added since, which
    never had the id."""

    __slots__ = ("done", "request", "since", "to")

    def __init__(
        self, request: DeletionRequest, done: Iterable[str], since: float, to: Iterable[str]
    ) -> None:
        self.request: Final = request
        self.done: Final = frozenset(done)
        self.since: Final = since
        self.to: Final = frozenset(to)

    def waiting_for(self) -> list[str]:
        """The sinks it is for that still lack it."""
        return sorted(self.to - self.done)

    def with_done(self, names: Iterable[str]) -> Pending:
        return Pending(self.request, self.done | frozenset(names), self.since, self.to)

    def expired(self, now: float) -> bool:
        return now - self.since > LIFETIME

    def to_json(self) -> dict[str, Any]:
        return {
            "request": dict(self.request),
            "done": sorted(self.done),
            "since": self.since,
            "to": sorted(self.to),
        }


def request_for(tool: str, install_id: str, now: float) -> DeletionRequest:
    """The deletion request for ``install_id``: nothing but the fields every record has.

    Its id is random (a UUID4), not time-ordered as events' are: the collector keeps a
    request's id, to count a resent one once, for as long as it keeps its count, which is
    by day only; a UUIDv7 would keep the moment of ``disable`` to the millisecond."""
    import uuid

    from ._values import DELETION_EVENT, SCHEMA_VERSION, iso_time

    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": str(uuid.uuid4()),
        "event": DELETION_EVENT,
        "timestamp": iso_time(now),
        "tool": tool,
        "install_id": install_id,
    }


def read(path: str, report: Callable[[str], None] | None = None) -> list[Pending]:
    """The requests waiting in ``path``; none when there is no file.

    A file that is not ours to trust (a link, another user's: `_paths.read_private`) or
    not JSON holds none; an entry that is not a valid request of this schema
    (`events.check_event`) is skipped. ``report`` (a debug reporter) is told of each."""
    from ._paths import read_private
    from .events import DELETION_EVENT, InvalidEvent, check_event

    try:
        data = json.loads(read_private(path, FILE_LIMIT))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, RecursionError) as exc:
        if report is not None:
            report(f"ignored {path}: {type(exc).__name__}")
        return []
    entries = data.get("requests") if isinstance(data, dict) else None
    pending = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            request, done, since, to = entry["request"], entry["done"], entry["since"], entry["to"]
            check_event(request)
            if request["event"] != DELETION_EVENT:
                raise InvalidEvent("event", "is not a deletion request")
            for names in (done, to):
                if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                    raise TypeError("done and to must be lists of sink names")
            if not isinstance(since, (int, float)) or isinstance(since, bool):
                raise TypeError("since")
        except (KeyError, TypeError, InvalidEvent) as exc:
            if report is not None:
                report(f"skipped an entry of {path}: {exc}")
            continue
        pending.append(Pending(request, done, float(since), to))
    return pending


def write(path: str, pending: Sequence[Pending]) -> None:
    """Replace the file with ``pending`` (atomically, 0600); no file when none waits."""
    from ._paths import write_private

    if pending:
        write_private(path, json.dumps({"requests": [p.to_json() for p in pending]}))
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def add(path: str, request: DeletionRequest, now: float, to: Iterable[str]) -> None:
    """Add ``request``, for the sinks ``to``, to those waiting in ``path`` (the uploader
    lock is held)."""
    write(path, [*read(path), Pending(request, (), now, to)])


def leave(config: ToolConfig, paths: Paths, now: float) -> bool:
    """For ``disable``, holding the uploader lock, before it deletes the ids: add the request
    for the install id it is about to delete, if there is one and the tool sends anywhere.
    Returns whether it did."""
    from ._ids import read_ids
    from ._settings import EnvSettings

    ids = read_ids(paths.ids_file)
    specs = config.sink_specs(EnvSettings.read(config.env_prefix))
    to = [spec["name"] for spec in specs if spec["target"] not in EVENTS_ONLY]
    if ids is None or not to:
        return False  # nowhere it could go: a provider's event API takes no deletion
    add(paths.deletion_file, request_for(config.tool, ids.install_id, now), now, to)
    return True


def start_uploader(config: ToolConfig, paths: Paths) -> None:
    """For ``disable`` (after it released the lock) and ``status``: start the uploader now
    if a request waits, unless a test owns the files (nothing is ever sent from there)."""
    from . import _spawn
    from ._settings import EnvSettings

    if paths.testing or not waiting(paths, time.time()):
        return
    env = EnvSettings.read(config.env_prefix)
    sinks = config.sink_specs(env)
    if sinks:
        _spawn.start_uploader(config, sinks, paths, [])


def waiting(paths: Paths, now: float) -> bool:
    """A request waits in ``paths.deletion_file``, one stat when none does. A file nobody
    changed for `LIFETIME` holds only expired requests (each uploader run rewrites it): it
    is deleted here, so that the install id it holds does not outlive its lifetime where
    no uploader runs any more (the tool is never run again, or only under DO_NOT_TRACK)."""
    try:
        changed = os.stat(paths.deletion_file).st_mtime
    except OSError:
        return False
    if now - changed > LIFETIME:
        try:
            os.unlink(paths.deletion_file)
        except OSError:
            pass
        return False
    return True
