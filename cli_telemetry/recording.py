"""After a command: decide, settle consent, build the events, spool them, start the uploader.

The order is deliberate. Nothing runs before the command (so a broken telemetry set-up
cannot stop it), and after it the environment is read first, so that DO_NOT_TRACK costs no
file access and no further import; then the config file; then, only if recording, the ids
and one atomic file per event. Every step is inside one ``try`` whose failures go to the
debug output and nowhere else.

The host tool runs this module on every invocation, so it imports almost nothing at the
top: each module is imported where it is first needed (a second import is a dict lookup).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._ids import Ids
    from ._paths import Paths
    from ._settings import Decision, EnvSettings, ToolConfig
    from .events import Event, Scalar
    from .instrument import Run
    from .spool import Spool

    CustomEvent = tuple[str, dict[str, Scalar], float]
    """A custom event waiting to be recorded: name, checked properties, ``time.time()``."""


def finish(config: ToolConfig, run: Run, env: EnvSettings, uploaders: list[int]) -> None:
    """Record ``run`` (a command that just ended), if telemetry is on; never raises.

    The caller has read the environment already (`Telemetry._finish`), and returned early
    when it alone decides (DO_NOT_TRACK, the tool's variable): that run never imports this
    module."""
    duration_ms = int((time.perf_counter() - run.started) * 1000)
    try:
        if run.internal or not run.parsed:
            return
        _record_run(config, run, env, duration_ms, uploaders)
    except (Exception, KeyboardInterrupt) as exc:  # even Ctrl-C during our few ms
        _report_failure(env, exc)


def record_custom(config: ToolConfig, custom: CustomEvent, uploaders: list[int]) -> None:
    """Record a custom event outside any command, if telemetry is on; never raises."""
    from ._settings import EnvSettings

    env = EnvSettings.read(config.env_prefix)
    try:
        from . import _paths

        paths = _paths.resolve(config.tool)
        decision = decide(config, env, paths)
        if decision.enabled or env.debug:
            name, properties, when = custom
            ids = _ids(env, paths, decision)
            common = _common(config, ids, name, config.tool, when)
            _store(config, env, paths, decision, [_custom(common, properties, when)], uploaders)
    except (Exception, KeyboardInterrupt) as exc:
        _report_failure(env, exc)


def _record_run(
    config: ToolConfig, run: Run, env: EnvSettings, duration_ms: int, uploaders: list[int]
) -> None:
    from . import _paths
    from .instrument import EXIT, loaded

    paths = _paths.resolve(config.tool)
    decision = decide(config, env, paths)
    if not env.debug:
        if decision.pending:
            from .consent import settle

            decision = settle(config, paths, decision, run.exception)
        if not decision.enabled:
            _deliver_deletions(config, env, paths, uploaders)
            return
    from . import capture
    from ._values import (
        COMMAND_EVENT,
        DURATION_MS,
        IDENTIFY_EVENT,
        MAX_COMMAND_WORDS,
        PLACEHOLDER,
        UNLISTED,
        WORD,
    )

    final = run.final
    if final is None and isinstance(run.exception, loaded(EXIT)):
        final = run.exception  # standalone_mode=False returns ctx.exit()'s code
    exc = run.exception or run.final
    exit_code = capture.exit_code_of(final)
    outcome, error_type = capture.classify(exc, exit_code)
    if run.unlisted and error_type is not None and not capture.is_clicks(exc):
        error_type = PLACEHOLDER  # a plugin's own exception class is no name of the tool's
    flags, values = capture.flags_and_values(run.contexts_with(exc), config.record_values)
    words = [word if word == UNLISTED else WORD.fit(word) for word in run.path]
    path = " ".join([config.tool, *words[:MAX_COMMAND_WORDS]])
    ids = _ids(env, paths, decision)
    common = _common(config, ids, COMMAND_EVENT, path, run.started_at)
    command = common.copy()
    command["flags"] = flags
    command["values"] = values
    command["exit_code"] = exit_code
    command["outcome"] = outcome
    command["error_type"] = error_type
    command["duration_ms"] = DURATION_MS.fit(duration_ms)
    events = [command]
    from ._values import iso_time

    identified = None  # the fingerprint of the traits this run records, if any
    for name, properties, when in run.custom:
        if name == IDENTIFY_EVENT:  # one per change of its traits (`_identified`)
            from ._identified import news

            trusted = decision.source != "files"  # debug mode reads nothing untrusted
            fingerprint = news(env, paths, ids, properties, identified, trusted=trusted)
            if fingerprint is None:
                continue
            identified = fingerprint
        custom = common.copy()
        custom["event"] = name
        custom["timestamp"] = iso_time(when)
        events.append(_custom(custom, properties, when))
    _store(config, env, paths, decision, events, uploaders)
    if identified is not None and not env.debug:
        from ._identified import remember

        remember(paths.identified_file, identified)


def _deliver_deletions(
    config: ToolConfig, env: EnvSettings, paths: Paths, uploaders: list[int]
) -> None:
    """While a deletion request that ``telemetry disable`` left waits for a sink (see
    `cli_telemetry.deletion`), start the uploader (throttled and backing off as for events):
    it sends nothing else. One stat when none waits."""
    import os

    if paths.testing or not os.path.exists(paths.deletion_file):
        return  # the common case: nothing more is imported
    from . import _paths, deletion

    if _paths.untrusted(paths) is not None:
        return  # nothing is touched where another user could have planted something
    if not deletion.waiting(paths, time.time()):
        return
    sinks = config.sink_specs(env)
    if sinks:
        from . import _spawn

        _spawn.start_uploader(config, sinks, paths, uploaders)


def decide(config: ToolConfig, env: EnvSettings, paths: Paths) -> Decision:
    """Whether this run records: the environment, then whether a test runner runs the tool
    (`_settings.detect_test_runner`: off, but in a test's directory), then whether its files
    can be trusted at all (`_paths.untrusted`: nothing is read or written where another
    user could have planted or could change something), then the config file and the
    consent mode (or, in a test's directory, consent as given)."""
    from . import _paths
    from ._settings import decide, detect_test_runner, load_config

    return decide(
        env,
        lambda: load_config(paths.config_file),
        config.consent,
        config.policy_version,
        config.tool,
        untrusted=lambda: _paths.untrusted(paths),
        testing=paths.testing,
        under_test=lambda: detect_test_runner(os.environ, sys.stdout),
    )


def spool_bounds(config: ToolConfig) -> tuple[int, int]:
    """The spool's bounds, ``(max_events, max_bytes)``: the author's, or the defaults."""
    from ._append import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS

    return config.max_events or DEFAULT_MAX_EVENTS, config.max_bytes or DEFAULT_MAX_BYTES


def open_spool(config: ToolConfig, paths: Paths, env: EnvSettings | None = None) -> Spool:
    """The tool's spool, with its bounds, reporting to the debug output."""
    from .spool import Spool

    max_events, max_bytes = spool_bounds(config)
    return Spool(
        paths.spool_dir,
        max_events=max_events,
        max_bytes=max_bytes,
        report=env.report if env is not None else lambda message: None,
    )


def _ids(env: EnvSettings, paths: Paths, decision: Decision) -> Ids:
    """The stored ids, created if needed; debug mode only reads (it writes nothing), and
    reads nothing from directories it does not trust."""
    from ._ids import Ids, load_or_create_ids, read_ids

    if env.debug:
        # Before the first recorded event there is no install id yet: the nil UUID stands
        # in for it (debug mode creates nothing).
        stored = read_ids(paths.ids_file) if decision.source != "files" else None
        return stored or Ids("00000000-0000-0000-0000-000000000000")
    return load_or_create_ids(paths.ids_file)


def _common(config: ToolConfig, ids: Ids, event: str, command: str, when: float) -> Event:
    """The fields every event has (see events.Event); ``when`` is a ``time.time()``."""
    from . import capture
    from ._ids import new_event_id
    from ._values import SCHEMA_VERSION, iso_time

    platform = capture.platform_fields()
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": new_event_id(when),
        "event": event,
        "timestamp": iso_time(when),
        "tool": config.tool,
        "tool_version": config.version,
        "install_id": ids.install_id,
        "command": command,
        "os": platform["os"],
        "os_version": platform["os_version"],
        "arch": platform["arch"],
        "python_version": platform["python_version"],
        "ci": capture.detect_ci(),
        "interactive": capture.is_interactive(),
    }


def _custom(common: Event, properties: dict[str, Scalar], when: float) -> Event:
    """A custom event recorded at ``when`` (its ``timestamp`` already says so)."""
    from ._ids import new_event_id

    custom = common.copy()
    custom["event_id"] = new_event_id(when)
    custom["properties"] = properties
    return custom


def _store(
    config: ToolConfig,
    env: EnvSettings,
    paths: Paths,
    decision: Decision,
    events: list[Event],
    uploaders: list[int],
) -> None:
    """Append the events to the spool; in debug mode, print them instead."""
    if env.debug:
        _show(env, paths, decision, events)
        return
    import os

    from ._values import MAX_EVENT_BYTES, encode

    # Every value above was fitted to the schema as it was captured (`_values`), so the
    # events pass the collector's `events.check_event` without being checked here: that
    # would import the whole schema on every run. Debug mode checks them (`_show`), and
    # tests/test_contract_property.py tries it with generated tools.
    encoded = []
    for event in events:
        data = encode(event).encode()
        if len(data) > MAX_EVENT_BYTES:
            env.report(f"dropped event {event['event']!r}: {len(data)} bytes")
            continue
        encoded.append(data)
    # `_append`, not `Spool.append`: the spool module is imported only when it is past a
    # bound (then `Spool.trim` takes its lock) or the events are taken back.
    from . import _append

    appended = _append.append(paths.spool_dir, encoded)
    max_events, max_bytes = spool_bounds(config)
    waiting = _append.waiting(paths.spool_dir)
    if _append.over_bounds(paths.spool_dir, max_events, max_bytes, waiting):
        open_spool(config, paths, env).trim(wait=False)
    if not os.path.exists(paths.ids_file):
        # ``telemetry disable`` ran meanwhile: it deletes the ids before it empties the
        # spool, so an event of the id it deleted that was appended after that is ours to
        # take back (it would otherwise wait, and be sent after its deletion request).
        open_spool(config, paths, env).discard(appended)
        return
    sinks = config.sink_specs(env)
    if sinks and not paths.testing:  # a test's events stay where the test reads them
        if not upload_due(config, paths, waiting, max_events, max_bytes, time.time()):
            return  # the upload policy: not yet worth an uploader
        from ._paths import modified_after
        from ._settings import SPAWN_INTERVAL

        # The throttle `_spawn.should_spawn` applies, checked first (one lstat): most runs
        # start no uploader, and then need not import `_spawn`. A long-lived host with
        # uploaders to reap goes on to `start_uploader`, which reaps them.
        if not uploaders and modified_after(paths.uploader_stamp, time.time() - SPAWN_INTERVAL):
            return
        from . import _spawn

        _spawn.start_uploader(config, sinks, paths, uploaders)


def upload_due(
    config: ToolConfig,
    paths: Paths,
    waiting: list[str] | None,
    max_events: int,
    max_bytes: int,
    now: float,
) -> bool:
    """The upload policy: whether the events ``waiting`` (the names `_append.waiting` listed
    after this run's append) are worth starting an uploader for.

    An uploader run costs the user's machine 100-250 ms of CPU however few events it sends,
    so it is worth one once ``upload_after_events`` wait (never more than ``max_events``:
    the policy alone must not make the spool drop events), or once the oldest has waited
    ``upload_after_seconds`` (its name carries its time; one dated more than a minute
    ahead means the clock went back, and counts as due), or once they hold half of
    ``max_bytes`` (large events under a small byte bound would be trimmed before 20 wait);
    or when a deletion request waits
    (it goes at once, whatever the policy), or `UPLOAD_AT_ONCE_VARIABLE` is set (tests,
    demos). A spool that could not be listed is due: better an uploader too many than
    events stuck. The throttle and a sink's backoff still apply after this: the policy only
    ever holds an uploader back. Decided from what the append listed anyway, here rather
    than in `_spawn`, so that a run that starts nothing does not import it."""
    from ._append import named_size, oldest_ns
    from ._settings import UPLOAD_AT_ONCE_VARIABLE, env_flag

    if waiting is None:
        return True
    if len(waiting) >= enough_events(config, max_events):
        return True
    oldest = oldest_ns(waiting)
    if oldest is None:
        return True
    waited = now - oldest / 1e9
    if waited >= config.upload_after_seconds or waited < -60:
        return True
    if sum(map(named_size, waiting)) * 2 >= max_bytes:
        return True
    if env_flag(os.environ.get(UPLOAD_AT_ONCE_VARIABLE)):
        return True
    return os.path.exists(paths.deletion_file)


def enough_events(config: ToolConfig, max_events: int) -> int:
    """How many waiting events make an upload due: ``upload_after_events``, but never more
    than the spool holds (the policy alone must not make the spool drop events)."""
    return min(config.upload_after_events, max_events)


def _show(env: EnvSettings, paths: Paths, decision: Decision, events: list[Event]) -> None:
    """Debug mode: say what would be recorded and why, and print the events; write nothing."""
    import json

    from . import _paths
    from ._settings import write_stderr

    verdict = "would record" if decision.enabled else "would not record"
    state = "on" if decision.enabled else "off"
    reason = f"telemetry is {state} ({decision.reason})"
    env.report(f"{verdict}: {reason}; debug mode records and sends nothing")
    from .events import InvalidEvent, check_event

    for event in events:
        write_stderr(json.dumps(event, separators=(",", ":")) + "\n")
        try:
            check_event(event)
        except InvalidEvent as exc:
            env.report(f"the collector would refuse the event above: {exc}")
    problem = _paths.unwritable(paths.spool_dir)
    if problem:
        env.report(f"cannot record: {problem}")


def _report_failure(env: EnvSettings, exc: BaseException) -> None:
    env.report(f"internal error, ignored: {type(exc).__name__}: {exc}")
