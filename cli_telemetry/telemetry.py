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

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from ._record import Record
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._ids import Ids
    from ._paths import Paths
    from ._settings import ConsentMode, Decision, EnvSettings, Source
    from .events import Scalar
    from .instrument import Run
    from .spool import Spool

C = TypeVar("C", bound=click.Command)

DEBUG_PREFIX: Final = "cli-telemetry: "
MAX_EVENT_BYTES: Final = 8192  # events.MAX_EVENT_BYTES, repeated to keep events.py lazy


class Status(Record):
    """What ``<tool> telemetry status`` reports; also useful to authors in tests."""

    __slots__ = (
        "config_file",
        "dropped",
        "enabled",
        "install_id",
        "pending",
        "reason",
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
    ) -> None:
        self.enabled: Final = enabled
        self.source: Final = source
        self.reason: Final = reason
        self.install_id: Final = install_id
        self.config_file: Final = config_file
        self.spool_dir: Final = spool_dir
        self.pending: Final = pending
        self.dropped: Final = dropped


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
        consent: ConsentMode = "notice",
        privacy_url: str | None = None,
        policy_version: int = 1,
        strict: bool = False,
        max_events: int = 1000,
        max_bytes: int = 2_000_000,
    ) -> None:
        if not _is_tool_name(tool):
            raise ConfigurationError(
                f"tool name {tool!r} must be 1-64 lowercase letters, digits, '-' or '_'"
            )
        if consent not in ("notice", "prompt"):
            raise ConfigurationError(f"consent must be 'notice' or 'prompt', not {consent!r}")
        if type(policy_version) is not int or policy_version < 1:
            raise ConfigurationError("policy_version must be a whole number of at least 1")
        if not isinstance(version, str) or not version:
            raise ConfigurationError("version must be a non-empty string")
        if max_events < 1 or max_bytes < MAX_EVENT_BYTES:
            raise ConfigurationError(
                f"max_events must be at least 1 and max_bytes at least {MAX_EVENT_BYTES}"
            )
        self.tool = tool
        self.version = version
        self.endpoint = endpoint
        self.consent: ConsentMode = consent
        self.privacy_url = privacy_url
        self.policy_version = policy_version
        self.strict = strict
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.env_prefix = tool.upper().replace("-", "_")
        self._runs: list[Run] = []

    # -- the author's API --------------------------------------------------------------

    def instrument(self, command: C) -> C:
        """Record every invocation of ``command`` (a click command or group); returns it."""
        from .instrument import instrument

        instrument(command, self)
        return command

    def command(self, name: str = "telemetry") -> click.Group:
        """The ``telemetry status|enable|disable`` group, to add to the tool's group."""
        return TelemetryGroup(self, name)

    def track(self, event: str, properties: dict[str, Scalar] | None = None) -> None:
        """Record a custom event with JSON-scalar properties.

        Inside an instrumented command the event is recorded after the command, under the
        same consent; outside one it is recorded at once if telemetry is on. Bad arguments
        raise TypeError/ValueError only in strict mode; an end user's run drops the event
        and says why in the debug output.
        """
        from ._settings import EnvSettings
        from .events import check_custom_event

        env = EnvSettings.read(self.env_prefix)
        try:
            checked = check_custom_event(event, properties)
        except (TypeError, ValueError) as exc:
            if self.strict or env.strict:
                raise
            self._debug(env, f"dropped custom event: {exc}")
            return
        timestamp = _iso_now()
        if self._runs:
            self._runs[-1].custom.append((event, checked, timestamp))
            return
        with self._guard(env):
            from . import _paths

            paths = _paths.resolve(self.tool)
            decision = self._decide(env, paths)
            base = self._base_fields(self.tool, timestamp)
            self._deliver(
                env, paths, decision, [self._custom_event(base, event, checked, timestamp)]
            )

    def status(self) -> Status:
        """The current decision, ids and spool, as ``telemetry status`` shows them."""
        from . import _paths
        from ._ids import read_ids
        from ._settings import EnvSettings

        env = EnvSettings.read(self.env_prefix)
        paths = _paths.resolve(self.tool)
        decision = self._decide(env, paths)
        ids = read_ids(paths.ids_file)
        stats = self.spool(paths).stats()
        return Status(
            enabled=decision.enabled,
            source=decision.source,
            reason=decision.reason,
            install_id=ids.install_id if ids else None,
            config_file=paths.config_file,
            spool_dir=paths.spool_dir,
            pending=stats.pending,
            dropped=stats.dropped,
        )

    def spool(self, paths: Paths | None = None) -> Spool:
        """This tool's spool (the uploader's side: claim, ack, release)."""
        from . import _paths
        from ._settings import EnvSettings
        from .spool import Spool

        paths = paths or _paths.resolve(self.tool)
        env = EnvSettings.read(self.env_prefix)
        return Spool(
            paths.spool_dir,
            max_events=self.max_events,
            max_bytes=self.max_bytes,
            report=lambda message: self._debug(env, message),
        )

    # -- the end of an invocation (called by instrument.py) ----------------------------

    def _finish(self, run: Run) -> None:
        from ._settings import EnvSettings

        duration_ms = int((time.perf_counter() - run.started) * 1000)
        env = EnvSettings.read(self.env_prefix)
        if run.internal or not run.parsed:
            return
        if (env.do_not_track or env.disabled) and not env.debug:
            return  # decided by the environment: nothing more to read, import or write
        with self._guard(env):
            self._record_run(run, env, duration_ms)

    def _record_run(self, run: Run, env: EnvSettings, duration_ms: int) -> None:
        from . import _paths, capture

        paths = _paths.resolve(self.tool)
        decision = self._decide(env, paths)
        if not env.debug:
            if decision.pending:
                decision = self._settle_consent(paths, decision)
            if not decision.enabled:
                return
        exc = run.exception or run.final
        exit_code = capture.exit_code_of(run.final)
        outcome, error_type = capture.classify(exc, exit_code)
        flags, values = capture.flags_and_values(run.contexts_with(exc))
        base = self._base_fields(" ".join([self.tool, *run.path]), run.timestamp)
        command_event = dict(base)
        command_event.update(
            flags=flags,
            values=values,
            exit_code=exit_code,
            outcome=outcome,
            error_type=error_type,
            duration_ms=duration_ms,
        )
        events = [command_event] + [
            self._custom_event(base, name, props, ts) for name, props, ts in run.custom
        ]
        self._deliver(env, paths, decision, events)

    def _decide(self, env: EnvSettings, paths: Paths) -> Decision:
        from ._settings import decide, load_config

        return decide(
            env,
            lambda: load_config(paths.config_file),
            self.consent,
            self.policy_version,
            self.tool,
        )

    def _settle_consent(self, paths: Paths, decision: Decision) -> Decision:
        """Show the notice or ask the question, if a person can see it; store the result."""
        from . import capture
        from ._settings import Config, Decision, save_config

        config = decision.config or Config()
        if decision.pending == "notice":
            if capture.stderr_is_tty():
                from . import consent

                consent.show_notice(self.tool, self.privacy_url)
                save_config(paths.config_file, config.with_notice(self.policy_version), self.tool)
            return decision  # nothing is recorded on the run that shows the notice
        if not capture.is_interactive() or capture.detect_ci() is not None:
            return decision
        from . import consent

        yes = consent.ask(self.tool, self.privacy_url)
        save_config(paths.config_file, config.with_choice(yes, self.policy_version), self.tool)
        if not yes:
            return Decision(False, "config", "you answered no to the question", config=config)
        return Decision(True, "config", "you answered yes to the question", config=config)

    def _deliver(
        self,
        env: EnvSettings,
        paths: Paths,
        decision: Decision,
        events: list[dict[str, Any]],
    ) -> None:
        from ._ids import Ids, hashed_machine_id, load_or_create_ids, read_ids

        if env.debug:
            import json

            from . import _paths

            ids = read_ids(paths.ids_file) or Ids(
                "(created on the first recorded event)", hashed_machine_id(self.tool)
            )
            state = "on" if decision.enabled else "off"
            verdict = "would record" if decision.enabled else "would not record"
            self._debug(
                env,
                f"{verdict}: telemetry is {state} ({decision.reason});"
                " debug mode records and sends nothing",
            )
            for event in events:
                _with_ids(event, ids)
                sys.stderr.write(json.dumps(event, separators=(",", ":")) + "\n")
            problem = _paths.unwritable(paths.spool_dir)
            if problem:
                self._debug(env, f"cannot record: {problem}")
            return
        if not decision.enabled:
            return
        from .events import encode

        ids = load_or_create_ids(paths.ids_file, self.tool)
        encoded = []
        for event in events:
            _with_ids(event, ids)
            data = encode(event).encode()
            if len(data) > MAX_EVENT_BYTES:
                self._debug(
                    env, f"dropped event {event['event']!r}: {len(data)} bytes is over the limit"
                )
                continue
            encoded.append(data)
        self.spool(paths).append(encoded)

    def _base_fields(self, command: str, timestamp: str) -> dict[str, Any]:
        from . import capture
        from .events import COMMAND_EVENT, SCHEMA_VERSION

        fields: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": "",
            "event": COMMAND_EVENT,
            "timestamp": timestamp,
            "tool": self.tool,
            "tool_version": self.version,
            "install_id": "",
            "command": command,
        }
        fields.update(capture.platform_fields())
        fields["ci"] = capture.detect_ci()
        fields["interactive"] = capture.is_interactive()
        return fields

    @staticmethod
    def _custom_event(
        base: dict[str, Any], name: str, properties: dict[str, Scalar], timestamp: str
    ) -> dict[str, Any]:
        event = dict(base)
        event.update(event=name, timestamp=timestamp, properties=properties)
        return event

    @contextmanager
    def _guard(self, env: EnvSettings) -> Iterator[None]:
        """Swallow every failure of ours (even Ctrl-C during our few ms), reporting it in debug."""
        try:
            yield
        except (Exception, KeyboardInterrupt) as exc:
            self._debug(env, f"internal error, ignored: {type(exc).__name__}: {exc}")

    @staticmethod
    def _debug(env: EnvSettings, message: str) -> None:
        if env.debug:
            try:
                sys.stderr.write(DEBUG_PREFIX + message + "\n")
            except (OSError, ValueError):
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


def _is_tool_name(tool: object) -> bool:
    """1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit (no regex: see spool)."""
    return (
        isinstance(tool, str)
        and 0 < len(tool) <= 64
        and tool[0] not in "-_"
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-_" for c in tool)
    )


def _with_ids(event: dict[str, Any], ids: Ids) -> None:
    import uuid

    event["event_id"] = str(uuid.uuid4())
    event["install_id"] = ids.install_id
    if ids.machine_id:
        event["machine_id"] = ids.machine_id


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
