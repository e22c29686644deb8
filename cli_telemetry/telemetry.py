"""`Telemetry`: the object a CLI author creates, and the author's whole API.

It checks the configuration once (`ConfigurationError` for the author, at import time) into a
`ToolConfig`, and hands everything after a command to `recording` and everything the end
user asks for to `command`. The host tool imports this module on every run, so it imports
almost nothing at the top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, is_typeddict

from ._settings import (
    COLLECTOR,
    UPLOAD_AFTER_EVENTS,
    UPLOAD_AFTER_SECONDS,
    Privacy,
    ToolConfig,
)
from ._values import COMMAND_EVENT, DELETION_EVENT, EVENT_NAME, OPTION, TOOL, fit_version
from ._values import IDENTIFY_EVENT as IDENTIFY

if TYPE_CHECKING:
    from typing import Generic, TypeVar

    import click
    import typer

    from ._aliases import ConsentMode
    from .catalog import EventSpec
    from .errors import ConfigurationError
    from .events import Scalar
    from .instrument import Run
    from .providers import Provider
    from .spool import Spool
    from .status import Status

    C = TypeVar("C", bound="click.Command | typer.Typer")
    """What `Telemetry.instrument` takes: a command or group of either click (the real one,
    or the copy Typer 0.26 and later bundle as ``typer._click``), or a Typer app. The
    run-time check is `cli_telemetry.instrument.instrument`'s; click is never imported for
    it. (Only a type checker needs it: a TypeVar bound by a string costs ~0.05 ms.)"""

_RESERVED = (COMMAND_EVENT, DELETION_EVENT)
"""Names of records the library makes itself, which no custom event may take."""


class Telemetry:
    """Usage telemetry for one click tool or Typer app.

    ``tool`` names the tool's directories and its environment prefix (``acme`` →
    ``ACME_TELEMETRY_DISABLED``, ``ACME_TELEMETRY_DEBUG``). ``version`` is recorded as
    ``tool_version``, fitted to the schema (`cli_telemetry._values.fit_version`: ``"1.4.0
    (dev)"`` is recorded as ``"1.4.0-dev"``). ``consent="notice"`` is opt-out after a
    one-time notice; ``"prompt"`` is opt-in, asked once. Raising ``policy_version`` shows
    the notice (or asks) again. ``strict=True`` (or ``<PREFIX>_TELEMETRY_STRICT=1``, for an
    author's test suite) makes `track` raise on bad properties instead of dropping them.

    ``record_values`` names the options (``["--format"]``) whose values are recorded, and
    then only when the value is one of the option's ``click.Choice`` (for Typer, the
    ``Enum`` or ``Literal`` it is annotated with) or a boolean: every other option is
    recorded by name only. Never name an option whose choices are built from the user's
    data (their profiles, contexts, files or plugins).

    ``upload_after_events`` and ``upload_after_seconds`` are the upload policy: a command
    starts the background uploader once that many events wait, or once the oldest has
    waited that long (20 and an hour by default; `cli_telemetry.recording.upload_due`).

    ``privacy`` (a `Privacy`) says who collects, how to reach them, why and for how long:
    ``click-telemetry schema --privacy`` writes the tool's privacy page from it and from
    this configuration.
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
        record_values: Iterable[str] = (),
        privacy: Privacy | None = None,
        upload_after_events: int = UPLOAD_AFTER_EVENTS,
        upload_after_seconds: float = UPLOAD_AFTER_SECONDS,
    ) -> None:
        if not isinstance(tool, str) or not TOOL.fits(tool):
            raise _configuration_error(f"tool name {tool!r} must be {TOOL.what}")
        if consent not in ("notice", "prompt"):
            raise _configuration_error(f"consent must be 'notice' or 'prompt', not {consent!r}")
        if type(policy_version) is not int or policy_version < 1:
            raise _configuration_error("policy_version must be a whole number of at least 1")
        if not isinstance(version, str) or not fit_version(version):
            raise _configuration_error(
                f"version {version!r} must be a string with at least one letter or digit"
            )
        if isinstance(record_values, str):
            raise _configuration_error("record_values must be a list of option names")
        record_values = frozenset(record_values)
        for name in record_values:
            if not isinstance(name, str) or not OPTION.fits(name):
                raise _configuration_error(
                    f"record_values: {name!r} must be {OPTION.what}, as your code spells it"
                )
        if privacy is not None and not isinstance(privacy, Privacy):
            raise _configuration_error(
                f"privacy must be a cli_telemetry.Privacy, not {type(privacy).__name__}"
            )
        if (max_events is not None and max_events < 1) or (max_bytes is not None and max_bytes < 1):
            raise _configuration_error("max_events and max_bytes must be at least 1")
        if type(upload_after_events) is not int or upload_after_events < 1:
            raise _configuration_error("upload_after_events must be a whole number of at least 1")
        seconds = upload_after_seconds
        if type(seconds) not in (int, float) or not 0 <= seconds < float("inf"):
            raise _configuration_error("upload_after_seconds must be 0 or more seconds")
        self._config = ToolConfig(
            tool,
            fit_version(version),
            consent=consent,
            endpoint=endpoint,
            token=token,
            privacy_url=privacy_url,
            policy_version=policy_version,
            strict=strict,
            max_events=max_events,
            max_bytes=max_bytes,
            record_values=record_values,
            privacy=privacy,
            upload_after_events=upload_after_events,
            upload_after_seconds=float(upload_after_seconds),
        )
        self._declared: dict[str, tuple[type[Any], str | None]] = {}  # custom events
        self._specs: dict[str, EventSpec] = {}  # those of them checked (see catalog)
        self._commands: list[click.Command | typer.Typer] = []  # what instrument() was given
        self._runs: list[Run] = []  # the invocations in progress, innermost last
        self._uploaders: list[int] = []  # pids this process spawned, reaped later
        # An identify made outside a command, held for the next one (see `identify`).
        self._identity: tuple[str, dict[str, Scalar], float] | None = None
        for sink in sinks:
            self.add_sink(sink)

    @property
    def config(self) -> ToolConfig:
        """The configuration as it stands (a new value after `add_sink`/`remove_sink`)."""
        return self._config

    @property
    def tool(self) -> str:
        return self._config.tool

    @property
    def version(self) -> str:
        return self._config.version

    # -- the author's API --------------------------------------------------------------

    def instrument(self, command: C) -> C:
        """Record every invocation of ``command`` (a click command or group, or a Typer
        app, however it is run: ``app()``, a console script, Typer's ``CliRunner``, which
        records in a test only under the ``telemetry_events`` fixture); returns it."""
        from .instrument import instrument

        instrument(command, self._runs, self._finish)
        if all(command is not known for known in self._commands):
            self._commands.append(command)
        return command

    def event(
        self, name: str, properties: type[P], *, description: str | None = None
    ) -> CustomEvent[P]:
        """Declare the custom event ``name`` (``noun.verb``, lowercase), its properties typed
        by ``properties`` (a ``TypedDict`` of bool, int, float and ``Literal`` values; see
        `cli_telemetry.catalog`), described by that class's docstring (or
        ``description``). Returns the event, to record with ``.track({...})``, which mypy
        checks against the ``TypedDict``. Declare ``identify`` to allow traits.

        Only declared events are recorded; ``click-telemetry schema`` lists them for your
        users. A bad name raises `ConfigurationError` here. A property that could record
        free text (or that the schema cannot hold) is found when the event is first used:
        ``click-telemetry schema`` and strict mode raise `ConfigurationError` then (strict
        mode checks here already); an end user's run drops the event and says why in the
        debug output."""
        if not isinstance(name, str) or not EVENT_NAME.fits(name) or name in _RESERVED:
            raise _configuration_error(
                f"event name {name!r} must be {EVENT_NAME.what}, and not one of {_RESERVED}"
            )
        if not is_typeddict(properties):
            raise _configuration_error(
                f"{name}: declare its properties with a TypedDict class, not {properties!r}"
            )
        if name in self._declared:
            raise _configuration_error(f"the event {name!r} is declared twice")
        self._declared[name] = (properties, description)
        if self._strict():
            self._spec(name)
        return CustomEvent(name, self.track if name != IDENTIFY else self._identify_any)

    @property
    def catalog(self) -> tuple[EventSpec, ...]:
        """The declared custom events, in the order they were declared, each checked
        (`ConfigurationError` for a declaration that could record what it must not)."""
        return tuple(self._spec(name) for name in self._declared)

    def _spec(self, name: str) -> EventSpec:
        """The checked declaration of ``name``; ValueError if it is not declared."""
        spec = self._specs.get(name)
        if spec is None:
            if name not in self._declared:
                raise ValueError(
                    f"{name!r} is not declared: declare it with"
                    f" telemetry.event({name!r}, ATypedDict)"
                )
            from .catalog import declare

            spec = self._specs[name] = declare(name, *self._declared[name])
        return spec

    def _strict(self) -> bool:
        from ._settings import EnvSettings

        return self._config.strict or EnvSettings.read(self._config.env_prefix).strict

    @property
    def commands(self) -> tuple[click.Command | typer.Typer, ...]:
        """The commands and Typer apps instrumented with this object (what ``click-telemetry
        schema`` walks to list the recorded option values)."""
        return tuple(self._commands)

    def declare_commands(self, group: click.Group, names: Iterable[str]) -> None:
        """Record these subcommand names of ``group``, which resolves them at run time
        (lazy loading) rather than registering them in ``group.commands``.

        Without this, a subcommand that is not in ``group.commands`` is recorded as
        ``<unlisted>``: a word a group resolves at run time may be the user's own (a plugin
        found on PATH, an alias from their config). Name only commands written in your
        code."""
        from ._values import WORD
        from .instrument import declare_commands

        names = list(names) if not isinstance(names, str) else [names]
        for name in names:
            if not isinstance(name, str) or not WORD.fits(name) or name.startswith("<"):
                raise _configuration_error(f"command name {name!r} must be {WORD.what}")
        declare_commands(group, names)

    def command(self, name: str = "telemetry") -> click.Group:
        """The ``telemetry status|enable|disable`` group, to add to the tool's click group
        (``cli.add_command(telemetry.command())``).

        Every run registers it, and only the runs that use it build its subcommands
        (`cli_telemetry.command`). ``config`` is read when they run: `add_sink` may
        change it after the group was made."""
        import click

        from .instrument import INTERNAL

        config = self._config_now

        class TelemetryGroup(click.Group):
            built: dict[str, click.Command] | None = None

            def list_commands(self, ctx: click.Context) -> list[str]:
                return list(_SUBCOMMANDS)

            def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
                if self.built is None:
                    from .command import click_commands

                    self.built = click_commands(config)
                return self.built.get(cmd_name)

        group = TelemetryGroup(name, help=_group_help(self.tool))
        setattr(group, INTERNAL, True)
        return group

    def typer_app(self, name: str = "telemetry") -> typer.Typer:
        """The same group for a Typer app: ``app.add_typer(telemetry.typer_app(),
        name="telemetry")``.

        Typer builds the group from this app on every run, as an instance of the class it
        names: that class builds the subcommands when the group is used, and is marked as
        the library's own, so nothing of its use is recorded."""
        import typer
        from typer.core import TyperGroup

        from .instrument import INTERNAL

        config = self._config_now

        class TelemetryGroup(TyperGroup):
            built: dict[str, Any] | None = None

            def list_commands(self, ctx: Any) -> list[str]:
                return list(_SUBCOMMANDS)

            def get_command(self, ctx: Any, cmd_name: str) -> Any:
                if self.built is None:
                    from .command import typer_commands

                    self.built = typer_commands(config)
                return self.built.get(cmd_name)

        setattr(TelemetryGroup, INTERNAL, True)
        return typer.Typer(name=name, cls=TelemetryGroup, help=_group_help(self.tool))

    def _config_now(self) -> ToolConfig:
        return self._config

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
        if name in self._config.sink_names():
            raise _configuration_error(f"two sinks are named {name!r}: give one another name")
        self._config = self._config.replace(sinks=(*self._config.sinks, sink))

    def remove_sink(self, name: str) -> bool:
        """Stop sending to the sink named ``name``; False if there was none. Events that
        only it lacked leave the spool at the next upload."""
        config = self._config
        kept = tuple(sink for sink in config.sinks if sink.name != name)
        removed = len(kept) < len(config.sinks)
        endpoint = config.endpoint
        if name == COLLECTOR and endpoint:
            endpoint = None
            removed = True
        self._config = config.replace(sinks=kept, endpoint=endpoint)
        return removed

    def sink_names(self) -> list[str]:
        """The sinks' names, the collector (``endpoint``) first."""
        return self._config.sink_names()

    def track(self, event: str, properties: Mapping[str, Scalar] | None = None) -> None:
        """Record the declared custom event ``event`` with ``properties``, checked against
        its declaration (see `event`).

        Inside an instrumented command the event is recorded after the command, under the
        same consent; outside one it is recorded at once if telemetry is on. An undeclared
        event or bad properties raise TypeError/ValueError only in strict mode; an end
        user's run drops the event and says why in the debug output.
        """
        self._record_custom(event, properties, identify=False)

    def identify(self, traits: Mapping[str, Scalar]) -> None:
        """Record anonymous traits of this installation (``{"plan": "pro"}``), declared with
        ``telemetry.event("identify", Traits)``, which the providers that have the notion
        attach to the install id (PostHog person properties, Segment and RudderStack
        identify, Mixpanel profiles, Amplitude user properties).

        Call it on every run, at module level or in a command: an identify is recorded
        only when its traits differ from the last one recorded for this install id (a
        fingerprint in the state directory, `cli_telemetry._identified`), so the providers
        get one per change, not one per run. It is recorded with a command, under that
        command's consent: inside one, with it; outside one (at module level), with the
        next command this process runs, if that command is recorded (the ``telemetry``
        subcommands and shell completion are not), and not at all if the process runs
        none (a test or a documentation tool that imports the module)."""
        self._record_custom(IDENTIFY, traits, identify=True)

    def _identify_any(self, name: str, traits: Any) -> None:
        self._record_custom(IDENTIFY, traits, identify=True)

    def status(self) -> Status:
        """The current decision, ids and spool, as ``telemetry status`` shows them."""
        from .status import read_status

        return read_status(self._config)

    def spool(self) -> Spool:
        """This tool's spool (the uploader's side: claim, ack, release)."""
        from . import _paths
        from .recording import open_spool

        return open_spool(self._config, _paths.resolve(self._config.tool))

    # -- the pipeline's entry points -------------------------------------------------------

    def _finish(self, run: Run) -> None:
        """After a command: record it, unless the environment alone says not to (then
        nothing more is read, imported or written). Never raises.

        An identify made before the command (`identify`) goes with it: recorded if the
        command is, dropped if not."""
        try:
            if self._identity is not None:
                run.custom.insert(0, self._identity)
                self._identity = None
            from ._settings import EnvSettings

            env = EnvSettings.read(self._config.env_prefix)
            if (env.do_not_track or env.disabled) and not env.debug:
                return
            from .recording import finish
        except (Exception, KeyboardInterrupt):  # nowhere to report: debug is not known
            return
        finish(self._config, run, env, self._uploaders)

    def _record_custom(self, event: object, properties: object, *, identify: bool) -> None:
        import time

        from ._settings import EnvSettings

        env = EnvSettings.read(self._config.env_prefix)
        strict = self._config.strict or env.strict
        if (env.do_not_track or env.disabled) and not (env.debug or strict):
            return  # nothing would be recorded: no need to check it either
        try:
            if not isinstance(event, str):
                raise TypeError(f"event name must be a str, not {type(event).__name__}")
            if (event == IDENTIFY) != identify:
                raise ValueError(f"use Telemetry.identify for traits, not an event named {event!r}")
            checked = self._spec(event).check(properties)
        except (TypeError, ValueError) as exc:
            if strict:
                raise
            env.report(f"dropped custom event: {exc}")
            return
        if self._runs:  # recorded with the command, under its consent
            self._runs[-1].custom.append((event, checked, time.time()))
            return
        if identify:  # held for the next command (see `identify`)
            self._identity = (event, checked, time.time())
            return
        from .recording import record_custom

        record_custom(self._config, (event, checked, time.time()), self._uploaders)


class _CustomEvent:
    """`CustomEvent` as it runs: a plain class. Subclassing ``typing.Generic`` costs ~0.05
    ms at import, and its type parameter ~0.02 ms more, on every run of a tool that
    declares an event, for what only a type checker reads; ``CustomEvent[X]`` still works
    at run time (in an annotation that is evaluated, say) and means ``CustomEvent``."""

    __slots__ = ("_track", "name")

    def __init__(self, name: str, track: Callable[[str, Any], None]) -> None:
        self.name = name
        self._track = track

    def track(self, properties: Any) -> None:
        self._track(self.name, properties)

    def __class_getitem__(cls, item: object) -> type[_CustomEvent]:
        return cls


if TYPE_CHECKING:
    P = TypeVar("P", bound=Mapping[str, object])

    class CustomEvent(Generic[P]):
        """A declared custom event (`Telemetry.event`): ``track`` records it, and mypy
        checks its properties against the event's ``TypedDict``."""

        name: str

        def __init__(self, name: str, track: Callable[[str, Any], None]) -> None: ...

        def track(self, properties: P) -> None:
            """Record this event with ``properties`` (see `Telemetry.track`)."""

else:
    CustomEvent = _CustomEvent


_SUBCOMMANDS: Final = ("disable", "enable", "status")


def _group_help(tool: str) -> str:
    return f"Show or change what {tool} records about its use."


def _configuration_error(message: str) -> ConfigurationError:
    from .errors import ConfigurationError  # only an author's mistake pays for the import

    return ConfigurationError(message)
