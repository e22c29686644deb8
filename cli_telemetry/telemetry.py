"""`Telemetry`: the object a CLI author creates, and what happens after each invocation.

The order of work after a command is deliberate: nothing runs before the command (so a
broken telemetry set-up cannot stop it), and after it the environment is read first, so that
DO_NOT_TRACK costs no file access and no further import; then the config file; then, only if
recording, the ids and one atomic file per event. Every step is inside one ``try`` whose
failures go to the debug output and nowhere else.

The host tool imports this module on every run, so it imports almost nothing at the top:
each module is imported where it is first needed (a second import is a dict lookup).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from ._record import Record

if TYPE_CHECKING:
    from ._ids import Ids
    from ._paths import Paths
    from ._settings import ConsentMode, Decision, EnvSettings, Source
    from .errors import ConfigurationError
    from .events import Event, Scalar
    from .instrument import Run
    from .providers import Provider
    from .spool import Spool

C = TypeVar("C", bound=click.Command)

DEBUG_PREFIX: Final = "cli-telemetry: "
COLLECTOR: Final = "collector"
COLLECTOR_TARGET: Final = "cli_telemetry.sinks.http:HttpSink"
"""The sink ``endpoint`` describes (`cli_telemetry.providers.Collector`), spelled out here
so that a tool without other sinks never imports the providers module."""


class Status(Record):
    """What ``<tool> telemetry status`` reports; also useful to authors in tests.

    ``last_upload`` is when events last arrived (UTC, ISO 8601), ``last_error`` the kind of
    the last delivery failure (``timeout``, ``http_503``, ...), ``dropped`` the events the
    spool's bounds pushed out, ``rejected`` those an endpoint refused for good.
    """

    __slots__ = (
        "config_file",
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


class Telemetry:
    """Usage telemetry for one click tool.

    ``tool`` names the tool's directories and its environment prefix (``acme`` →
    ``ACME_TELEMETRY_DISABLED``, ``ACME_TELEMETRY_DEBUG``). ``consent="notice"`` is opt-out
    after a one-time notice; ``"prompt"`` is opt-in, asked once. Raising
    ``policy_version`` shows the notice (or asks) again. ``strict=True`` (or
    ``<PREFIX>_TELEMETRY_STRICT=1``, for an author's test suite) makes `track` raise on bad
    properties instead of dropping them.
    """

    def __init__(
        self,
        tool: str,
        *,
        version: str,
        endpoint: str | None = None,
        token: str | None = None,
        consent: ConsentMode = "notice",
        privacy_url: str | None = None,
        policy_version: int = 1,
        strict: bool = False,
        max_events: int | None = None,
        max_bytes: int | None = None,
        sinks: Sequence[Provider | str] = (),
    ) -> None:
        if not _is_tool_name(tool):
            raise _configuration_error(
                f"tool name {tool!r} must be 1-64 lowercase letters, digits, '-' or '_'"
            )
        if consent not in ("notice", "prompt"):
            raise _configuration_error(f"consent must be 'notice' or 'prompt', not {consent!r}")
        if type(policy_version) is not int or policy_version < 1:
            raise _configuration_error("policy_version must be a whole number of at least 1")
        if not isinstance(version, str) or not version:
            raise _configuration_error("version must be a non-empty string")
        if (max_events is not None and max_events < 1) or (max_bytes is not None and max_bytes < 1):
            raise _configuration_error("max_events and max_bytes must be at least 1")
        self.tool = tool
        self.version = version
        self.endpoint = endpoint
        self.token = token
        self.consent: ConsentMode = consent
        self.privacy_url = privacy_url
        self.policy_version = policy_version
        self.strict = strict
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.env_prefix = tool.upper().replace("-", "_")
        self._runs: list[Run] = []
        self._uploaders: list[int] = []  # pids this process spawned, reaped later
        self._sinks: list[Provider] = []
        for sink in sinks:
            self.add_sink(sink)

    # -- the author's API --------------------------------------------------------------

    def instrument(self, command: C) -> C:
        """Record every invocation of ``command`` (a click command or group); returns it."""
        from .instrument import instrument

        instrument(command, self)
        return command

    def command(self, name: str = "telemetry") -> click.Group:
        """The ``telemetry status|enable|disable`` group, to add to the tool's group."""
        return TelemetryGroup(self, name)

    def add_sink(self, sink: Provider | str) -> None:
        """Send events to ``sink`` too: a `cli_telemetry.providers` description, or the
        import path of a custom provider class (``"mypkg.telemetry:MyProvider"``).

        The name must be new (`ConfigurationError` otherwise): it is how the spool knows
        which sinks already have an event."""
        if isinstance(sink, str):
            from .providers import Provider

            sink = Provider(sink)
        name = getattr(sink, "name", None)
        if not callable(getattr(sink, "to_json", None)) or not isinstance(name, str):
            raise _configuration_error(
                f"a sink must be a cli_telemetry.providers.Provider, not {type(sink).__name__}"
            )
        if name in self.sink_names():
            raise _configuration_error(f"two sinks are named {name!r}: give one another name")
        self._sinks.append(sink)

    def remove_sink(self, name: str) -> bool:
        """Stop sending to the sink named ``name``; False if there was none. Events that
        only it lacked leave the spool at the next upload."""
        kept = [sink for sink in self._sinks if sink.name != name]
        removed = len(kept) < len(self._sinks)
        self._sinks = kept
        if name == COLLECTOR and self.endpoint:
            self.endpoint = None
            removed = True
        return removed

    def sink_names(self) -> list[str]:
        """The sinks' names, the collector (``endpoint``) first."""
        return ([COLLECTOR] if self.endpoint else []) + [sink.name for sink in self._sinks]

    def track(self, event: str, properties: dict[str, Scalar] | None = None) -> None:
        """Record a custom event with JSON-scalar properties.

        Inside an instrumented command the event is recorded after the command, under the
        same consent; outside one it is recorded at once if telemetry is on. Bad arguments
        raise TypeError/ValueError only in strict mode; an end user's run drops the event
        and says why in the debug output.
        """
        self._record_custom(event, properties, identify=False)

    def identify(self, traits: dict[str, Scalar]) -> None:
        """Record anonymous traits of this installation (``{"plan": "pro"}``), which the
        providers that have the notion attach to the install id (PostHog person
        properties, Segment and RudderStack identify, Mixpanel profiles, Amplitude user
        properties). The same rules as `track`'s properties: JSON scalars, bounded, never
        anything that identifies a person."""
        from .events import IDENTIFY_EVENT

        self._record_custom(IDENTIFY_EVENT, traits, identify=True)

    def _record_custom(self, event: str, properties: object, *, identify: bool) -> None:
        from ._settings import EnvSettings
        from .events import check_custom_event

        env = EnvSettings.read(self.env_prefix)
        try:
            checked = check_custom_event(event, properties, identify=identify)
        except (TypeError, ValueError) as exc:
            if self.strict or env.strict:
                raise
            self._debug(env, f"dropped custom event: {exc}")
            return
        timestamp = iso_now()
        if self._runs:
            self._runs[-1].custom.append((event, checked, timestamp))
            return
        with self._guard(env):
            from . import _paths

            paths = _paths.resolve(self.tool)
            decision = self._decide(env, paths)
            if decision.enabled or env.debug:
                ids = self._ids(env, paths)
                common = self._common(ids, event, self.tool, timestamp)
                self._store(env, paths, decision, [self._custom(common, checked)])

    def status(self) -> Status:
        """The current decision, ids and spool, as ``telemetry status`` shows them."""
        from . import _paths
        from ._ids import read_ids
        from ._settings import EnvSettings

        env = EnvSettings.read(self.env_prefix)
        paths = _paths.resolve(self.tool)
        decision = self._decide(env, paths)
        from ._uploader import read_state

        ids = read_ids(paths.ids_file)
        stats = self.spool(paths).stats()
        upload = read_state(paths.upload_state)
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
            last_upload=upload.get("last_upload"),
            last_error=upload.get("last_error"),
        )

    def spool(self, paths: Paths | None = None) -> Spool:
        """This tool's spool (the uploader's side: claim, ack, release)."""
        from . import _paths
        from ._settings import EnvSettings
        from .spool import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Spool

        paths = paths or _paths.resolve(self.tool)
        env = EnvSettings.read(self.env_prefix)
        return Spool(
            paths.spool_dir,
            max_events=self.max_events or DEFAULT_MAX_EVENTS,
            max_bytes=self.max_bytes or DEFAULT_MAX_BYTES,
            report=lambda message: self._debug(env, message),
        )

    # -- the end of an invocation (called by instrument.py) ----------------------------

    def _finish(self, run: Run) -> None:
        duration_ms = int((time.perf_counter() - run.started) * 1000)
        env: EnvSettings | None = None
        try:
            from ._settings import EnvSettings

            env = EnvSettings.read(self.env_prefix)
            if run.internal or not run.parsed:
                return
            if (env.do_not_track or env.disabled) and not env.debug:
                return  # decided by the environment: nothing more to read, import or write
            self._record_run(run, env, duration_ms)
        except (Exception, KeyboardInterrupt) as exc:
            self._report_failure(env, exc)

    def _record_run(self, run: Run, env: EnvSettings, duration_ms: int) -> None:
        from . import _paths

        paths = _paths.resolve(self.tool)
        decision = self._decide(env, paths)
        if not env.debug:
            if decision.pending:
                decision = self._settle_consent(paths, decision, run)
            if not decision.enabled:
                return
        from . import capture
        from .events import COMMAND_EVENT

        final = run.final
        if final is None and isinstance(run.exception, click.exceptions.Exit):
            final = run.exception  # standalone_mode=False returns ctx.exit()'s code
        exc = run.exception or run.final
        exit_code = capture.exit_code_of(final)
        outcome, error_type = capture.classify(exc, exit_code)
        flags, values = capture.flags_and_values(run.contexts_with(exc))
        ids = self._ids(env, paths)
        common = self._common(ids, COMMAND_EVENT, " ".join([self.tool, *run.path]), run.timestamp)
        command = common.copy()
        command["flags"] = flags
        command["values"] = values
        command["exit_code"] = exit_code
        command["outcome"] = outcome
        command["error_type"] = error_type
        command["duration_ms"] = duration_ms
        events = [command]
        for name, properties, timestamp in run.custom:
            custom = common.copy()
            custom["event"] = name
            custom["timestamp"] = timestamp
            events.append(self._custom(custom, properties))
        self._store(env, paths, decision, events)

    def _decide(self, env: EnvSettings, paths: Paths) -> Decision:
        from ._settings import decide, load_config

        return decide(
            env,
            lambda: load_config(paths.config_file),
            self.consent,
            self.policy_version,
            self.tool,
        )

    def _settle_consent(self, paths: Paths, decision: Decision, run: Run | None) -> Decision:
        """Show the notice or ask the question, if a person can see it; store the result.

        The choice is stored *before* the notice is shown (and the question only asked where
        it can be stored), so that a read-only config never shows it on every run.
        """
        from . import _paths, capture
        from ._settings import Config, Decision, save_config

        config = decision.config or Config()
        if decision.pending == "notice":
            if capture.stderr_is_tty():
                save_config(paths.config_file, config.with_notice(self.policy_version), self.tool)
                from . import consent

                consent.show_notice(self.tool, self.privacy_url)
            return decision  # nothing is recorded on the run that shows the notice
        interrupted = run is not None and isinstance(
            run.exception, (KeyboardInterrupt, click.Abort, EOFError)
        )
        if (
            interrupted
            or not capture.is_interactive()
            or not capture.in_foreground()
            or capture.detect_ci() is not None
            or _paths.unwritable(os.path.dirname(paths.config_file))
        ):
            return decision  # ask another time, when a person can answer and we can remember
        from . import consent

        yes = consent.ask(self.tool, self.privacy_url)
        save_config(paths.config_file, config.with_choice(yes, self.policy_version), self.tool)
        if not yes:
            return Decision(False, "config", "you answered no to the question", config=config)
        return Decision(True, "config", "you answered yes to the question", config=config)

    def _ids(self, env: EnvSettings, paths: Paths) -> Ids:
        """The stored ids, created if needed; debug mode only reads (it writes nothing)."""
        from ._ids import Ids, hashed_machine_id, load_or_create_ids, read_ids

        if env.debug:
            return read_ids(paths.ids_file) or Ids(
                "(created on the first recorded event)", hashed_machine_id(self.tool)
            )
        return load_or_create_ids(paths.ids_file, self.tool)

    def _common(self, ids: Ids, event: str, command: str, timestamp: str) -> Event:
        """The fields every event has (see events.Event)."""
        import uuid

        from . import capture
        from .events import SCHEMA_VERSION

        platform = capture.platform_fields()
        common: Event = {
            "schema_version": SCHEMA_VERSION,
            "event_id": str(uuid.uuid4()),
            "event": event,
            "timestamp": timestamp,
            "tool": self.tool,
            "tool_version": self.version,
            "install_id": ids.install_id,
            "command": command,
            "os": platform["os"],
            "os_version": platform["os_version"],
            "arch": platform["arch"],
            "python_version": platform["python_version"],
            "ci": capture.detect_ci(),
            "interactive": capture.is_interactive(),
        }
        if ids.machine_id:
            common["machine_id"] = ids.machine_id
        return common

    @staticmethod
    def _custom(common: Event, properties: dict[str, Scalar]) -> Event:
        import uuid

        custom = common.copy()
        custom["event_id"] = str(uuid.uuid4())
        custom["properties"] = properties
        return custom

    def _store(
        self, env: EnvSettings, paths: Paths, decision: Decision, events: list[Event]
    ) -> None:
        """Append the events to the spool; in debug mode, print them instead."""
        if env.debug:
            import json

            from . import _paths

            verdict = "would record" if decision.enabled else "would not record"
            state = "on" if decision.enabled else "off"
            self._debug(
                env,
                f"{verdict}: telemetry is {state} ({decision.reason});"
                " debug mode records and sends nothing",
            )
            for event in events:
                _write_stderr(json.dumps(event, separators=(",", ":")) + "\n")
            problem = _paths.unwritable(paths.spool_dir)
            if problem:
                self._debug(env, f"cannot record: {problem}")
            return
        from .events import MAX_EVENT_BYTES, encode

        encoded = []
        for event in events:
            data = encode(event).encode()
            if len(data) > MAX_EVENT_BYTES:
                self._debug(env, f"dropped event {event['event']!r}: {len(data)} bytes")
                continue
            encoded.append(data)
        self.spool(paths).append(encoded)
        sinks = self._sink_specs(env)
        if sinks:
            self._start_uploader(env, paths, sinks)

    def _sink_specs(self, env: EnvSettings) -> list[dict[str, Any]]:
        """What the uploader builds its sinks from (see `cli_telemetry.providers`): the
        collector at ``endpoint`` (or ``<PREFIX>_TELEMETRY_ENDPOINT``), then the others."""
        specs = [sink.to_json() for sink in self._sinks]
        endpoint = env.endpoint or self.endpoint
        if endpoint:
            options = {"endpoint": endpoint, "token": env.token or self.token}
            collector = {"target": COLLECTOR_TARGET, "name": COLLECTOR, "options": options}
            specs = [collector, *(spec for spec in specs if spec["name"] != COLLECTOR)]
        return specs

    def _start_uploader(self, env: EnvSettings, paths: Paths, sinks: list[dict[str, Any]]) -> None:
        """Start a detached uploader, unless one started recently or is backing off."""
        from . import _spawn
        from .events import encode
        from .spool import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS

        self._uploaders = _spawn.reap(self._uploaders)  # in a long-lived host process
        if getattr(sys, "frozen", False):
            self._debug(env, "a frozen app cannot start the uploader: events stay local")
            return
        if _spawn.running_uploader(paths.uploader_pid) is not None:
            return  # it picks up the new events itself
        if not _spawn.should_spawn(paths.uploader_stamp, time.time()):
            return
        options: _spawn.UploaderOptions = {
            "tool": self.tool,
            "env_prefix": self.env_prefix,
            "consent": self.consent,
            "policy_version": self.policy_version,
            "sinks": sinks,
            "max_events": self.max_events or DEFAULT_MAX_EVENTS,
            "max_bytes": self.max_bytes or DEFAULT_MAX_BYTES,
        }
        pid = _spawn.spawn(_spawn.uploader_argv(), encode(options))
        if pid is not None:
            self._uploaders.append(pid)

    @contextmanager
    def _guard(self, env: EnvSettings) -> Iterator[None]:
        """Swallow every failure of ours (even Ctrl-C during our few ms), reporting it in debug."""
        try:
            yield
        except (Exception, KeyboardInterrupt) as exc:
            self._report_failure(env, exc)

    def _report_failure(self, env: EnvSettings | None, exc: BaseException) -> None:
        if env is not None:
            self._debug(env, f"internal error, ignored: {type(exc).__name__}: {exc}")

    @staticmethod
    def _debug(env: EnvSettings, message: str) -> None:
        if env.debug:
            _write_stderr(DEBUG_PREFIX + message + "\n")


def _write_stderr(text: str) -> None:
    """Debug output that cannot fail: stderr may be closed, None, or a broken pipe."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:  # nothing of ours may reach the user as an error
        pass


class TelemetryGroup(click.Group):
    """The ``telemetry`` group, whose subcommands are built only when it is used.

    Every run of the host tool registers this group, but only the runs that use it need
    its subcommands and their imports (json, paths, config): command.py loads on demand.
    """

    def __init__(self, telemetry: Telemetry, name: str) -> None:
        from .instrument import INTERNAL

        super().__init__(name, help=f"Show or change what {telemetry.tool} records about its use.")
        self._telemetry = telemetry
        self._built: dict[str, click.Command] | None = None
        setattr(self, INTERNAL, True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return ["disable", "enable", "status"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self._built is None:
            from .command import telemetry_commands

            self._built = telemetry_commands(self._telemetry)
        return self._built.get(cmd_name)


def _configuration_error(message: str) -> ConfigurationError:
    from .errors import ConfigurationError  # only an author's mistake pays for the import

    return ConfigurationError(message)


def _is_tool_name(tool: object) -> bool:
    """1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit (no regex: see spool)."""
    return (
        isinstance(tool, str)
        and 0 < len(tool) <= 64
        and tool[0] not in "-_"
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-_" for c in tool)
    )


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
