"""`Telemetry`: the object a CLI author creates, and the author's whole API.

It checks the configuration once (`ConfigurationError` for the author, at import time) into a
`ToolConfig`, and hands everything after a command to `recording` and everything the end
user asks for to `command`. The host tool imports this module on every run, so it imports
almost nothing at the top.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import click

from ._config import COLLECTOR, ToolConfig

if TYPE_CHECKING:
    from ._settings import ConsentMode
    from .command import TelemetryGroup
    from .errors import ConfigurationError
    from .events import Scalar
    from .instrument import Run
    from .providers import Provider
    from .spool import Spool
    from .status import Status

C = TypeVar("C", bound=click.Command)


class Telemetry:
    """Usage telemetry for one click tool.

    ``tool`` names the tool's directories and its environment prefix (``acme`` →
    ``ACME_TELEMETRY_DISABLED``, ``ACME_TELEMETRY_DEBUG``). ``version`` is recorded as
    ``tool_version``, fitted to the schema (`cli_telemetry.events.fit_version`: ``"1.4.0
    (dev)"`` is recorded as ``"1.4.0-dev"``). ``consent="notice"`` is opt-out after a
    one-time notice; ``"prompt"`` is opt-in, asked once. Raising ``policy_version`` shows
    the notice (or asks) again. ``strict=True`` (or ``<PREFIX>_TELEMETRY_STRICT=1``, for an
    author's test suite) makes `track` raise on bad properties instead of dropping them.

    ``record_values`` names the options (``["--format"]``) whose values are recorded, and
    then only when the value is one of the option's ``click.Choice`` (or a boolean): every
    other option is recorded by name only. Never name an option whose choices are built
    from the user's data (their profiles, contexts, files or plugins).
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
    ) -> None:
        from .events import OPTION, TOOL, fit_version

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
        if (max_events is not None and max_events < 1) or (max_bytes is not None and max_bytes < 1):
            raise _configuration_error("max_events and max_bytes must be at least 1")
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
        )
        self._runs: list[Run] = []  # the invocations in progress, innermost last
        self._uploaders: list[int] = []  # pids this process spawned, reaped later
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
        """Record every invocation of ``command`` (a click command or group); returns it."""
        from .instrument import instrument

        instrument(command, self._runs, self._finish)
        return command

    def declare_commands(self, group: click.Group, names: Iterable[str]) -> None:
        """Record these subcommand names of ``group``, which resolves them at run time
        (lazy loading) rather than registering them in ``group.commands``.

        Without this, a subcommand that is not in ``group.commands`` is recorded as
        ``<unlisted>``: a word a group resolves at run time may be the user's own (a plugin
        found on PATH, an alias from their config). Name only commands written in your
        code."""
        from .events import WORD
        from .instrument import declare_commands

        names = list(names) if not isinstance(names, str) else [names]
        for name in names:
            if not isinstance(name, str) or not WORD.fits(name) or name.startswith("<"):
                raise _configuration_error(f"command name {name!r} must be {WORD.what}")
        declare_commands(group, names)

    def command(self, name: str = "telemetry") -> TelemetryGroup:
        """The ``telemetry status|enable|disable`` group, to add to the tool's group."""
        from .command import TelemetryGroup

        return TelemetryGroup(lambda: self._config, name)

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
        from .recording import finish

        finish(self._config, run, self._uploaders)

    def _record_custom(self, event: str, properties: object, *, identify: bool) -> None:
        from ._debug import debug
        from ._settings import EnvSettings
        from .events import check_custom_event, iso_now

        env = EnvSettings.read(self._config.env_prefix)
        try:
            checked = check_custom_event(event, properties, identify=identify)
        except (TypeError, ValueError) as exc:
            if self._config.strict or env.strict:
                raise
            debug(env, f"dropped custom event: {exc}")
            return
        if self._runs:  # recorded with the command, under its consent
            self._runs[-1].custom.append((event, checked, iso_now()))
            return
        from .recording import record_custom

        record_custom(self._config, (event, checked, iso_now()), self._uploaders)


def _configuration_error(message: str) -> ConfigurationError:
    from .errors import ConfigurationError  # only an author's mistake pays for the import

    return ConfigurationError(message)
