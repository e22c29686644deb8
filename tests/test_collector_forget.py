"""The collector forgets: a deletion request deletes what the collector holds of an install
(events, rollups, what the outbox owed), is counted by the report, and is passed on to each
provider that has an eraser, until the provider accepted it. Real collector processes, a
provider on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from conftest import poll
from loopback import Endpoint
from test_collector_e2e import Collector, answer, cli, custom, event, fresh_postgres

from cli_telemetry.collector import erasure, forget, forward, report, retention, storage, tables
from cli_telemetry.erasers.common import NOT_FOUND
from cli_telemetry.sinks import Delivery

TESTS = str(Path(__file__).resolve().parent)
SINCE = "2020-01-01T00:00:00.000Z"


def deletion(install_id: str, tool: str = "acme", **changes: Any) -> dict[str, Any]:
    """A deletion request, as ``telemetry disable`` sends it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    request = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "event": "deletion_request",
        "timestamp": now, "tool": tool, "install_id": install_id,
    }  # fmt: skip
    request.update(changes)
    return request


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    return fresh_postgres()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.engine.Engine]:
    engine = storage.connect(db_url)
    yield engine
    engine.dispose()


def rows_naming(engine: sa.engine.Engine, text: str) -> dict[str, int]:
    """How many rows of each table of the database (all of them, as the database lists
    them) hold ``text`` in any column."""
    found: dict[str, int] = {}
    reflected = sa.MetaData()
    reflected.reflect(engine)
    with engine.connect() as connection:
        for table in reflected.sorted_tables:
            hits = sum(1 for row in connection.execute(sa.select(table)) if text in repr(row))
            if hits:
                found[table.name] = hits
    return found


def usage_of(install: str) -> list[dict[str, Any]]:
    return [
        event(install_id=install),
        event(install_id=install, outcome="error", exit_code=1, error_type="ConnectionError"),
        event(install_id=install, command="acme hello", flags=["--loud"], values={}),
        custom(install_id=install),
        custom(install_id=install, event="identify", properties={"plan": "pro"}),
    ]


def report_without_deletions(engine: sa.engine.Engine) -> dict[str, Any]:
    figures = report.build(engine, since=SINCE)
    assert figures == report.build(engine, since=SINCE, rollups=False)
    return {k: v for k, v in figures.items() if not k.startswith("deletion_requests")}


def test_a_deletion_request_forgets_the_install_in_the_collector_and_at_the_provider(
    db_url: str, tmp_path: Path
) -> None:
    """Two installs' events are stored and forwarded; a deletion request for one: the
    report counts only the other (as if the first had never sent anything) and one
    deletion request; the provider's eraser is asked, answers 503, is asked again and
    accepts; then no row of any table names the install. Sent again, the request changes
    nothing. The webhook, which has no eraser, is named once at start."""
    provider, webhook = Endpoint(), Endpoint()
    server = Collector(
        db_url,
        env={
            "TELEMETRY_PROVIDERS": "fake_eraser:LoopbackProvider",
            "LOOPBACK_PROVIDER_URL": provider.url,
            "TELEMETRY_WEBHOOK_URL": webhook.url,
            "PYTHONPATH": TESTS,
            "CLI_TELEMETRY_FORWARD_BACKOFF": "0.2",
        },
    )
    stderr = ""
    try:
        gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
        events = [
            *usage_of(gone),
            event(install_id=kept, flags=["--verbose"], values={}),
            event(install_id=kept, command="acme hello", flags=[], values={}, ci="generic"),
        ]
        assert server.send(events) == (200, answer(stored=7))

        def forwarded() -> set[str]:
            return {
                e["event_id"]
                for r in provider.requests
                if r["path"] == "/v1/events"
                for e in r["body"]["batch"]
            }

        assert poll(lambda: forwarded() >= {e["event_id"] for e in events}, timeout=30)
        assert poll(lambda: server.count("outbox") == 0, timeout=30)

        expected = storage.connect(f"sqlite:///{tmp_path / 'only-kept.sqlite3'}")
        storage.store(expected, [events[5:]])
        only_kept = report_without_deletions(expected)
        expected.dispose()

        provider.mode, provider.status = "status", 503
        seen = provider.seen
        request = deletion(gone)
        assert server.send([request]) == (200, answer(stored=0, forgotten=1))

        engine = storage.connect(db_url)
        try:
            assert report_without_deletions(engine) == only_kept
            figures = report.build(engine, since=SINCE)
            assert figures["deletion_requests"] == 1
            assert figures["deletion_requests_by_tool"] == [{"name": "acme", "count": 1}]
            api = json.loads(server.get("/api/report?since=3650d").data)
            assert (api["installs"], api["invocations"], api["deletion_requests"]) == (1, 2, 1)
            assert api["flags"] == [{"name": "--verbose", "count": 1}]

            # The eraser is asked, gets 503, and is asked again once the provider is back.
            assert poll(lambda: provider.seen > seen, timeout=30)
            assert poll(lambda: server.rows("select attempts from erasures")[0][0] >= 1, 10)
            provider.mode = "ok"

            def erased() -> list[str]:
                return [
                    e["install_id"]
                    for r in provider.requests
                    if r["path"] == "/v1/erase"
                    for e in r["body"]["batch"]
                ]

            assert poll(lambda: erased() == [gone], timeout=30)
            assert poll(lambda: server.count("erasures") == 0, timeout=30)
            assert provider.seen >= seen + 2
            assert rows_naming(engine, gone) == {}
            assert rows_naming(engine, kept)["events"] == 2

            # Sent again: the same answer, and nothing more is counted or owed.
            assert server.send([request]) == (200, answer(stored=0, forgotten=1))
            assert server.count("erasures") == 0
            assert report_without_deletions(engine) == only_kept
            assert report.build(engine, since=SINCE)["deletion_requests"] == 1
            assert rows_naming(engine, gone) == {}
        finally:
            engine.dispose()
        text = server.get("/?since=3650d").data.decode()
        assert "deletion requests" in text
    finally:
        stderr = server.close()
        provider.close()
        webhook.close()
    assert stderr.count("deletion requests are not forwarded to webhook") == 1, stderr
    assert "the collector passes no deletion request on to a webhook" in stderr
    assert "forwarded to loopbackprovider" not in stderr
    assert gone not in stderr


def test_a_batch_holding_events_and_their_deletion_leaves_nothing_of_the_install(
    db_url: str,
) -> None:
    """The batch's events are stored first, then its deletion requests applied: nothing of
    the install is left, the other install's events are stored, each counted in the
    answer."""
    server = Collector(db_url)
    try:
        gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
        batch = [*usage_of(gone), deletion(gone), event(install_id=kept)]
        assert server.send(batch) == (200, answer(stored=6, forgotten=1))
        engine = storage.connect(db_url)
        try:
            assert rows_naming(engine, gone) == {}
            figures = report.build(engine, since=SINCE)
            assert (figures["installs"], figures["invocations"]) == (1, 1)
            assert figures == report.build(engine, since=SINCE, rollups=False)
        finally:
            engine.dispose()
        text = cli("report", "--db", db_url, "--since", "3650d")
        assert text.returncode == 0, text.stderr
        assert "installs 1, " in text.stdout and "deletion requests 1" in text.stdout
        assert "Deletion requests\n  tool  requests\n  acme         1" in text.stdout
        # A bad deletion request is refused alone, by its field, and forgets nothing.
        status, body = server.send([deletion(kept, command="acme deploy"), event()])
        assert (status, body["accepted"], body["rejected"][0]["field"]) == (200, 1, "command")
        assert server.count() == 2
    finally:
        server.close()


def test_a_token_deletes_only_its_own_tools_installs(tmp_path: Path) -> None:
    """A token names the tools it may write for: a deletion request is no exception. With
    a tool's --schema the request goes through too."""
    schema = tmp_path / "acme.schema.json"
    schema.write_text(json.dumps({"x-cli-telemetry": {"tool": "acme", "schema_version": 1},
                                  "$defs": {}}))  # fmt: skip
    server = Collector(
        f"sqlite:///{tmp_path / 'tokens.sqlite3'}",
        extra=["--schema", str(schema)],
        env={"CLI_TELEMETRY_COLLECTOR_TOKENS": "acme=s3cret beta=other"},
    )
    try:
        install = str(uuid.uuid4())
        beta = event(tool="beta", command="beta run", install_id=install)
        assert server.post(body([beta]), {"Authorization": "Bearer other"})[0] == 200
        acme = {"Authorization": "Bearer s3cret"}
        status, answered = server.post(body([deletion(install, "beta")]), acme)
        assert (status, answered["field"]) == (401, "Authorization")
        assert server.count() == 1 and server.count("deletions") == 0
        status, answered = server.post(body([deletion(install, "acme")]), acme)
        assert (status, answered) == (200, answer(stored=0, forgotten=1))
        assert server.count() == 1  # acme's request forgets acme's install only
    finally:
        server.close()


def body(batch: list[dict[str, Any]]) -> bytes:
    return json.dumps({"batch": batch}).encode()


def test_an_earlier_database_gets_the_new_indexes(db_url: str) -> None:
    """``create_all`` adds no index to a table that exists: `tables.create` does."""
    engine = storage.connect(db_url)
    try:
        with engine.begin() as connection:
            for index in tables.ADDED_INDEXES:
                index.drop(connection)
        storage.connect(db_url).dispose()
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            names = {i["name"] for t in ("events", "outbox") for i in inspector.get_indexes(t)}
        assert {index.name for index in tables.ADDED_INDEXES} <= names
    finally:
        engine.dispose()


class ScriptedEraser:
    """An eraser that answers what the test says; every call is kept, in order."""

    calls: ClassVar[list[list[str]]] = []

    def __init__(self, name: str = "scripted", answer: Any = None) -> None:
        self.name = name
        self.answer = answer or (lambda ids: Delivery("delivered"))
        self.release = threading.Event()
        self.release.set()

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        ScriptedEraser.calls.append(list(install_ids))
        self.release.wait(60)
        result: Delivery = self.answer(install_ids)
        return result

    def close(self) -> None:
        self.release.set()


@pytest.fixture
def scripted() -> Iterator[type[ScriptedEraser]]:
    ScriptedEraser.calls.clear()
    yield ScriptedEraser


def owe(engine: sa.engine.Engine, count: int, erase_at: Sequence[str]) -> list[str]:
    """``count`` installs that sent an event each, then their deletion requests."""
    installs = [str(uuid.uuid4()) for _ in range(count)]
    storage.store(engine, [[event(install_id=install) for install in installs]], (), erase_at)
    storage.store(engine, [[deletion(install) for install in installs]], (), erase_at)
    return installs


def test_a_request_for_an_install_never_stored_owes_the_providers_nothing(
    engine: sa.engine.Engine,
) -> None:
    """Anyone with a tool's write token (it ships in the tool) could send requests for
    random ids: they are counted, and use up no provider's deletion quota."""
    storage.store(engine, [[deletion(str(uuid.uuid4())) for _ in range(5)]], (), ["scripted"])
    assert engine_count(engine, tables.deletions) == 5
    assert engine_count(engine) == 0


def test_a_provider_that_found_nothing_is_asked_again_later_then_let_be(
    engine: sa.engine.Engine, scripted: type[ScriptedEraser]
) -> None:
    """An install disabled seconds after its first command: the provider may still be
    ingesting its events when it is first asked, and says it has nothing."""
    (install,) = owe(engine, 1, ["scripted"])
    eraser = scripted(answer=lambda ids: Delivery("delivered", NOT_FOUND))
    forwarder = erasure.ErasureForwarder(engine, [eraser])
    for wait in erasure.RECHECKS:
        assert forwarder.erase_once()
        assert engine_count(engine) == 1  # kept, to ask again
        with engine.connect() as connection:
            not_before = connection.execute(sa.select(tables.erasures.c.not_before)).scalar_one()
        assert not_before >= time.time() + wait - 60
        assert not forwarder.erase_once()  # not before then
        with engine.begin() as connection:
            connection.execute(sa.text("update erasures set not_before = 0"))
    assert forwarder.erase_once()
    assert engine_count(engine) == 0
    assert ScriptedEraser.calls == [[install]] * (len(erasure.RECHECKS) + 1)


@pytest.mark.parametrize("status", ["http_401", "http_403", "http_404"])
def test_a_provider_refusing_our_credentials_keeps_the_deletions(
    engine: sa.engine.Engine,
    scripted: type[ScriptedEraser],
    caplog: pytest.LogCaptureFixture,
    status: str,
) -> None:
    """An expired token or a rotated key refuses the credentials, not the deletion: it is
    not dropped, and the operator is told."""
    owe(engine, 2, ["scripted"])
    eraser = scripted(answer=lambda ids: Delivery("rejected", status))
    forwarder = erasure.ErasureForwarder(engine, [eraser])
    with caplog.at_level(logging.ERROR, logger="cli_telemetry.collector"):
        assert not forwarder.erase_once()
    assert engine_count(engine) == 2
    assert "check its deletion credentials" in caplog.text


def test_a_refused_erasure_is_dropped_and_logged_once_without_the_id(
    engine: sa.engine.Engine, scripted: type[ScriptedEraser], caplog: pytest.LogCaptureFixture
) -> None:
    installs = owe(engine, 3, ["scripted"])
    eraser = scripted(answer=lambda ids: Delivery("rejected", "http_400"))
    forwarder = erasure.ErasureForwarder(engine, [eraser])
    with caplog.at_level(logging.WARNING, logger="cli_telemetry.collector"):
        assert forwarder.erase_once()
        assert not forwarder.erase_once()
    assert sorted(scripted.calls[0]) == sorted(installs) and len(scripted.calls) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "scripted refused 3 deletion requests: http_400"
    ]
    assert rows_naming(engine, installs[0]) == {}


def test_a_provider_that_is_down_is_asked_once_per_backoff_and_the_attempts_are_kept(
    engine: sa.engine.Engine, scripted: type[ScriptedEraser]
) -> None:
    """Its attempts are written on its rows: a process started later backs off from there."""
    owe(engine, 250, ["scripted"])
    down = scripted(answer=lambda ids: Delivery("retry", "http_503"))
    forwarder = erasure.ErasureForwarder(engine, [down], backoff_base=3600)
    for _ in range(5):
        forwarder.erase_once()
    assert [len(call) for call in scripted.calls] == [erasure.BATCH]
    with engine.connect() as connection:
        attempts = connection.execute(
            sa.select(tables.erasures.c.attempts, sa.func.count()).group_by(
                tables.erasures.c.attempts
            )
        ).all()
    assert sorted(attempts) == [(0, 150), (1, 100)]
    later = erasure.ErasureForwarder(engine, [down], backoff_base=3600)
    with engine.begin() as connection:  # as if the backoff had run its course
        connection.execute(tables.erasures.update().values(not_before=0))
    later.erase_once()
    assert later.failures == {"scripted": 2}  # from the rows, not from zero


def test_too_many_ids_for_a_provider_are_sent_in_halves(
    engine: sa.engine.Engine, scripted: type[ScriptedEraser]
) -> None:
    installs = owe(engine, 40, ["scripted"])
    too_many = Delivery("rejected", "http_413")
    picky = scripted(answer=lambda ids: too_many if len(ids) > 10 else Delivery("delivered"))
    forwarder = erasure.ErasureForwarder(engine, [picky])
    assert poll(lambda: (forwarder.erase_once(), engine_count(engine) == 0)[1], timeout=30)
    accepted = [i for call in scripted.calls if len(call) <= 10 for i in call]
    assert sorted(accepted) == sorted(installs)


def engine_count(engine: sa.engine.Engine, table: sa.Table = tables.erasures) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_an_eraser_still_answering_is_not_asked_again(
    engine: sa.engine.Engine, scripted: type[ScriptedEraser], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One that outlives its deadline keeps its thread until it returns; until then it is
    not called a second time (an eraser need not be safe to share by threads)."""
    monkeypatch.setattr(erasure, "SEND_SECONDS", 0.2)
    owe(engine, 2, ["scripted"])
    slow = scripted()
    slow.release.clear()
    forwarder = erasure.ErasureForwarder(engine, [slow], backoff_base=0.01)
    try:
        forwarder.erase_once()  # times out, its thread still waiting
        assert forwarder.failures == {"scripted": 1}
        with engine.begin() as connection:
            connection.execute(tables.erasures.update().values(not_before=0))
        forwarder.retry_at.clear()
        assert not forwarder.erase_once()
        assert len(scripted.calls) == 1
        slow.release.set()
        assert poll(lambda: (forwarder.erase_once(), engine_count(engine) == 0)[1], timeout=30)
        assert len(scripted.calls) == 2
    finally:
        slow.release.set()


def test_an_erasure_waits_for_a_send_of_the_installs_events_in_flight(
    engine: sa.engine.Engine,
) -> None:
    """A forwarder had leased the install's events when the request came: the provider it
    is sending them to gets the erasure only once that send has surely ended; another
    provider at once."""
    install = str(uuid.uuid4())
    storage.store(engine, [usage_of(install)], ["busy", "idle"])
    assert len(forward.lease(engine, tables.outbox, "busy", 100)) == 5
    before = time.time()
    storage.store(engine, [[deletion(install)]], ["busy", "idle"], ["busy", "idle"])
    with engine.connect() as connection:
        query = sa.select(tables.erasures.c.sink, tables.erasures.c.not_before)
        due = {sink: not_before for sink, not_before in connection.execute(query)}
    assert due["idle"] == 0
    assert due["busy"] >= before + forward.SEND_SECONDS
    assert engine_count(engine, tables.outbox) == 0


def test_two_processes_erase_each_install_once(db_url: str, scripted: type[ScriptedEraser]) -> None:
    """Leases keep the erasure forwarders of several processes apart."""
    engines = [storage.connect(db_url) for _ in range(3)]
    installs = owe(engines[0], 500, ["scripted"])
    forwarders = [erasure.ErasureForwarder(e, [scripted()]) for e in engines]
    deadline = time.monotonic() + 60

    def work(forwarder: erasure.ErasureForwarder) -> None:
        while engine_count(forwarder.engine) and time.monotonic() < deadline:
            forwarder.erase_once()

    threads = [threading.Thread(target=work, args=(f,)) for f in forwarders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    try:
        assert engine_count(engines[0]) == 0
        assert sorted(i for call in scripted.calls for i in call) == sorted(installs)
    finally:
        for e in engines:
            e.dispose()


def test_events_that_arrive_after_their_install_was_forgotten_are_not_stored(
    engine: sa.engine.Engine,
) -> None:
    """A batch still on its way when its install was forgotten (an uploader that ``disable``
    stopped mid-send, a proxy's resend) is acknowledged and not stored; the collector keeps
    only a digest of the id, and only for `forget.REFUSE_FOR`."""
    install, other = str(uuid.uuid4()), str(uuid.uuid4())
    storage.store(engine, [usage_of(install)])
    storage.store(engine, [[deletion(install)]])
    late = usage_of(install)
    assert storage.store(engine, [late, [event(install_id=other)], late]) == [0, 1, 0]
    assert storage.store(engine, [[event(install_id=install, tool="other")]]) == [1]
    assert rows_naming(engine, install) == {"events": 1, "daily_installs": 1}  # the other tool
    assert rows_naming(engine, forget.digest(install)) == {"forgotten_installs": 1}
    assert report_without_deletions(engine)["invocations"] == 2

    # Once the refusal is over, the digest goes at the next round, and with it the refusal
    # (an install id is never used again once forgotten: this only shows the limit).
    with engine.begin() as connection:
        connection.execute(sa.update(tables.forgotten_installs).values(until=time.time() - 1))
    retention.Pruner(engine, None).prune_once()
    assert rows_naming(engine, forget.digest(install)) == {}
    assert storage.store(engine, [late]) == [len(late)]


class Paused:
    """Pauses `storage.store` inside its transaction, after its events and rollups are
    written and before it commits (at ``forward.enqueue``), until `go`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        enqueue = forward.enqueue

        def paused(*args: Any) -> None:
            if threading.current_thread().name == "paused":
                self.reached.set()
                assert self.released.wait(60)
            enqueue(*args)

        monkeypatch.setattr(forward, "enqueue", paused)

    def store(self, engine: sa.engine.Engine, batch: list[dict[str, Any]]) -> threading.Thread:
        thread = threading.Thread(target=storage.store, args=(engine, [batch]), name="paused")
        thread.start()
        assert self.reached.wait(30)
        return thread

    def go(self) -> None:
        self.released.set()


def waiting_for_a_lock(engine: sa.engine.Engine) -> bool:
    query = (
        "select count(*) from pg_stat_activity"
        " where datname = current_database() and wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        return bool(connection.execute(sa.text(query)).scalar_one())


@pytest.fixture
def pause(monkeypatch: pytest.MonkeyPatch) -> Iterator[Paused]:
    paused = Paused(monkeypatch)
    yield paused
    paused.go()  # a test that failed leaves no transaction waiting


@pytest.fixture
def postgres() -> Iterator[sa.engine.Engine]:
    engine = storage.connect(fresh_postgres())
    yield engine
    engine.dispose()


def test_a_deletion_that_overlaps_a_store_of_its_install_in_another_process_waits_for_it(
    postgres: sa.engine.Engine, pause: Paused
) -> None:
    """Two collector processes on one PostgreSQL database: one is storing a batch of an
    install's events while the other gets its deletion request. The deletion waits for
    the store (their advisory locks), then finds the events and deletes them."""
    install = str(uuid.uuid4())
    storing = pause.store(postgres, usage_of(install))
    forgetting = threading.Thread(target=storage.store, args=(postgres, [[deletion(install)]]))
    forgetting.start()
    assert poll(lambda: waiting_for_a_lock(postgres), 30)
    pause.go()
    storing.join(30)
    forgetting.join(30)
    assert rows_naming(postgres, install) == {}
    assert report_without_deletions(postgres)["invocations"] == 0


def test_a_prune_that_overlaps_a_store_of_the_same_install_and_day_keeps_the_rollups_exact(
    postgres: sa.engine.Engine, pause: Paused
) -> None:
    """A prune deletes an install's only committed event of a day while a store of another
    event of that install and day is under way in another process: the install's row of
    that day stays, with its one event (its count is one row, updated under its lock)."""
    install = str(uuid.uuid4())
    early = event(install_id=install, timestamp="2026-11-23T01:00:00.000Z")
    storage.store(postgres, [[early]])
    later = event(install_id=install, timestamp="2026-11-23T05:00:00.000Z", command="acme hi")
    storing = pause.store(postgres, [later])
    pruning = threading.Thread(target=storage.prune, args=(postgres, "2026-11-23T02:00:00.000Z"))
    pruning.start()
    assert poll(lambda: waiting_for_a_lock(postgres), 30)
    pause.go()
    storing.join(30)
    pruning.join(30)
    with postgres.connect() as connection:
        rows = connection.execute(sa.select(tables.daily_installs)).all()
    assert [tuple(row) for row in rows] == [("acme", "2026-11-23", install, 1)]
    assert report_without_deletions(postgres)["installs"] == 1
