"""Every provider through the real path: a tool process records, its detached uploader sends,
and a fake service on loopback checks each request as the real service would.

The fakes (tests/fake_*.py) refuse what the service would refuse, and keep each stored item
normalized (kind, name, distinct id, de-duplication id, time), so one test can speak of all
providers at once. What each request looks like byte for byte is in tests/test_sink_*.py.
"""

from __future__ import annotations

import calendar
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool, poll, script_tool
from fake_amplitude import API_KEY as AMPLITUDE_KEY
from fake_amplitude import FakeAmplitude
from fake_mixpanel import PROJECT_ID, SERVICE_ACCOUNT, FakeMixpanel
from fake_mixpanel import TOKEN as MIXPANEL_TOKEN
from fake_otlp import FakeOtlp
from fake_posthog import TEST_KEY as POSTHOG_KEY
from fake_posthog import FakePostHog
from fake_segment import RUDDER_KEY, SEGMENT_KEY, FakeRudderStack, FakeSegment
from fake_service import FakeService
from fake_webhook import FakeWebhook

from cli_telemetry.providers import (
    OTLP,
    Amplitude,
    Mixpanel,
    PostHog,
    Provider,
    RudderStack,
    Segment,
    Webhook,
)

WEBHOOK_SECRET = "whsec_test"

Case = tuple[Callable[[], FakeService], Callable[[Any], Provider]]
CASES: dict[str, Case] = {
    "posthog": (FakePostHog, lambda f: PostHog(api_key=POSTHOG_KEY, host=f.url)),
    "posthog-v1": (FakePostHog, lambda f: PostHog(api_key=POSTHOG_KEY, host=f.url, api="v1")),
    "segment": (FakeSegment, lambda f: Segment(write_key=SEGMENT_KEY, host=f.url)),
    "rudderstack": (
        FakeRudderStack,
        lambda f: RudderStack(write_key=RUDDER_KEY, data_plane_url=f.url),
    ),
    "mixpanel": (FakeMixpanel, lambda f: Mixpanel(token=MIXPANEL_TOKEN, host=f.url)),
    "mixpanel-import": (
        FakeMixpanel,
        lambda f: Mixpanel(
            token=MIXPANEL_TOKEN, host=f.url, service_account=SERVICE_ACCOUNT, project_id=PROJECT_ID
        ),
    ),
    "amplitude": (FakeAmplitude, lambda f: Amplitude(api_key=AMPLITUDE_KEY, host=f.url)),
    "amplitude-batch": (
        FakeAmplitude,
        lambda f: Amplitude(api_key=AMPLITUDE_KEY, host=f.url, api="batch"),
    ),
    "webhook": (
        lambda: FakeWebhook(secret=WEBHOOK_SECRET),
        lambda f: Webhook(url=f.endpoint, secret=WEBHOOK_SECRET),
    ),
    "otlp": (FakeOtlp, lambda f: OTLP(endpoint=f.url)),
}

SCRIPT = """
import json, os
from typing import Literal, TypedDict
import click
from cli_telemetry import Telemetry
from cli_telemetry.providers import Provider

sinks = [Provider.from_json(spec) for spec in json.loads(os.environ.get("ACME_TEST_SINKS", "[]"))]
telemetry = Telemetry("acme", version="1.4.0", sinks=sinks)

class Traits(TypedDict):
    "This installation's plan."
    plan: Literal["free", "pro"]

class DeployFinished(TypedDict):
    "A deployment finished."
    replicas: int
    dry_run: bool

telemetry.event("identify", Traits)
telemetry.event("deploy.finished", DeployFinished)

@telemetry.instrument
@click.group()
def cli():
    pass

@cli.command()
@click.option("--format", type=click.Choice(["json", "text"]))
@click.option("--force", is_flag=True)
def deploy(format, force):
    telemetry.identify({"plan": "pro"})
    telemetry.track("deploy.finished", {"replicas": 3, "dry_run": False})

@cli.command()
def fail():
    raise click.ClickException("it failed")

@cli.command()
def hello():
    click.echo("hello")

cli.add_command(telemetry.command())
cli()
"""


@pytest.fixture
def acme(tmp_path: Path) -> Tool:
    tool = script_tool(tmp_path, SCRIPT)
    tool.enable()
    return tool


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[tuple[FakeService, Provider]]:
    make_fake, make_provider = CASES[request.param]
    fake = make_fake()
    try:
        yield fake, make_provider(fake)
    finally:
        fake.close()


def sinks_env(*providers: Provider) -> dict[str, str]:
    return {"ACME_TEST_SINKS": json.dumps([p.to_json() for p in providers])}


def record_offline(tool: Tool) -> list[dict[str, Any]]:
    """Record a deploy (command, identify, custom event) and a failure, sending nothing."""
    assert tool.run("deploy", "--format", "json", "--force").returncode == 0
    assert tool.run("fail").returncode == 1
    events = tool.events()
    assert [e["event"] for e in events] == ["command", "identify", "deploy.finished", "command"]
    return events


def settled_with(tool: Tool, error: str) -> bool:
    """The uploader stopped, having recorded ``error``."""
    return tool.upload_state().get("last_error") == error and tool.uploader_stopped()


def check_stored(fake: FakeService, events: list[dict[str, Any]]) -> None:
    """Each recorded event arrived once, mapped as the mapping promises."""
    by_id = {item["dedup_id"]: item for item in fake.stored if item["dedup_id"] is not None}
    assert max(Counter(item["dedup_id"] for item in fake.stored if item["dedup_id"]).values()) == 1
    for event in events:
        if event["event"] == "identify" and event["event_id"] not in by_id:
            # Mixpanel's profile updates (/engage) carry no insert id: match by install.
            [item] = [i for i in fake.stored if i["kind"] == "identify" and i["dedup_id"] is None
                      and i["distinct_id"] == event["install_id"]]  # fmt: skip
        else:
            item = by_id[event["event_id"]]
        assert item["distinct_id"] == event["install_id"]
        assert item["kind"] == ("identify" if event["event"] == "identify" else "event")
        if event["event"] != "identify":
            assert item["name"] == event["event"]
        recorded = calendar.timegm(time.strptime(event["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert abs(item["time"] - recorded) < 1.5


def test_events_arrive_through_the_real_uploader(
    acme: Tool, case: tuple[FakeService, Provider]
) -> None:
    fake, provider = case
    events = record_offline(acme)
    assert acme.run("hello", env=sinks_env(provider)).returncode == 0  # spawns the uploader
    assert poll(lambda: len(fake.stored) >= len(events) + 1, timeout=30), fake.refused
    assert poll(lambda: acme.uploader_stopped() and acme.events() == [], timeout=30)
    check_stored(fake, events)
    assert fake.refused == []
    assert acme.upload_state()["failures"] == 0


def test_a_retry_sends_the_same_events_again_and_a_refusal_drops_them(
    acme: Tool, case: tuple[FakeService, Provider]
) -> None:
    fake, provider = case
    env = sinks_env(provider)
    events = record_offline(acme)
    fake.force(503)
    acme.run("hello", env=env)
    assert poll(
        lambda: acme.upload_state().get("last_error") == "http_503" and acme.uploader_stopped(), 30
    )
    assert fake.stored == []
    assert len(acme.events()) == len(events) + 1  # all kept
    acme.allow_next_attempt()
    acme.run("hello", env=env)
    assert poll(lambda: acme.uploader_stopped() and acme.events() == [], timeout=30)
    check_stored(fake, events)
    # A 429 backs the sink off for at least as long as the service asks.
    fake.force(429, retry_after="3600")
    acme.run("hello", env=env)
    assert poll(
        lambda: acme.upload_state().get("last_error") == "http_429" and acme.uploader_stopped(), 30
    )
    retry_at = acme.upload_state()["sinks"][provider.name]["retry_at_epoch"]
    assert retry_at >= time.time() + 3500
    # A refusal for good (a bad key) drops the events and counts them.
    acme.allow_next_attempt()
    fake.force(401, times=5)  # every request of the batch (Mixpanel sends two)
    acme.run("hello", env=env)
    assert poll(
        lambda: acme.upload_state().get("last_error") == "http_401" and acme.uploader_stopped(), 30
    )
    status = json.loads(acme.run("telemetry", "status", "--json").stdout)
    assert status["pending"] == 0 and status["rejected"] >= 2


def test_fan_out_with_one_failing_sink(acme: Tool) -> None:
    posthog, segment = FakePostHog(), FakeSegment()
    try:
        env = sinks_env(
            PostHog(api_key=POSTHOG_KEY, host=posthog.url),
            Segment(write_key=SEGMENT_KEY, host=segment.url),
        )
        events = record_offline(acme)
        segment.force(503)
        acme.run("hello", env=env)
        assert poll(lambda: len(posthog.stored) == len(events) + 1 and acme.uploader_stopped(), 30)
        assert segment.stored == []
        assert acme.upload_state()["sinks"]["segment"]["last_error"] == "http_503"
        assert len(acme.events()) == len(events) + 1  # still owed to segment
        acme.allow_next_attempt()
        acme.run("hello", env=env)
        assert poll(lambda: acme.uploader_stopped() and acme.events() == [], timeout=30)
        check_stored(segment, events)
        check_stored(posthog, events)  # nothing sent to it twice
        assert len(posthog.stored) == len(events) + 2
        assert len(segment.stored) == len(events) + 2
    finally:
        posthog.close()
        segment.close()
