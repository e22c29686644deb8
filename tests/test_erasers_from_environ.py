"""The collector's erasers from its environment (`providers.erasers_from_environ`): an eraser
for each configured provider whose deletion API's secrets are set, a one-line note for each
other, and never a secret in either."""

from __future__ import annotations

from typing import Any

import pytest
from eraser_checks import INSTALL_ID, soon
from fake_amplitude import API_KEY, SECRET_KEY, FakeAmplitude
from fake_mixpanel import GDPR_TOKEN, TOKEN, FakeMixpanel
from fake_posthog import PERSONAL_KEY, PROJECT_ID, TEST_KEY, FakePostHog
from fake_regulations import (
    ACCESS_TOKEN,
    DESTINATIONS,
    PUBLIC_API_TOKEN,
    FakeRudderStackApi,
    FakeSegmentPublicApi,
)

from cli_telemetry.erasers.amplitude import AmplitudeEraser
from cli_telemetry.erasers.mixpanel import MixpanelEraser
from cli_telemetry.erasers.posthog import PostHogEraser
from cli_telemetry.erasers.rudderstack import RudderStackEraser
from cli_telemetry.erasers.segment import SegmentEraser
from cli_telemetry.errors import ConfigurationError
from cli_telemetry.providers import erasers_from_environ
from cli_telemetry.sinks.base import Delivery, Eraser

EVERY_PROVIDER = {
    "POSTHOG_API_KEY": "phc_x",
    "POSTHOG_HOST": "https://eu.i.posthog.com",
    "SEGMENT_WRITE_KEY": "w",
    "MIXPANEL_TOKEN": "mp_token",
    "MIXPANEL_HOST": "https://api-eu.mixpanel.com",
    "AMPLITUDE_API_KEY": "amp_key",
    "AMPLITUDE_HOST": "https://api.eu.amplitude.com",
    "RUDDERSTACK_WRITE_KEY": "r",
    "RUDDERSTACK_DATA_PLANE_URL": "https://acme.dataplane.rudderstack.com",
    "TELEMETRY_WEBHOOK_URL": "https://hooks.example.com/in",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
    "TELEMETRY_PROVIDERS": "mypkg.telemetry:MyProvider",
}
SECRETS = {
    "POSTHOG_PERSONAL_API_KEY": "phx_SECRET_PERSONAL",
    "POSTHOG_PROJECT_ID": "77",
    "MIXPANEL_GDPR_TOKEN": "SECRET_GDPR_TOKEN",
    "AMPLITUDE_SECRET_KEY": "SECRET_AMPLITUDE_KEY",
    "SEGMENT_PUBLIC_API_TOKEN": "SECRET_SEGMENT_TOKEN",
    "RUDDERSTACK_ACCESS_TOKEN": "SECRET_RUDDER_TOKEN",
    "RUDDERSTACK_DELETION_DESTINATIONS": "dest1, dest2",
}
OPTED_IN = {"SEGMENT_USER_ID": "install", "RUDDERSTACK_USER_ID": "install"}


def by_name(erasers: list[Eraser]) -> dict[str, Any]:
    return {eraser.name: eraser for eraser in erasers}


def closed(erasers: list[Eraser]) -> list[Eraser]:
    for eraser in erasers:
        eraser.close()
    return erasers


def test_nothing_configured_nothing_to_say() -> None:
    assert erasers_from_environ({}) == ([], [])


def test_without_their_secrets_no_provider_has_an_eraser_and_each_says_why() -> None:
    erasers, notes = erasers_from_environ(EVERY_PROVIDER)
    assert erasers == []
    assert notes == [
        "posthog: no eraser until POSTHOG_PERSONAL_API_KEY is set",
        "segment: no eraser until SEGMENT_USER_ID=install: Segment deletes by userId only,"
        " and without it our events carry only an anonymousId",
        "mixpanel: no eraser until MIXPANEL_GDPR_TOKEN is set",
        "amplitude: no eraser until AMPLITUDE_SECRET_KEY is set",
        "rudderstack: no eraser until RUDDERSTACK_USER_ID=install: RudderStack deletes by"
        " userId only, and without it our events carry only an anonymousId",
        "webhook: no eraser: the collector passes no deletion request on to a webhook (a"
        " tool's own webhook sink is sent them)",
        "otlp: no eraser: OTLP has no deletion API; delete at the backend that stores the logs",
        "myprovider: no eraser: cli-telemetry knows no deletion API for a custom provider",
    ]
    assert all("\n" not in note for note in notes)


def test_with_their_secrets_posthog_mixpanel_and_amplitude_have_erasers() -> None:
    erasers, notes = erasers_from_environ({**EVERY_PROVIDER, **SECRETS})
    found = by_name(closed(erasers))
    assert set(found) == {"posthog", "mixpanel", "amplitude"}
    assert all(isinstance(eraser, Eraser) for eraser in erasers)
    assert isinstance(found["posthog"], PostHogEraser)
    assert found["posthog"].url == "https://eu.posthog.com/api/projects/77/persons/bulk_delete/"
    assert isinstance(found["mixpanel"], MixpanelEraser)
    assert found["mixpanel"].url == "https://eu.mixpanel.com/api/app/data-deletions/v3.0/"
    assert isinstance(found["amplitude"], AmplitudeEraser)
    assert found["amplitude"].host == "https://analytics.eu.amplitude.com"
    assert [note.split(":")[0] for note in notes] == [
        "segment", "rudderstack", "webhook", "otlp", "myprovider"
    ]  # fmt: skip


def test_with_the_user_id_opt_in_and_their_secrets_segment_and_rudderstack_have_erasers() -> None:
    erasers, notes = erasers_from_environ({**EVERY_PROVIDER, **SECRETS, **OPTED_IN})
    found = by_name(closed(erasers))
    assert set(found) == {"posthog", "segment", "mixpanel", "amplitude", "rudderstack"}
    assert isinstance(found["segment"], SegmentEraser)
    assert found["segment"].url == "https://api.segmentapis.com/regulations"
    assert isinstance(found["rudderstack"], RudderStackEraser)
    assert found["rudderstack"].url == "https://api.rudderstack.com/v2/regulations"
    assert found["rudderstack"].destination_ids == ["dest1", "dest2"]
    assert [note.split(":")[0] for note in notes] == ["webhook", "otlp", "myprovider"]


def test_the_opt_in_without_the_secrets_names_them() -> None:
    environ = {**EVERY_PROVIDER, **OPTED_IN, "RUDDERSTACK_ACCESS_TOKEN": "t"}
    notes = erasers_from_environ(environ)[1]
    assert notes[1] == "segment: no eraser until SEGMENT_PUBLIC_API_TOKEN is set"
    assert notes[4] == "rudderstack: no eraser until RUDDERSTACK_DELETION_DESTINATIONS is set"
    environ = {**EVERY_PROVIDER, **OPTED_IN, "RUDDERSTACK_DELETION_DESTINATIONS": "d"}
    assert erasers_from_environ(environ)[1][4] == (
        "rudderstack: no eraser until RUDDERSTACK_ACCESS_TOKEN is set"
    )


def test_a_secret_without_the_opt_in_makes_no_eraser() -> None:
    """A token alone deletes nothing: without ``userId`` the regulation would name no
    event of ours, so the note asks for the opt-in, not the token."""
    erasers, notes = erasers_from_environ({**EVERY_PROVIDER, **SECRETS})
    assert {eraser.name for eraser in closed(erasers)} == {"posthog", "mixpanel", "amplitude"}
    assert [n for n in notes if n.startswith(("segment", "rudderstack"))] == [
        "segment: no eraser until SEGMENT_USER_ID=install: Segment deletes by userId only,"
        " and without it our events carry only an anonymousId",
        "rudderstack: no eraser until RUDDERSTACK_USER_ID=install: RudderStack deletes by"
        " userId only, and without it our events carry only an anonymousId",
    ]


def test_the_user_id_opt_in_takes_only_install() -> None:
    with pytest.raises(ConfigurationError, match="user_id"):
        erasers_from_environ({"SEGMENT_WRITE_KEY": "w", "SEGMENT_USER_ID": "email"})
    with pytest.raises(ConfigurationError, match="user_id"):
        erasers_from_environ({**EVERY_PROVIDER, "RUDDERSTACK_USER_ID": "yes"})


def test_segment_is_asked_in_its_region_or_at_the_deletion_host() -> None:
    eu = {"SEGMENT_WRITE_KEY": "w", "SEGMENT_HOST": "https://events.eu1.segmentapis.com",
          "SEGMENT_PUBLIC_API_TOKEN": "t", **OPTED_IN}  # fmt: skip
    [eraser] = closed(erasers_from_environ(eu)[0])
    assert isinstance(eraser, SegmentEraser)
    assert eraser.url == "https://eu1.api.segmentapis.com/regulations"
    proxy = {**eu, "SEGMENT_HOST": "https://segment-proxy.example.com"}
    assert erasers_from_environ(proxy) == (
        [],
        ["segment: no eraser until SEGMENT_DELETION_HOST is set (SEGMENT_HOST is not Segment's)"],
    )
    proxy["SEGMENT_DELETION_HOST"] = "https://eu1.api.segmentapis.com/"
    [eraser] = closed(erasers_from_environ(proxy)[0])
    assert isinstance(eraser, SegmentEraser)
    assert eraser.url == "https://eu1.api.segmentapis.com/regulations"


def test_each_missing_variable_is_named() -> None:
    only_key = {"POSTHOG_API_KEY": "k", "POSTHOG_PERSONAL_API_KEY": "phx"}
    assert erasers_from_environ(only_key) == (
        [],
        ["posthog: no eraser until POSTHOG_PROJECT_ID is set"],
    )
    only_project = {"POSTHOG_API_KEY": "k", "POSTHOG_PROJECT_ID": "1"}
    assert erasers_from_environ(only_project)[1] == [
        "posthog: no eraser until POSTHOG_PERSONAL_API_KEY is set"
    ]


def test_a_host_that_is_not_the_providers_needs_the_deletion_host() -> None:
    environ = {
        "MIXPANEL_TOKEN": "t",
        "MIXPANEL_HOST": "https://mixpanel-proxy.example.com",
        "MIXPANEL_GDPR_TOKEN": "g",
        "AMPLITUDE_API_KEY": "k",
        "AMPLITUDE_HOST": "https://amplitude-proxy.example.com",
        "AMPLITUDE_SECRET_KEY": "s",
    }
    assert erasers_from_environ(environ) == (
        [],
        [
            "mixpanel: no eraser until MIXPANEL_DELETION_HOST is set (MIXPANEL_HOST is not"
            " Mixpanel's)",
            "amplitude: no eraser until AMPLITUDE_DELETION_HOST is set (AMPLITUDE_HOST is not"
            " Amplitude's)",
        ],
    )
    environ["MIXPANEL_DELETION_HOST"] = "https://eu.mixpanel.com"
    environ["AMPLITUDE_DELETION_HOST"] = "https://analytics.eu.amplitude.com/"
    erasers, notes = erasers_from_environ(environ)
    found = by_name(closed(erasers))
    assert notes == []
    assert found["mixpanel"].url.startswith("https://eu.mixpanel.com/")
    assert found["amplitude"].host == "https://analytics.eu.amplitude.com"


def test_a_self_hosted_posthog_is_asked_on_its_own_host() -> None:
    environ = {
        "POSTHOG_API_KEY": "k",
        "POSTHOG_HOST": "https://posthog.example.com",
        "POSTHOG_PERSONAL_API_KEY": "phx",
        "POSTHOG_PROJECT_ID": "1",
    }
    [eraser] = closed(erasers_from_environ(environ)[0])
    assert isinstance(eraser, PostHogEraser)
    assert eraser.url.startswith("https://posthog.example.com/api/projects/1/")


def test_a_secret_without_its_provider_is_noted() -> None:
    erasers, notes = erasers_from_environ(SECRETS)
    assert erasers == []
    assert notes == [
        "POSTHOG_PERSONAL_API_KEY is set, but not POSTHOG_API_KEY: no eraser uses it",
        "MIXPANEL_GDPR_TOKEN is set, but not MIXPANEL_TOKEN: no eraser uses it",
        "AMPLITUDE_SECRET_KEY is set, but not AMPLITUDE_API_KEY: no eraser uses it",
        "SEGMENT_PUBLIC_API_TOKEN is set, but not SEGMENT_WRITE_KEY: no eraser uses it",
        "RUDDERSTACK_ACCESS_TOKEN is set, but not RUDDERSTACK_WRITE_KEY: no eraser uses it",
    ]


def test_no_secret_in_a_note_or_an_erasers_repr() -> None:
    every = {**EVERY_PROVIDER, **SECRETS, **OPTED_IN}
    for environ in ({**EVERY_PROVIDER, **SECRETS}, SECRETS, EVERY_PROVIDER, every):
        erasers, notes = erasers_from_environ(environ)
        shown = notes + [repr(eraser) for eraser in closed(erasers)]
        for secret in (*SECRETS.values(), "phc_x", "mp_token", "amp_key"):
            if secret in ("77", "dest1, dest2"):  # ids, no secrets: in the URL, the repr
                continue
            assert not [text for text in shown if secret in text], secret


def test_the_erasers_from_the_environment_erase_at_the_providers() -> None:
    """The variables reach erasers that work: each deletes, at its fake provider, the
    install the sink of the same name sent."""
    with FakePostHog() as posthog, FakeMixpanel() as mixpanel, FakeAmplitude() as amplitude:
        environ = {
            "POSTHOG_API_KEY": TEST_KEY,
            "POSTHOG_PERSONAL_API_KEY": PERSONAL_KEY,
            "POSTHOG_PROJECT_ID": PROJECT_ID,
            "POSTHOG_DELETION_HOST": posthog.url,
            "MIXPANEL_TOKEN": TOKEN,
            "MIXPANEL_GDPR_TOKEN": GDPR_TOKEN,
            "MIXPANEL_DELETION_HOST": mixpanel.url,
            "AMPLITUDE_API_KEY": API_KEY,
            "AMPLITUDE_SECRET_KEY": SECRET_KEY,
            "AMPLITUDE_DELETION_HOST": amplitude.url,
        }
        erasers, notes = erasers_from_environ(environ)
        assert notes == []
        try:
            results = {eraser.name: eraser.erase([INSTALL_ID], soon()) for eraser in erasers}
        finally:
            closed(erasers)
        # Nothing was sent to them first: each accepted the request and found no one.
        assert results["mixpanel"] == Delivery("delivered")
        assert results["posthog"] == results["amplitude"] == Delivery("delivered", "not_found")
        assert posthog.deletions[0]["distinct_ids"] == [INSTALL_ID]
        assert mixpanel.deletions[0]["distinct_ids"] == [INSTALL_ID]
        assert [r.path for r in amplitude.requests] == ["/api/2/usersearch"]


def test_the_opted_in_erasers_from_the_environment_erase_at_the_providers() -> None:
    """With the opt-in, the variables reach Segment's and RudderStack's erasers, and each
    creates its regulation for the install at its fake API."""
    with FakeSegmentPublicApi() as segment, FakeRudderStackApi() as rudderstack:
        environ = {
            "SEGMENT_WRITE_KEY": "w",
            "SEGMENT_USER_ID": "install",
            "SEGMENT_PUBLIC_API_TOKEN": PUBLIC_API_TOKEN,
            "SEGMENT_DELETION_HOST": segment.url,
            "RUDDERSTACK_WRITE_KEY": "r",
            "RUDDERSTACK_DATA_PLANE_URL": "https://acme.dataplane.rudderstack.com",
            "RUDDERSTACK_USER_ID": "install",
            "RUDDERSTACK_ACCESS_TOKEN": ACCESS_TOKEN,
            "RUDDERSTACK_DELETION_DESTINATIONS": DESTINATIONS[0],
            "RUDDERSTACK_DELETION_HOST": rudderstack.url,
        }
        erasers, notes = erasers_from_environ(environ)
        assert notes == []
        try:
            results = {eraser.name: eraser.erase([INSTALL_ID], soon()) for eraser in erasers}
        finally:
            closed(erasers)
        assert results == {"segment": Delivery("delivered"), "rudderstack": Delivery("delivered")}
        assert segment.regulations[0]["subjectIds"] == [INSTALL_ID]
        assert rudderstack.regulations[0]["users"] == [{"userId": INSTALL_ID}]
        assert rudderstack.regulations[0]["destinationIds"] == [DESTINATIONS[0]]
