"""The collector forwards what it stores to the providers its environment names: a real
collector process, real fake services on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import needs_proc, open_sockets, poll
from fake_amplitude import API_KEY as AMPLITUDE_KEY
from fake_amplitude import FakeAmplitude
from fake_mixpanel import TOKEN as MIXPANEL_TOKEN
from fake_mixpanel import FakeMixpanel
from fake_otlp import FakeOtlp
from fake_posthog import TEST_KEY as POSTHOG_KEY
from fake_posthog import FakePostHog
from fake_segment import RUDDER_KEY, SEGMENT_KEY, FakeRudderStack, FakeSegment
from fake_service import FakeService
from fake_webhook import FakeWebhook
from loopback import EndpointProcess
from test_collector_e2e import CLI, Collector, answer, custom, event, fresh_postgres

from cli_telemetry.collector import forward, storage, tables
from cli_telemetry.providers import Provider
from cli_telemetry.sinks import Delivery


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeService]]:
    services: dict[str, FakeService] = {
        "posthog": FakePostHog(),
        "segment": FakeSegment(),
        "rudderstack": FakeRudderStack(),
        "mixpanel": FakeMixpanel(),
        "amplitude": FakeAmplitude(),
        "webhook": FakeWebhook(secret="whsec"),
        "otlp": FakeOtlp(),
    }
    yield services
    for service in services.values():
        service.close()


def environment(fakes: dict[str, FakeService]) -> dict[str, str]:
    """Every provider's variables, each host pointing at its fake."""
    webhook = fakes["webhook"]
    assert isinstance(webhook, FakeWebhook)
    return {
        "POSTHOG_API_KEY": POSTHOG_KEY,
        "POSTHOG_HOST": fakes["posthog"].url,
        "SEGMENT_WRITE_KEY": SEGMENT_KEY,
        "SEGMENT_HOST": fakes["segment"].url,
        "RUDDERSTACK_WRITE_KEY": RUDDER_KEY,
        "RUDDERSTACK_DATA_PLANE_URL": fakes["rudderstack"].url,
        "MIXPANEL_TOKEN": MIXPANEL_TOKEN,
        "MIXPANEL_HOST": fakes["mixpanel"].url,
        "AMPLITUDE_API_KEY": AMPLITUDE_KEY,
        "AMPLITUDE_HOST": fakes["amplitude"].url,
        "TELEMETRY_WEBHOOK_URL": webhook.endpoint,
        "TELEMETRY_WEBHOOK_SECRET": "whsec",
        "OTEL_EXPORTER_OTLP_ENDPOINT": fakes["otlp"].url,
        "CLI_TELEMETRY_FORWARD_BACKOFF": "0.2",
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    return fresh_postgres()


def batch() -> list[dict[str, Any]]:
    install = event()["install_id"]
    return [
        event(install_id=install),
        event(install_id=install, outcome="error", exit_code=1, error_type="ConnectionError"),
        custom(install_id=install),
        custom(install_id=install, event="identify", properties={"plan": "pro"}),
    ]


def arrived(fake: FakeService, events: list[dict[str, Any]]) -> bool:
    """Every event of ``events`` is stored at ``fake``, and nothing twice."""
    ids = [item["dedup_id"] for item in fake.stored if item["dedup_id"] is not None]
    identifies = [item for item in fake.stored if item["kind"] == "identify"]
    wanted = {e["event_id"] for e in events if e["event"] != "identify"}
    assert len(ids) == len(set(ids)), f"sent twice: {ids}"
    return wanted <= set(ids) and len(identifies) >= 1


def test_the_collector_forwards_to_every_provider_its_environment_names(
    db_url: str, fakes: dict[str, FakeService]
) -> None:
    server = Collector(db_url, env=environment(fakes))
    try:
        events = batch()
        assert server.send(events) == (200, answer(stored=4))
        for name, fake in fakes.items():
            assert poll(partial(arrived, fake, events), timeout=30), (name, fake.refused)
            assert fake.refused == [], name
        assert poll(lambda: server.count("outbox") == 0, timeout=10)
        # A resent batch is acknowledged, stored once, and forwarded once.
        assert server.send(events) == (200, answer(stored=0, duplicates=4))
        later = [event()]
        assert server.send(later)[0] == 200
        for fake in fakes.values():
            assert poll(partial(arrived, fake, later), timeout=30)
            assert arrived(fake, events)  # still once each
    finally:
        server.close()


def test_a_failing_provider_retries_alone(db_url: str, fakes: dict[str, FakeService]) -> None:
    posthog, segment = fakes["posthog"], fakes["segment"]
    env = {k: v for k, v in environment(fakes).items() if k.startswith(("POSTHOG", "SEGMENT"))}
    segment.force(503, times=2)
    server = Collector(db_url, env={**env, "CLI_TELEMETRY_FORWARD_BACKOFF": "0.2"})
    try:
        events = batch()
        assert server.send(events)[0] == 200
        assert poll(lambda: arrived(posthog, events), timeout=30)
        assert poll(lambda: arrived(segment, events), timeout=30)  # after two 503s
        assert len(segment.refused) == 2
        assert len(posthog.requests) == 1  # the others were not sent it again
        assert poll(lambda: server.count("outbox") == 0, timeout=10)
    finally:
        server.close()


def test_a_refusing_provider_drops_its_copy_only(
    db_url: str, fakes: dict[str, FakeService]
) -> None:
    posthog, segment = fakes["posthog"], fakes["segment"]
    env = {k: v for k, v in environment(fakes).items() if k.startswith(("POSTHOG", "SEGMENT"))}
    segment.force(401)
    server = Collector(db_url, env=env)
    try:
        events = batch()
        assert server.send(events)[0] == 200
        assert poll(lambda: arrived(posthog, events), timeout=30)
        assert poll(lambda: server.count("outbox") == 0, timeout=30)
        assert segment.stored == [] and len(segment.requests) == 1
        assert server.count() == 4  # stored all the same
    finally:
        server.close()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"RUDDERSTACK_WRITE_KEY": "w"}, "RUDDERSTACK_DATA_PLANE_URL"),
        ({"POSTHOG_API_KEY": "k", "POSTHOG_HOST": "eu.i.posthog.com"}, "http"),
        ({"CLI_TELEMETRY_FORWARD_BACKOFF": "soon"}, "CLI_TELEMETRY_FORWARD_BACKOFF"),
    ],
)
def test_a_half_configured_provider_stops_the_collector_with_a_clear_message(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    import os

    result = subprocess.run(
        [CLI, "collector", "serve", "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}", "--port", "9"],
        env={**os.environ, **variables}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr


class SlowSink:
    """A provider that takes a while to answer, like one across a network; it keeps what
    it was sent in a list shared by every instance."""

    sent: ClassVar[list[str]] = []

    def __init__(self, *, name: str) -> None:
        self.name = name

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        time.sleep(0.02)  # the network, not synchronisation
        SlowSink.sent.extend(e["event_id"] for e in events)
        return Delivery("delivered")

    def close(self) -> None:
        pass


def test_two_forwarders_on_one_database_never_send_a_batch_twice(db_url: str) -> None:
    """Several collector processes share a database: leases keep their forwarders apart."""
    import threading

    engine = storage.connect(db_url)
    slow = Provider("test_collector_forward:SlowSink", name="slow")
    events = [event() for _ in range(1000)]
    storage.store(engine, [events], ["slow"])
    SlowSink.sent.clear()
    forwarders = [forward.Forwarder(engine, [slow]) for _ in range(3)]
    deadline = time.monotonic() + 60

    def work(forwarder: forward.Forwarder) -> None:
        while forward_pending(engine) and time.monotonic() < deadline:
            forwarder.forward_once()

    threads = [threading.Thread(target=work, args=(f,)) for f in forwarders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert forward_pending(engine) == 0
    assert sorted(SlowSink.sent) == sorted(e["event_id"] for e in events)  # each once
    engine.dispose()


def forward_pending(engine: Any) -> int:
    import sqlalchemy as sa

    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(tables.outbox)
        return int(connection.execute(query).scalar_one())


class ScriptedSink:
    """A provider that answers what the test says: ``answer`` maps a batch to a Delivery.
    Every batch it is sent is kept, in order, in a list shared by every instance."""

    batches: ClassVar[list[list[str]]] = []
    answer: ClassVar[Any] = staticmethod(lambda events: Delivery("delivered"))

    def __init__(self, *, name: str) -> None:
        self.name = name

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        ScriptedSink.batches.append([e["event_id"] for e in events])
        result: Delivery = ScriptedSink.answer(events)
        return result

    def close(self) -> None:
        pass


@pytest.fixture
def engine(db_url: str) -> Iterator[Any]:
    engine = storage.connect(db_url)
    yield engine
    engine.dispose()  # even when the test failed: a connection left to the GC warns


@pytest.fixture
def scripted() -> Iterator[type[ScriptedSink]]:
    ScriptedSink.batches.clear()
    yield ScriptedSink
    ScriptedSink.answer = staticmethod(lambda events: Delivery("delivered"))


def test_a_provider_that_is_down_gets_one_request_per_backoff(
    engine: Any, scripted: type[ScriptedSink]
) -> None:
    """Its backoff holds for the provider, not only for the batch it failed: the rows
    behind that batch are not sent to it one batch after another."""
    scripted.answer = staticmethod(lambda events: Delivery("retry", "http_503"))
    storage.store(engine, [[event() for _ in range(250)]], ["scripted"])
    forwarder = forward.Forwarder(
        engine, [Provider("test_collector_forward:ScriptedSink", name="scripted")],
        backoff_base=3600,
    )  # fmt: skip
    for _ in range(5):
        forwarder.forward_once()
    assert len(scripted.batches) == 1
    assert forward_pending(engine) == 250


def test_a_batch_too_large_for_a_provider_is_sent_in_halves_not_dropped(
    engine: Any, scripted: type[ScriptedSink]
) -> None:
    scripted.answer = staticmethod(
        lambda events: (
            Delivery("rejected", "http_413") if len(events) > 10 else Delivery("delivered")
        )
    )
    events = [event() for _ in range(40)]
    storage.store(engine, [events], ["scripted"])
    forwarder = forward.Forwarder(
        engine, [Provider("test_collector_forward:ScriptedSink", name="scripted")]
    )
    for _ in range(20):
        if not forward_pending(engine):
            break
        forwarder.forward_once()
    assert forward_pending(engine) == 0
    delivered = [i for batch in scripted.batches if len(batch) <= 10 for i in batch]
    assert sorted(delivered) == sorted(e["event_id"] for e in events)  # each once, none lost


def test_prune_forgets_what_was_owed_for_pruned_events(db_url: str) -> None:
    """Rows owed to a provider no longer configured wait (it may be back), until their
    events are pruned."""
    engine = storage.connect(db_url)
    try:
        old = [event(timestamp="2020-01-01T00:00:00.000Z") for _ in range(3)]
        kept = [event() for _ in range(2)]
        storage.store(engine, [old + kept], ["removed-provider"])
        assert forward_pending(engine) == 5
        assert storage.prune(engine, "2021-01-01T00:00:00.000Z") == 3
        assert forward_pending(engine) == 2
    finally:
        engine.dispose()


class HangingSink:
    """A provider that never answers (until the test ends); counts its instances."""

    release = threading.Event()
    made: ClassVar[int] = 0

    def __init__(self, *, name: str) -> None:
        self.name = name
        HangingSink.made += 1

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        HangingSink.release.wait(60)
        return Delivery("delivered")

    def close(self) -> None:
        pass


def test_a_hanging_provider_times_out_alone_and_is_not_reused(
    engine: Any, scripted: type[ScriptedSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forward, "SEND_SECONDS", 0.3)
    HangingSink.made = 0
    HangingSink.release.clear()  # an earlier run of this test set it
    events = [event() for _ in range(3)]
    storage.store(engine, [events], ["hanging", "scripted"])
    forwarder = forward.Forwarder(
        engine,
        [Provider("test_collector_forward:HangingSink", name="hanging"),
         Provider("test_collector_forward:ScriptedSink", name="scripted")],
        backoff_base=0.01,
    )  # fmt: skip
    try:
        forwarder.forward_once()
        assert [sorted(b) for b in scripted.batches] == [sorted(e["event_id"] for e in events)]
        assert forwarder.failures == {"hanging": 1}
        assert forward_pending(engine) == 3  # still owed to the hanging one
        assert poll(lambda: (forwarder.forward_once(), HangingSink.made >= 2)[1], timeout=10)
    finally:
        HangingSink.release.set()


@needs_proc
def test_a_dripping_provider_costs_the_forwarder_no_thread_and_no_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider whose server drips its answer a byte a second: each send ends at its
    deadline (here 1 s) with its socket closed and its thread gone, attempt after attempt
    (before, each attempt left a thread and a socket behind, for as long as the server
    dripped)."""
    monkeypatch.setattr(forward, "SEND_SECONDS", 1.0)
    engine = storage.connect(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    storage.store(engine, [[event() for _ in range(3)]], ["drip"])
    try:
        with EndpointProcess("drip") as server:
            provider = Provider(
                "cli_telemetry.sinks.http:HttpSink", name="drip", endpoint=server.url
            )
            forwarder = forward.Forwarder(engine, [provider], backoff_base=0.01)
            threads, sockets = threading.active_count(), open_sockets()

            def failed(times: int) -> bool:
                forwarder.forward_once()
                return forwarder.failures.get("drip") == times

            for attempt in (1, 2, 3):
                assert poll(partial(failed, attempt), timeout=30)
                assert (threading.active_count(), open_sockets()) == (threads, sockets), attempt
            forwarder.stop()
        assert forward_pending(engine) == 3
    finally:
        engine.dispose()


def test_a_provider_that_refuses_part_of_a_batch_keeps_the_rest_and_the_rows_go(
    engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Amplitude answers 400 naming the events of a device it silenced: the sink sends the
    others again, and the forwarder deletes every row of the batch and says once how many
    the provider refused."""
    import logging

    from cli_telemetry.providers import Amplitude

    with FakeAmplitude() as amplitude:
        events = [event() for _ in range(5)]
        amplitude.silence(events[1]["install_id"])
        amplitude.silence(events[3]["install_id"])
        storage.store(engine, [events], ["amplitude"])
        forwarder = forward.Forwarder(engine, [Amplitude(AMPLITUDE_KEY, host=amplitude.url)])
        try:
            with caplog.at_level(logging.WARNING, logger="cli_telemetry.collector"):
                assert forwarder.forward_once()
                assert not forwarder.forward_once()  # nothing left to send
        finally:
            forwarder.stop()
        assert forward_pending(engine) == 0
        assert forwarder.failures == {}
        kept = [events[i]["event_id"] for i in (0, 2, 4)]
        assert sorted(item["dedup_id"] for item in amplitude.stored) == sorted(kept)
        assert [r for _, r in amplitude.refused] == [400]
    assert [r.getMessage() for r in caplog.records] == [
        "amplitude refused 2 of 5 events: partial_rejected"
    ]


def test_refusals_count_only_what_a_batch_holds() -> None:
    """A custom provider may name an index it was not sent, or count more than it was."""
    partial = Delivery("delivered", "partial_rejected", refused=(0, 2, 7))
    assert forward.refusals(partial, 5) == 2
    assert forward.refusals(Delivery("delivered", unattributed=9), 5) == 5
    assert forward.refusals(Delivery("delivered"), 5) == 0


def test_a_forwarder_skips_the_rows_another_process_is_leasing() -> None:
    """PostgreSQL: while another process's lease transaction holds the oldest rows, a
    forwarder takes the next batch at once (before, it waited for that transaction, then
    found those rows taken and leased nothing)."""
    import sqlalchemy as sa

    url = fresh_postgres()
    engine, other = storage.connect(url), storage.connect(url)
    storage.store(engine, [[event() for _ in range(2 * forward.BATCH)]], ["slow"])
    SlowSink.sent.clear()
    slow = Provider("test_collector_forward:SlowSink", name="slow")
    forwarder = forward.Forwarder(engine, [slow])
    sending = threading.Thread(target=forwarder.forward_once)
    try:
        with other.begin() as connection:  # the other process, between its read and commit
            oldest = sa.select(tables.outbox.c.event_id).order_by(tables.outbox.c.seq)
            held = connection.execute(oldest.limit(forward.BATCH).with_for_update()).scalars()
            held_ids = set(held)
            sending.start()
            sending.join(10)
            assert not sending.is_alive(), "the forwarder waited for the other's rows"
        assert len(SlowSink.sent) == forward.BATCH
        assert not held_ids & set(SlowSink.sent)
    finally:
        if sending.is_alive():
            sending.join(30)
        engine.dispose()
        other.dispose()
