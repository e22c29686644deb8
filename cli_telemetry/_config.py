"""`ToolConfig`: what the author configured, as one immutable value.

`Telemetry` checks the author's arguments once and keeps the result here; every later stage
(recording, consent, status, the ``telemetry`` commands, the uploader's options) reads this
value and nothing else of `Telemetry`, so none of them imports it. A change at run time
(`Telemetry.add_sink`) makes a new value, as urllib3's ``Timeout`` and ``Retry`` do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ._record import Record

if TYPE_CHECKING:
    from ._settings import ConsentMode, EnvSettings
    from .providers import Provider

COLLECTOR: Final = "collector"
COLLECTOR_TARGET: Final = "cli_telemetry.sinks.http:HttpSink"
"""The sink ``endpoint`` describes (`cli_telemetry.providers.Collector`), spelled out here
so that a tool without other sinks never imports the providers module."""


class ToolConfig(Record):
    """One tool's telemetry configuration (see `cli_telemetry.Telemetry` for each field)."""

    __slots__ = (
        "consent",
        "endpoint",
        "env_prefix",
        "max_bytes",
        "max_events",
        "policy_version",
        "privacy_url",
        "record_values",
        "sinks",
        "strict",
        "token",
        "tool",
        "version",
    )

    def __init__(
        self,
        tool: str,
        version: str,
        *,
        consent: ConsentMode = "notice",
        endpoint: str | None = None,
        token: str | None = None,
        privacy_url: str | None = None,
        policy_version: int = 1,
        strict: bool = False,
        max_events: int | None = None,
        max_bytes: int | None = None,
        sinks: tuple[Provider, ...] = (),
        record_values: frozenset[str] = frozenset(),
    ) -> None:
        self.tool: Final = tool
        self.version: Final = version
        self.env_prefix: Final = tool.upper().replace("-", "_")
        self.consent: Final[ConsentMode] = consent
        self.endpoint: Final = endpoint
        self.token: Final = token
        self.privacy_url: Final = privacy_url
        self.policy_version: Final = policy_version
        self.strict: Final = strict
        self.max_events: Final = max_events
        self.max_bytes: Final = max_bytes
        self.sinks: Final = sinks
        self.record_values: Final = record_values

    def replace(self, **changes: Any) -> ToolConfig:
        """A copy with ``changes`` (the derived ``env_prefix`` follows ``tool``)."""
        fields = {name: getattr(self, name) for name in self.__slots__ if name != "env_prefix"}
        fields.update(changes)
        return ToolConfig(**fields)

    def sink_names(self) -> list[str]:
        """The sinks' names, the collector (``endpoint``) first."""
        return ([COLLECTOR] if self.endpoint else []) + [sink.name for sink in self.sinks]

    def sink_specs(self, env: EnvSettings) -> list[dict[str, Any]]:
        """What the uploader builds its sinks from (see `cli_telemetry.providers`): the
        collector at ``endpoint`` (or ``<PREFIX>_TELEMETRY_ENDPOINT``), then the others."""
        specs = [sink.to_json() for sink in self.sinks]
        endpoint = env.endpoint or self.endpoint
        if endpoint:
            options = {"endpoint": endpoint, "token": env.token or self.token}
            collector = {"target": COLLECTOR_TARGET, "name": COLLECTOR, "options": options}
            specs = [collector, *(spec for spec in specs if spec["name"] != COLLECTOR)]
        return specs
