"""Where events go besides (or instead of) the project's own collector: providers, described.

A running CLI never sends anything itself; its detached uploader does, in another process,
and the collector can forward too. So what an author configures in code is a *description*
of a sink, a `Provider`: the import path of the class that sends, its JSON options, and a
name. The description travels to the uploader in its environment, and only there (or in
the collector) is the sink class imported and built, with urllib3 and the mapping code. The
tool's own process imports this one small module and nothing of the providers'
implementations (``tests/test_imports.py`` holds that).

    Telemetry("acme", sinks=[PostHog(api_key="phc_..."), Segment(write_key="...")])

A custom provider is any class with a ``name``, ``send(events, deadline) -> Delivery`` and
``close()`` (`cli_telemetry.sinks.Sink`), importable by the uploader, described with its
import path: ``Provider("mypkg.telemetry:MyProvider", option=1)``.

The name keys the per-sink acknowledgement in the spool (an event leaves the spool when every
sink has it, and a sink that has it is not sent it again), so two sinks of the same kind
need two names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ._values import Record
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .sinks.base import Eraser, Sink

Option = str | int | float | bool | None | dict[str, str]
Getter = Callable[[str], "str | None"]
"""An environment variable's value, None when unset or empty."""

_TARGET: Final = r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*"
_NAME: Final = r"[a-z][a-z0-9_-]{0,31}"


class Provider(Record):
    """A sink described by the import path of its class (``"package.module:Class"``), the
    keyword options it is built with (JSON values), and a name (default: the class name,
    lowercased)."""

    __slots__ = ("name", "options", "target")

    def __init__(self, target: str, *, name: str | None = None, **options: Option) -> None:
        if not isinstance(target, str) or not re.fullmatch(_TARGET, target):
            raise ConfigurationError(f"provider {target!r} must be 'package.module:Class'")
        if name is None:
            name = target.rpartition(":")[2].lower()
        if not isinstance(name, str) or not re.fullmatch(_NAME, name):
            raise ConfigurationError(f"provider name {name!r} must match {_NAME}")
        self.target: Final = target
        self.name: Final = name
        self.options: Final[dict[str, Option]] = dict(options)

    __hash__ = None  # type: ignore[assignment]  # options is a dict

    def __repr__(self) -> str:
        # The options' names, not their values: those hold API keys and secrets, and a
        # repr ends up in logs, tracebacks and test reports.
        return f"Provider({self.target!r}, name={self.name!r}, options={sorted(self.options)})"

    def build(self) -> Sink:
        """Import the class and make the sink (in the uploader or the collector only)."""
        import importlib

        module_name, _, qualname = self.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        sink: Sink = obj(name=self.name, **self.options)
        return sink

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "name": self.name, "options": self.options}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Provider:
        return cls(str(data["target"]), name=str(data["name"]), **dict(data["options"]))


def _required(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} must be a non-empty string")
    return value


def _url(value: object, what: str) -> str:
    url = _required(value, what)
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{what} must be an http:// or https:// URL, not {url!r}")
    return url.rstrip("/")


def Collector(endpoint: str, *, token: str | None = None, name: str = "collector") -> Provider:
    """The project's own collector (``click-telemetry collector serve``), or any endpoint
    that takes the wire format: ``Telemetry(endpoint=...)`` is this provider."""
    return Provider(
        "cli_telemetry.sinks.http:HttpSink",
        name=name,
        endpoint=_url(endpoint, "endpoint"),
        token=token,
    )


def PostHog(
    api_key: str,
    *,
    host: str = "https://us.i.posthog.com",
    api: str = "batch",
    name: str = "posthog",
) -> Provider:
    """PostHog's ``POST /batch/`` (``api="batch"``, the default), or its newer
    ``POST /i/v1/analytics/events`` (``api="v1"``). ``host``: ``https://eu.i.posthog.com``
    for the EU cloud, or a self-hosted instance."""
    if api not in ("batch", "v1"):
        raise ConfigurationError(f"PostHog api must be 'batch' or 'v1', not {api!r}")
    return Provider(
        "cli_telemetry.sinks.posthog:PostHogSink",
        name=name,
        api_key=_required(api_key, "PostHog api_key"),
        host=_url(host, "PostHog host"),
        api=api,
    )


def Segment(
    write_key: str,
    *,
    host: str = "https://api.segment.io",
    user_id: str | None = None,
    name: str = "segment",
) -> Provider:
    """Segment's ``POST /v1/batch`` with the write key as basic auth user. ``host``:
    ``https://events.eu1.segmentapis.com`` for the EU workspace region. ``user_id="install"``
    also sends the install id as ``userId``, so that Segment's regulations, which delete by
    ``userId`` only, can delete it; destinations then treat each install as a known user
    (`cli_telemetry.sinks.segment`). Without it, events are anonymous and Segment cannot
    be asked to delete them."""
    return Provider(
        "cli_telemetry.sinks.segment:SegmentSink",
        name=name,
        write_key=_required(write_key, "Segment write_key"),
        host=_url(host, "Segment host"),
        **_user_id(user_id, "Segment"),
    )


def RudderStack(
    write_key: str,
    data_plane_url: str,
    *,
    user_id: str | None = None,
    name: str = "rudderstack",
) -> Provider:
    """RudderStack's ``POST /v1/batch`` on your data plane, gzip, basic auth with the
    write key. ``user_id="install"``: as for `Segment`, for RudderStack's User Suppression
    API, which names users by ``userId`` only."""
    return Provider(
        "cli_telemetry.sinks.rudderstack:RudderStackSink",
        name=name,
        write_key=_required(write_key, "RudderStack write_key"),
        data_plane_url=_url(data_plane_url, "RudderStack data_plane_url"),
        **_user_id(user_id, "RudderStack"),
    )


def _user_id(value: object, provider: str) -> dict[str, Option]:
    """The sink's ``user_id`` option: absent by default, so that an anonymous provider's
    description (and what a tool's uploader is given) is what it was before the opt-in."""
    if value is None:
        return {}
    if value != "install":
        raise ConfigurationError(f"{provider} user_id must be 'install' or None, not {value!r}")
    return {"user_id": "install"}


def Mixpanel(
    token: str,
    *,
    host: str = "https://api.mixpanel.com",
    service_account: str | None = None,
    project_id: str | None = None,
    name: str = "mixpanel",
) -> Provider:
    """Mixpanel's ``POST /track`` with the project token, or, with a service account
    (``"user:secret"``) and ``project_id``, ``POST /import`` (events of any age, strict
    validation). ``host``: ``https://api-eu.mixpanel.com`` for EU residency."""
    if (service_account is None) != (project_id is None):
        raise ConfigurationError("Mixpanel /import needs both service_account and project_id")
    if service_account is not None and ":" not in service_account:
        raise ConfigurationError("Mixpanel service_account must be 'username:secret'")
    return Provider(
        "cli_telemetry.sinks.mixpanel:MixpanelSink",
        name=name,
        token=_required(token, "Mixpanel token"),
        host=_url(host, "Mixpanel host"),
        service_account=service_account,
        project_id=project_id,
    )


def Amplitude(
    api_key: str,
    *,
    host: str = "https://api2.amplitude.com",
    api: str = "httpapi",
    name: str = "amplitude",
) -> Provider:
    """Amplitude's HTTP V2 API ``POST /2/httpapi`` (``api="httpapi"``, the default) or its
    Batch Event Upload ``POST /batch`` (``api="batch"``). ``host``:
    ``https://api.eu.amplitude.com`` for the EU data center."""
    if api not in ("httpapi", "batch"):
        raise ConfigurationError(f"Amplitude api must be 'httpapi' or 'batch', not {api!r}")
    return Provider(
        "cli_telemetry.sinks.amplitude:AmplitudeSink",
        name=name,
        api_key=_required(api_key, "Amplitude api_key"),
        host=_url(host, "Amplitude host"),
        api=api,
    )


def Webhook(url: str, *, secret: str | None = None, name: str = "webhook") -> Provider:
    """Our wire format to any URL; with a ``secret``, each request is signed (HMAC-SHA256
    over the timestamp and the body) so the receiver can verify it."""
    return Provider(
        "cli_telemetry.sinks.webhook:WebhookSink",
        name=name,
        url=_url(url, "Webhook url"),
        secret=secret,
    )


def OTLP(
    endpoint: str = "http://localhost:4318",
    *,
    headers: dict[str, str] | None = None,
    name: str = "otlp",
) -> Provider:
    """OpenTelemetry logs over OTLP/HTTP JSON: ``POST <endpoint>/v1/logs``, one log record
    per event. ``endpoint`` is the base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    return Provider(
        "cli_telemetry.sinks.otlp:OtlpSink",
        name=name,
        endpoint=_url(endpoint, "OTLP endpoint"),
        headers=dict(headers or {}),
    )


def from_environ(environ: Mapping[str, str]) -> list[Provider]:
    """The providers whose variables are set, for the collector (``collector serve``
    forwards what it stores to each): change a provider by changing a variable, not a
    release of the tool.

    ``POSTHOG_API_KEY`` [``POSTHOG_HOST``, ``POSTHOG_API``], ``SEGMENT_WRITE_KEY``
    [``SEGMENT_HOST``, ``SEGMENT_USER_ID=install``], ``MIXPANEL_TOKEN`` [``MIXPANEL_HOST``,
    ``MIXPANEL_SERVICE_ACCOUNT`` and ``MIXPANEL_PROJECT_ID``], ``AMPLITUDE_API_KEY``
    [``AMPLITUDE_HOST``, ``AMPLITUDE_API``], ``RUDDERSTACK_WRITE_KEY`` and
    ``RUDDERSTACK_DATA_PLANE_URL`` [``RUDDERSTACK_USER_ID=install``],
    ``TELEMETRY_WEBHOOK_URL`` [``TELEMETRY_WEBHOOK_SECRET``],
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` [``OTEL_EXPORTER_OTLP_HEADERS``], and
    ``TELEMETRY_PROVIDERS``: custom providers' import paths, comma-separated. An empty
    variable counts as unset; a half-configured provider is a `ConfigurationError`.
    """

    def get(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    found: list[Provider] = []
    if key := get("POSTHOG_API_KEY"):
        found.append(
            PostHog(
                key,
                host=get("POSTHOG_HOST") or "https://us.i.posthog.com",
                api=get("POSTHOG_API") or "batch",
            )
        )
    if key := get("SEGMENT_WRITE_KEY"):
        host = get("SEGMENT_HOST") or "https://api.segment.io"
        found.append(Segment(key, host=host, user_id=get("SEGMENT_USER_ID")))
    if token := get("MIXPANEL_TOKEN"):
        found.append(
            Mixpanel(
                token,
                host=get("MIXPANEL_HOST") or "https://api.mixpanel.com",
                service_account=get("MIXPANEL_SERVICE_ACCOUNT"),
                project_id=get("MIXPANEL_PROJECT_ID"),
            )
        )
    if key := get("AMPLITUDE_API_KEY"):
        found.append(
            Amplitude(
                key,
                host=get("AMPLITUDE_HOST") or "https://api2.amplitude.com",
                api=get("AMPLITUDE_API") or "httpapi",
            )
        )
    rudder_key, data_plane = get("RUDDERSTACK_WRITE_KEY"), get("RUDDERSTACK_DATA_PLANE_URL")
    if rudder_key or data_plane:
        if not (rudder_key and data_plane):
            raise ConfigurationError(
                "RudderStack needs both RUDDERSTACK_WRITE_KEY and RUDDERSTACK_DATA_PLANE_URL"
            )
        found.append(RudderStack(rudder_key, data_plane, user_id=get("RUDDERSTACK_USER_ID")))
    if url := get("TELEMETRY_WEBHOOK_URL"):
        found.append(Webhook(url, secret=get("TELEMETRY_WEBHOOK_SECRET")))
    if endpoint := get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        found.append(OTLP(endpoint, headers=otlp_headers(get("OTEL_EXPORTER_OTLP_HEADERS"))))
    for target in (get("TELEMETRY_PROVIDERS") or "").split(","):
        if target.strip():
            found.append(Provider(target.strip()))
    names = [provider.name for provider in found]
    if len(set(names)) < len(names):
        raise ConfigurationError(f"two providers have the same name: {names}")
    return found


def erasers_from_environ(environ: Mapping[str, str]) -> tuple[list[Eraser], list[str]]:
    """The erasers of the providers `from_environ` finds, for the collector: each provider's
    deletion API where the secrets it needs are set, and a one-line note for every provider
    that gets none, saying why or which variable to set (the collector logs each once).

    ``POSTHOG_PERSONAL_API_KEY`` (scope ``person:write``) and ``POSTHOG_PROJECT_ID``;
    ``MIXPANEL_GDPR_TOKEN`` (Mixpanel's GDPR API takes no service account);
    ``AMPLITUDE_SECRET_KEY``; ``SEGMENT_PUBLIC_API_TOKEN`` (a Public API token of the
    workspace); ``RUDDERSTACK_ACCESS_TOKEN`` (a service or personal access token) and
    ``RUDDERSTACK_DELETION_DESTINATIONS`` (the ids of the destinations to delete from,
    comma-separated). Each eraser calls its provider's API host, found from the sink's
    host (``POSTHOG_HOST``: PostHog Cloud's region, or the self-hosted instance itself;
    ``MIXPANEL_HOST``, ``AMPLITUDE_HOST``, ``SEGMENT_HOST``: their data residency;
    RudderStack's US host whatever the data plane) or set with ``POSTHOG_DELETION_HOST``,
    ``MIXPANEL_DELETION_HOST``, ``AMPLITUDE_DELETION_HOST``, ``SEGMENT_DELETION_HOST``,
    ``RUDDERSTACK_DELETION_HOST`` (``https://api.eu.rudderstack.com`` for the EU).
    Segment and RudderStack delete by ``userId`` only: their erasers exist only with the
    opt-in that makes the install id the ``userId`` (``SEGMENT_USER_ID=install``,
    ``RUDDERSTACK_USER_ID=install``), and without it the note names that variable. A
    tool's own webhook sink is passed deletion requests
    (`cli_telemetry.sinks.base.Forgetting`), but the collector passes none on to one; OTLP
    and custom providers have no deletion API here. Notes name variables, never
    their values.
    """

    def get(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    erasers: list[Eraser] = []
    notes: list[str] = []
    targets = set()
    for provider in from_environ(environ):
        targets.add(provider.target)
        made = _eraser(provider, get)
        if isinstance(made, str):
            notes.append(f"{provider.name}: {made}")
        else:
            erasers.append(made)
    for variable, target, wanted in _ERASER_ONLY:
        if get(variable) and target not in targets:
            notes.append(f"{variable} is set, but not {wanted}: no eraser uses it")
    return erasers, notes


_ERASER_ONLY: Final = (
    ("POSTHOG_PERSONAL_API_KEY", "cli_telemetry.sinks.posthog:PostHogSink", "POSTHOG_API_KEY"),
    ("MIXPANEL_GDPR_TOKEN", "cli_telemetry.sinks.mixpanel:MixpanelSink", "MIXPANEL_TOKEN"),
    ("AMPLITUDE_SECRET_KEY", "cli_telemetry.sinks.amplitude:AmplitudeSink", "AMPLITUDE_API_KEY"),
    ("SEGMENT_PUBLIC_API_TOKEN", "cli_telemetry.sinks.segment:SegmentSink", "SEGMENT_WRITE_KEY"),
    (
        "RUDDERSTACK_ACCESS_TOKEN",
        "cli_telemetry.sinks.rudderstack:RudderStackSink",
        "RUDDERSTACK_WRITE_KEY",
    ),
)
"""An eraser's secret, its provider, and the variable that configures that provider: an
eraser exists only beside its provider's sink (its name is the sink's)."""

_NO_ERASER: Final = {
    "cli_telemetry.sinks.webhook:WebhookSink": "no eraser: the collector passes no deletion"
    " request on to a webhook (a tool's own webhook sink is sent them)",
    "cli_telemetry.sinks.otlp:OtlpSink": "no eraser: OTLP has no deletion API; delete at the"
    " backend that stores the logs",
}


def _eraser(provider: Provider, get: Getter) -> Eraser | str:
    """``provider``'s eraser, or why it has none (a note without the provider's name)."""
    make = _ERASERS.get(provider.target)
    if make is not None:
        return make(provider, get)
    return _NO_ERASER.get(
        provider.target, "no eraser: cli-telemetry knows no deletion API for a custom provider"
    )


def _posthog_eraser(provider: Provider, get: Getter) -> Eraser | str:
    from .erasers.posthog import PostHogEraser, api_host

    key, project = get("POSTHOG_PERSONAL_API_KEY"), get("POSTHOG_PROJECT_ID")
    if not key or not project:
        missing = "POSTHOG_PROJECT_ID" if key else "POSTHOG_PERSONAL_API_KEY"
        return f"no eraser until {missing} is set"
    host = _deletion_host(get, "POSTHOG_DELETION_HOST") or api_host(str(provider.options["host"]))
    return PostHogEraser(name=provider.name, personal_api_key=key, project_id=project, host=host)


def _mixpanel_eraser(provider: Provider, get: Getter) -> Eraser | str:
    from .erasers.mixpanel import MixpanelEraser, api_host

    gdpr_token = get("MIXPANEL_GDPR_TOKEN")
    if not gdpr_token:
        return "no eraser until MIXPANEL_GDPR_TOKEN is set"
    host = _deletion_host(get, "MIXPANEL_DELETION_HOST") or api_host(str(provider.options["host"]))
    if host is None:
        return "no eraser until MIXPANEL_DELETION_HOST is set (MIXPANEL_HOST is not Mixpanel's)"
    token = str(provider.options["token"])
    return MixpanelEraser(name=provider.name, token=token, gdpr_token=gdpr_token, host=host)


def _amplitude_eraser(provider: Provider, get: Getter) -> Eraser | str:
    from .erasers.amplitude import AmplitudeEraser, api_host

    secret = get("AMPLITUDE_SECRET_KEY")
    if not secret:
        return "no eraser until AMPLITUDE_SECRET_KEY is set"
    host = _deletion_host(get, "AMPLITUDE_DELETION_HOST") or api_host(str(provider.options["host"]))
    if host is None:
        return "no eraser until AMPLITUDE_DELETION_HOST is set (AMPLITUDE_HOST is not Amplitude's)"
    api_key = str(provider.options["api_key"])
    return AmplitudeEraser(name=provider.name, api_key=api_key, secret_key=secret, host=host)


def _segment_eraser(provider: Provider, get: Getter) -> Eraser | str:
    from .erasers.segment import SegmentEraser, api_host

    if provider.options.get("user_id") != "install":
        return (
            "no eraser until SEGMENT_USER_ID=install: Segment deletes by userId only, and"
            " without it our events carry only an anonymousId"
        )
    token = get("SEGMENT_PUBLIC_API_TOKEN")
    if not token:
        return "no eraser until SEGMENT_PUBLIC_API_TOKEN is set"
    host = _deletion_host(get, "SEGMENT_DELETION_HOST") or api_host(str(provider.options["host"]))
    if host is None:
        return "no eraser until SEGMENT_DELETION_HOST is set (SEGMENT_HOST is not Segment's)"
    return SegmentEraser(name=provider.name, public_api_token=token, host=host)


def _rudderstack_eraser(provider: Provider, get: Getter) -> Eraser | str:
    from .erasers.rudderstack import RudderStackEraser

    if provider.options.get("user_id") != "install":
        return (
            "no eraser until RUDDERSTACK_USER_ID=install: RudderStack deletes by userId only,"
            " and without it our events carry only an anonymousId"
        )
    token = get("RUDDERSTACK_ACCESS_TOKEN")
    destinations = [d.strip() for d in (get("RUDDERSTACK_DELETION_DESTINATIONS") or "").split(",")]
    destinations = [d for d in destinations if d]
    if not token or not destinations:
        missing = "RUDDERSTACK_DELETION_DESTINATIONS" if token else "RUDDERSTACK_ACCESS_TOKEN"
        return f"no eraser until {missing} is set"
    host = _deletion_host(get, "RUDDERSTACK_DELETION_HOST") or "https://api.rudderstack.com"
    return RudderStackEraser(
        name=provider.name, access_token=token, destination_ids=destinations, host=host
    )


_ERASERS: Final[dict[str, Callable[[Provider, Getter], Eraser | str]]] = {
    "cli_telemetry.sinks.posthog:PostHogSink": _posthog_eraser,
    "cli_telemetry.sinks.segment:SegmentSink": _segment_eraser,
    "cli_telemetry.sinks.mixpanel:MixpanelSink": _mixpanel_eraser,
    "cli_telemetry.sinks.amplitude:AmplitudeSink": _amplitude_eraser,
    "cli_telemetry.sinks.rudderstack:RudderStackSink": _rudderstack_eraser,
}


def _deletion_host(get: Getter, variable: str) -> str | None:
    value = get(variable)
    return _url(value, variable) if value else None


def otlp_headers(value: str | None) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS``: ``key1=value1,key2=value2``, values percent-encoded
    (the OpenTelemetry SDK environment specification)."""
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for item in (value or "").split(","):
        key, sep, val = item.partition("=")
        if not item.strip():
            continue
        if not sep or not key.strip():
            raise ConfigurationError("OTEL_EXPORTER_OTLP_HEADERS must be key=value,key=value")
        headers[unquote(key.strip())] = unquote(val.strip())
    return headers
