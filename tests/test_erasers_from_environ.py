"""The collector's erasers from its environment (`providers.erasers_from_environ`): an eraser
for each configured provider whose deletion API's secrets are set, a one-line note for each
other, and never a secret in either."""

from __future__ import annotations

from typing import Any

from eraser_checks import INSTALL_ID, soon
from fake_amplitude import API_KEY, SECRET_KEY, FakeAmplitude
from fake_mixpanel import GDPR_TOKEN, TOKEN, FakeMixpanel
from fake_posthog import PERSONAL_KEY, PROJECT_ID, TEST_KEY, FakePostHog

from cli_telemetry.erasers.amplitude import AmplitudeEraser
from cli_telemetry.erasers.mixpanel import MixpanelEraser
from cli_telemetry.erasers.posthog import PostHogEraser
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
}


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
        "segment: no eraser: Segment deletes by userId only (its regulations), and our"
        " events carry only an anonymousId",
        "mixpanel: no eraser until MIXPANEL_GDPR_TOKEN is set",
        "amplitude: no eraser until AMPLITUDE_SECRET_KEY is set",
        "rudderstack: no eraser: RudderStack deletes by userId only (its User Suppression"
        " API), and our events carry only an anonymousId",
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
    ]


def test_no_secret_in_a_note_or_an_erasers_repr() -> None:
    for environ in ({**EVERY_PROVIDER, **SECRETS}, SECRETS, EVERY_PROVIDER):
        erasers, notes = erasers_from_environ(environ)
        shown = notes + [repr(eraser) for eraser in closed(erasers)]
        for secret in (*SECRETS.values(), "phc_x", "mp_token", "amp_key"):
            if secret == "77":  # the project id names no secret; it is in the URL
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
