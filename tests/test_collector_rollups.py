"""The report read from the daily rollups equals the report counted from the events, on
SQLite and on PostgreSQL: after resends, for windows that start at midnight or inside a day,
for one tool or all, after a prune that cuts through a day, and after deletion requests
that forget installs (alone, or in a batch with new events of theirs and of others)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Engine
from test_collector_e2e import custom, event, fresh_postgres
from test_collector_forget import deletion

from cli_telemetry.collector import report, rollups, storage, tables


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'rollups.sqlite3'}"
        if request.param == "sqlite"
        else fresh_postgres()
    )
    engine = storage.connect(url)
    yield engine
    engine.dispose()


def iso(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - seconds_ago))


def varied(rng: random.Random, seconds_ago: float) -> dict[str, Any]:
    tool = rng.choice(["acme", "acme", "other"])
    flags = rng.sample(["--env", "--dry-run", "--verbose"], rng.randrange(3))
    return event(
        tool=tool,
        timestamp=iso(seconds_ago),
        command=f"{tool} {rng.choice(['deploy', 'check', 'init'])}",
        tool_version=rng.choice(["1.3.0", "1.4.0"]),
        install_id=str(uuid.UUID(int=rng.randrange(40))),
        flags=flags,
        values={"--env": "prod"} if "--env" in flags else {},
        outcome=rng.choice(["success", "success", "error", "usage_error"]),
        duration_ms=rng.randrange(5000),
        os=rng.choice(["linux", "macos", "windows"]),
        python_version=rng.choice(["3.11.7", "3.12.4"]),
        ci=rng.choice([None, None, "github_actions"]),
    )


def windows() -> list[str]:
    midnight = time.strftime("%Y-%m-%dT00:00:00.000Z", time.gmtime(time.time() - 3 * 86400))
    return [iso(7 * 86400), iso(36 * 3600), iso(3600), midnight, iso(40 * 86400)]


def assert_rollups_agree(engine: Engine) -> None:
    with engine.connect() as connection:  # the tables hold what the events add up to
        tabled = rollups.of_tables(connection, since_day="0")
        assert tabled == rollups.of_rows(connection, since="0")
    for since in windows():
        for tool in (None, "acme"):
            fast = report.build(engine, since=since, tool=tool)
            exact = report.build(engine, since=since, tool=tool, rollups=False)
            assert fast == exact, (since, tool)


def test_the_rollups_agree_with_the_events(engine: Engine) -> None:
    rng = random.Random(5)
    batches = [
        [varied(rng, rng.random() * 12 * 86400) for _ in range(50)] + [custom()] for _ in range(8)
    ]
    for batch in batches:
        storage.store(engine, [batch])
    assert storage.store(engine, [batches[0], batches[1][:10], batches[0][:5]]) == [0, 0, 0]
    future = varied(rng, -3600)  # a client clock a little ahead
    assert storage.store(engine, [[future, future], [future]]) == [1, 0]
    assert report.build(engine, since=iso(12 * 86400), rollups=False)["invocations"] == 401
    assert_rollups_agree(engine)

    storage.prune(engine, iso(5.5 * 86400))  # through the middle of a day
    assert_rollups_agree(engine)
    assert (
        report.build(engine, since=iso(30 * 86400))["invocations"]
        == report.build(engine, since=iso(30 * 86400), rollups=False)["invocations"]
    )

    # Deletion requests: rollup rows that reach zero go, the others lose exactly the
    # forgotten installs' share.
    installs = sorted({str(uuid.UUID(int=n)) for n in rng.sample(range(40), 12)})
    storage.store(engine, [[deletion(i, tool="acme") for i in installs[:4]]])
    assert_rollups_agree(engine)
    storage.store(engine, [[deletion(i, tool="other") for i in installs[:4]]])
    assert_rollups_agree(engine)
    mixed = [varied(rng, rng.random() * 4 * 86400) for _ in range(60)]
    requests = [deletion(i, tool=t) for i in installs[4:] for t in ("acme", "other")]
    storage.store(engine, [mixed[:30], requests, mixed[30:]])
    assert_rollups_agree(engine)
    with engine.connect() as connection:
        for table in ("events", "daily_installs"):
            # (the events of the first four that came after their requests were refused)
            left = set(connection.execute(text(f"select install_id from {table}")).scalars())  # noqa: S608
            assert not set(installs) & left, table
        for table in ("daily_usage", "daily_flags"):
            counts = connection.execute(text(f"select * from {table}")).all()  # noqa: S608
            assert all(row[-1] > 0 for row in counts), table


def test_an_earlier_database_gets_the_daily_installs_counts(engine: Engine) -> None:
    """A ``daily_installs`` made before it counted events gets its counts from the events
    (`tables.create`), and the rollups agree again."""
    rng = random.Random(11)
    storage.store(engine, [[varied(rng, rng.random() * 5 * 86400) for _ in range(200)]])
    with engine.begin() as connection:
        connection.execute(text("alter table daily_installs drop column events"))
    storage.connect(engine.url.render_as_string(hide_password=False)).dispose()
    assert_rollups_agree(engine)
    with engine.connect() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("daily_installs")}
        assert "events" in columns
        least = sa.select(sa.func.min(tables.daily_installs.c.events))
        assert connection.execute(least).scalar_one() > 0
