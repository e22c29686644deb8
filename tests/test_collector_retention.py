"""Retention: a running collector prunes events older than ``--retain`` when it starts and
then on a schedule, in chunks that let ingest through, one process at a time on
PostgreSQL; the rollups agree with the events after every chunk. Real collector processes,
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import poll
from test_collector_e2e import Collector, answer, cli, custom, event, fresh_postgres
from test_collector_forget import deletion

from cli_telemetry.collector import report, retention, storage

DAY = 86400.0


def iso(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - seconds_ago))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    return fresh_postgres()


def aged(count: int, days: float, install: str | None = None) -> list[dict[str, Any]]:
    """Command events (and a custom one in ten) from ``days`` days ago, spread over a day."""
    installs = [install or str(uuid.uuid4()) for _ in range(3)]
    made = []
    for n in range(count):
        when = iso(days * DAY + (n * 7919 % 86400))
        if n % 10 == 9:
            made.append(custom(timestamp=when, install_id=installs[n % 3]))
        else:
            flags = ["--env"] if n % 2 else []
            made.append(
                event(timestamp=when, install_id=installs[n % 3], flags=flags,
                      values={"--env": "prod"} if flags else {})
            )  # fmt: skip
    return made


def count(engine: sa.engine.Engine, table: str = "events") -> int:
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(sa.table(table))
        return int(connection.execute(query).scalar_one())


def assert_rollups_agree(engine: sa.engine.Engine) -> None:
    for since in (iso(3650 * DAY), iso(35 * DAY), iso(29.5 * DAY)):
        assert report.build(engine, since=since) == report.build(
            engine, since=since, rollups=False
        ), since


def test_retain_reads_days_hours_and_never() -> None:
    assert retention.parse("400d") == 400 * DAY
    assert retention.parse(" 36h ") == 36 * 3600
    assert retention.parse("never") is None
    for bad in ("0d", "5m", "400", "d", "1.5d", "-1d", "36501d", ""):
        with pytest.raises(ValueError, match="not a retention"):
            retention.parse(bad)


def test_a_bad_retention_stops_the_collector_with_a_clear_message(tmp_path: Path) -> None:
    result = cli("collector", "serve", "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}",
                 "--retain", "13 months")  # fmt: skip
    assert result.returncode == 2
    assert "--retain" in result.stderr and "not a retention such as 400d" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_running_collector_prunes_what_its_retention_no_longer_keeps(db_url: str) -> None:
    """Events from before the limit vanish when the collector starts, with their rollups,
    what the outbox owed for them and the deletion counts of their days; younger ones
    stay, and so do the erasures still owed to a provider. An old event that arrives later
    goes at the next round."""
    engine = storage.connect(db_url)
    old, young = aged(40, 45), aged(12, 10)
    storage.store(engine, [old, young], ["removed-provider"])
    forgotten = str(uuid.uuid4())  # an install the collector stored, then was asked to forget
    storage.store(engine, [[event(install_id=forgotten, timestamp=iso(45 * DAY))]])
    storage.store(engine, [[deletion(forgotten, timestamp=iso(45 * DAY))]], (), ["gone"])
    storage.store(engine, [[deletion(str(uuid.uuid4()), timestamp=iso(10 * DAY))]])
    assert (count(engine), count(engine, "outbox"), count(engine, "erasures")) == (52, 52, 1)
    server = Collector(db_url, extra=["--retain", "30d"], env={"CLI_TELEMETRY_PRUNE_EVERY": "0.5"})
    try:
        assert poll(lambda: count(engine) == 12, timeout=30)
        assert poll(lambda: count(engine, "deletions") == 1, timeout=30)
        assert count(engine, "outbox") == 12  # the young events' are still owed
        assert count(engine, "erasures") == 1  # never pruned
        assert_rollups_agree(engine)
        api = json.loads(server.get("/api/report?since=3650d").data)
        assert (api["invocations"], api["deletion_requests"]) == (11, 1)

        late = aged(5, 31)
        assert server.send(late) == (200, answer(stored=5))
        assert poll(lambda: count(engine) == 12, timeout=30)
        assert_rollups_agree(engine)
    finally:
        stderr = server.close()
        engine.dispose()
    assert "collector: pruning events older than 30d" in stderr
    assert "1 deletion requests wait for gone, which has no eraser" in stderr


def test_ingest_goes_on_between_the_chunks_of_a_large_prune(db_url: str) -> None:
    """A prune of many events commits chunk after chunk: between two, a batch sent to a
    collector on the same database is stored at once (on SQLite too: the prune holds the
    one write lock for a chunk, never for the whole), and the rollups agree with the events
    after every chunk."""
    engine = storage.connect(db_url)
    old = aged(1050, 45)
    for start in range(0, len(old), 300):
        storage.store(engine, [old[start : start + 300]], ["provider"])
    storage.store(engine, [aged(10, 5)], ["provider"])
    server = Collector(db_url, extra=["--retain", "never"])
    chunks: list[int] = []

    def between_chunks() -> None:
        left = count(engine) - 10 - 20 * len(chunks)
        chunks.append(left)
        assert 0 < left < 1050  # under way
        assert server.send(aged(20, 1)) == (200, answer(stored=20))
        assert_rollups_agree(engine)

    try:
        pruned = retention.prune(engine, iso(30 * DAY), chunk=200, between_chunks=between_chunks)
        assert pruned == 1050
        assert chunks == [850, 650, 450, 250, 50]
        assert count(engine) == 10 + 20 * 5
        assert count(engine, "outbox") == 10  # the batches sent meanwhile owe no provider
        assert_rollups_agree(engine)
    finally:
        server.close()
        engine.dispose()


def test_one_process_prunes_at_a_time_on_postgresql() -> None:
    """A scheduled round that finds another process pruning leaves the round to it;
    ``collector prune`` waits for it instead (run after it, it finds nothing left)."""
    url = fresh_postgres()
    engine, other = storage.connect(url), storage.connect(url)
    storage.store(engine, [aged(250, 45)])
    others: list[int | None] = []

    def between_chunks() -> None:
        others.append(retention.Pruner(other, 30 * DAY).prune_once())

    try:
        pruned = retention.prune(engine, iso(30 * DAY), chunk=100, between_chunks=between_chunks)
        assert pruned == 250
        assert others == [None, None]
        assert retention.Pruner(other, 30 * DAY).prune_once() == 0  # the lock is free again
    finally:
        engine.dispose()
        other.dispose()


def test_collector_prune_still_prunes_and_says_how_many(db_url: str) -> None:
    engine = storage.connect(db_url)
    try:
        storage.store(engine, [aged(30, 100) + aged(4, 1)])
        result = cli("collector", "prune", "--db", db_url, "--older-than", "90d")
        assert (result.returncode, result.stdout) == (0, "deleted 30 event(s) older than 90d\n")
        assert count(engine) == 4
        assert_rollups_agree(engine)
    finally:
        engine.dispose()
