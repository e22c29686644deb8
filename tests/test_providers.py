"""Providers described in the tool's process, and a tool's sinks (`Telemetry(sinks=...)`).

The sinks themselves are tested against fake services in tests/test_sink_*.py, and through
the real uploader in tests/test_providers_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict

import click
import pytest
from click.testing import CliRunner

from cli_telemetry import Telemetry
from cli_telemetry._settings import EnvSettings
from cli_telemetry.errors import ConfigurationError
from cli_telemetry.providers import (
    OTLP,
    Amplitude,
    Collector,
    Mixpanel,
    PostHog,
    Provider,
    RudderStack,
    Segment,
    Webhook,
)
from cli_telemetry.sinks import Sink


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_a_user: None) -> Iterator[Path]:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "DO_NOT_TRACK", "ACME_TELEMETRY_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / ".config" / "acme"
    config.mkdir(parents=True)
    (config / "telemetry.conf").write_text("enabled = true\nconsent_policy = 1\n")
    yield tmp_path


def every_provider() -> list[Provider]:
    return [
        Collector("https://telemetry.example.com/v1/events", token="t"),
        PostHog(api_key="phc_x", host="https://eu.i.posthog.com"),
        PostHog(api_key="phc_y", api="v1", name="posthog-v1"),
        Segment(write_key="w"),
        RudderStack(write_key="w", data_plane_url="https://acme.dataplane.rudderstack.com"),
        Mixpanel(token="t"),
        Mixpanel(token="t", service_account="sa.user:secret", project_id="42", name="mp-import"),
        Amplitude(api_key="k"),
        Amplitude(api_key="k", api="batch", name="amplitude-batch"),
        Webhook(url="https://hooks.example.com/in", secret="s"),
        OTLP(headers={"api-key": "x"}),
    ]


@pytest.mark.parametrize("provider", every_provider(), ids=lambda p: p.name)
def test_every_provider_builds_from_its_description_after_a_round_trip(
    provider: Provider,
) -> None:
    again = Provider.from_json(json.loads(json.dumps(provider.to_json())))
    assert again == provider
    sink = again.build()
    try:
        assert isinstance(sink, Sink)
        assert sink.name == provider.name
    finally:
        sink.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda: PostHog(api_key=""),
        lambda: PostHog(api_key="k", api="v2"),
        lambda: PostHog(api_key="k", host="eu.i.posthog.com"),
        lambda: Segment(write_key=None),  # type: ignore[arg-type]
        lambda: RudderStack(write_key="w", data_plane_url="ftp://x"),
        lambda: Mixpanel(token="t", service_account="user:secret"),
        lambda: Mixpanel(token="t", service_account="no-colon", project_id="1"),
        lambda: Amplitude(api_key="k", api="v1"),
        lambda: Webhook(url="not a url"),
        lambda: Provider("no-colon"),
        lambda: Provider("pkg.mod:Cls", name="Bad Name"),
    ],
)
def test_a_bad_provider_configuration_is_the_authors_error(make: Any) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_sinks_can_be_added_and_removed_and_names_are_unique(home: Path) -> None:
    telemetry = Telemetry(
        "acme", version="1", endpoint="https://c.example.com/v1/events", sinks=[Segment("w")]
    )
    assert telemetry.sink_names() == ["collector", "segment"]
    telemetry.add_sink("mypkg.telemetry:MyProvider")
    assert telemetry.sink_names() == ["collector", "segment", "myprovider"]
    with pytest.raises(ConfigurationError, match="two sinks"):
        telemetry.add_sink(Segment("other"))
    with pytest.raises(ConfigurationError, match="two sinks"):
        telemetry.add_sink(Collector("https://d.example.com"))
    with pytest.raises(ConfigurationError):
        telemetry.add_sink(object())  # type: ignore[arg-type]
    assert telemetry.remove_sink("segment") is True
    assert telemetry.remove_sink("segment") is False
    assert telemetry.remove_sink("collector") is True
    assert telemetry.sink_names() == ["myprovider"]


def test_the_uploader_is_told_every_sink_the_collector_first(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = Telemetry("acme", version="1", endpoint="https://c.example.com", token="t",
                          sinks=[PostHog("phc_x")])  # fmt: skip
    specs = telemetry.config.sink_specs(EnvSettings.read("ACME"))
    assert [spec["name"] for spec in specs] == ["collector", "posthog"]
    assert specs[0]["options"] == {"endpoint": "https://c.example.com", "token": "t"}
    assert Provider.from_json(specs[0]) == Collector("https://c.example.com", token="t")
    # The end user's variable points the collector elsewhere; the other sinks stay.
    monkeypatch.setenv("ACME_TELEMETRY_ENDPOINT", "http://127.0.0.1:9/v1/events")
    specs = telemetry.config.sink_specs(EnvSettings.read("ACME"))
    assert [spec["name"] for spec in specs] == ["collector", "posthog"]
    assert specs[0]["options"]["endpoint"] == "http://127.0.0.1:9/v1/events"
    assert Telemetry("acme", version="1").config.sink_specs(EnvSettings.read("NONE")) == []


def spooled(home: Path) -> list[dict[str, Any]]:
    spool = home / ".local" / "state" / "acme" / "telemetry" / "spool" / "new"
    return [json.loads(path.read_text()) for path in sorted(spool.iterdir())]


class Traits(TypedDict, total=False):
    """This installation's plan and size."""

    plan: Literal["free", "pro"]
    seats: int


def test_identify_records_anonymous_traits_as_an_identify_event(home: Path) -> None:
    telemetry = Telemetry("acme", version="1")
    telemetry.event("identify", Traits)

    @telemetry.instrument
    @click.command()
    def cli() -> None:
        telemetry.identify({"plan": "pro", "seats": 5})

    assert CliRunner().invoke(cli, []).exit_code == 0
    command, identify = spooled(home)
    assert command["event"] == "command"
    assert (identify["event"], identify["properties"]) == ("identify", {"plan": "pro", "seats": 5})
    assert identify["install_id"] == command["install_id"]


def test_identify_takes_only_declared_traits_and_track_cannot_pose_as_it(home: Path) -> None:
    telemetry = Telemetry("acme", version="1", strict=True)
    with pytest.raises(ValueError, match="not declared"):
        telemetry.identify({"plan": "pro"})
    telemetry.event("identify", Traits)
    with pytest.raises(ValueError, match="'where' is not a declared property"):
        telemetry.identify({"where": Path("/home/x")})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="identify"):
        telemetry.track("identify", {"plan": "pro"})
    lenient = Telemetry("acme", version="1")
    lenient.event("identify", Traits)
    lenient.track("identify", {"plan": "pro"})  # dropped, silently
    lenient.identify({"plan": "pro"})  # held for the next command

    @lenient.instrument
    @click.command()
    def cli() -> None:
        pass

    assert CliRunner().invoke(cli, []).exit_code == 0
    assert [event["event"] for event in spooled(home)] == ["command", "identify"]


def test_the_collector_finds_its_providers_in_its_environment() -> None:
    from cli_telemetry.providers import from_environ

    assert from_environ({}) == []
    assert from_environ({"POSTHOG_API_KEY": " ", "SEGMENT_WRITE_KEY": ""}) == []
    environ = {
        "POSTHOG_API_KEY": "phc_x",
        "POSTHOG_HOST": "https://eu.i.posthog.com",
        "SEGMENT_WRITE_KEY": "w",
        "MIXPANEL_TOKEN": "t",
        "AMPLITUDE_API_KEY": "k",
        "AMPLITUDE_HOST": "https://api.eu.amplitude.com",
        "RUDDERSTACK_WRITE_KEY": "r",
        "RUDDERSTACK_DATA_PLANE_URL": "https://acme.dataplane.rudderstack.com",
        "TELEMETRY_WEBHOOK_URL": "https://hooks.example.com/in",
        "TELEMETRY_WEBHOOK_SECRET": "s",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,x-tenant=acme",
        "TELEMETRY_PROVIDERS": "mypkg.telemetry:MyProvider, other.mod:Sink",
    }
    assert from_environ(environ) == [
        PostHog("phc_x", host="https://eu.i.posthog.com"),
        Segment("w"),
        Mixpanel("t"),
        Amplitude("k", host="https://api.eu.amplitude.com"),
        RudderStack("r", "https://acme.dataplane.rudderstack.com"),
        Webhook("https://hooks.example.com/in", secret="s"),
        OTLP("http://otel:4318", headers={"api-key": "a b", "x-tenant": "acme"}),
        Provider("mypkg.telemetry:MyProvider"),
        Provider("other.mod:Sink"),
    ]


@pytest.mark.parametrize(
    "environ",
    [
        {"RUDDERSTACK_WRITE_KEY": "r"},
        {"RUDDERSTACK_DATA_PLANE_URL": "https://x.example.com"},
        {"MIXPANEL_TOKEN": "t", "MIXPANEL_SERVICE_ACCOUNT": "u:s"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_EXPORTER_OTLP_HEADERS": "x"},
        {"TELEMETRY_PROVIDERS": "a.b:C,a.b:C"},
        {"POSTHOG_API_KEY": "k", "POSTHOG_API": "v9"},
    ],
)
def test_a_half_configured_provider_is_an_error(environ: dict[str, str]) -> None:
    from cli_telemetry.providers import from_environ

    with pytest.raises(ConfigurationError):
        from_environ(environ)


def test_a_providers_repr_names_its_options_but_shows_no_secret() -> None:
    from cli_telemetry.providers import Mixpanel, PostHog, Webhook

    for provider in (
        PostHog("phc_secret_key"),
        Webhook("https://hooks.example/x", secret="whsec_secret"),
        Mixpanel("tok_secret", service_account="user:sa_secret", project_id="1"),
    ):
        text = repr(provider)
        assert "secret" not in text.replace("'secret'", ""), text
        assert provider.name in text
