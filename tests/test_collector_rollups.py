"""The report read from the daily rollups equals the report counted from the events, on
SQLite and on PostgreSQL: after resends, for windows that start at midnight or inside a day,
for one tool or all, after a prune that cuts through a day, and after deletion requests
that forget installs (alone, or in a batch with new events of theirs and of others). Custom
events included: their rollup made from the events stored (`of_events`), from the rows
(`of_rows`) and read from the tables (`of_tables`) are one and the same, and a database of an
earlier release gets its custom events' rollup filled once."""

from __future__ import annotations

import random
import threading
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
from cli_telemetry.collector.rollups import value_key


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


def varied_custom(rng: random.Random, seconds_ago: float) -> dict[str, Any]:
    """A custom event (or now and then an ``identify``, which is not rolled up) with
    properties of every kind, some left out."""
    tool = rng.choice(["acme", "acme", "other"])
    name = rng.choice(["deploy.finished", "deploy.finished", "cache.cleared", "identify"])
    properties: dict[str, Any] = {
        "replicas": rng.choice([0, 1, 2, 3, 15, 16, 40, 1000, -20]),
        "ratio": rng.choice([0.0, 0.25, 2.5, 3.0, 1e300, -0.5]),
        "dry_run": rng.choice([True, False]),
        "env": rng.choice(["dev", "prod", "true", None]),
    }
    properties = {k: v for k, v in properties.items() if rng.random() < 0.8}
    return custom(
        tool=tool, event=name, command=f"{tool} deploy", timestamp=iso(seconds_ago),
        install_id=str(uuid.UUID(int=rng.randrange(40))), properties=properties,
    )  # fmt: skip


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
    with engine.connect() as connection:
        tables = rollups.of_tables(connection, since_day="")
        rows = rollups.of_rows(connection, since="")
    assert tables == rows
    assert tables.custom and all(n > 0 for n in tables.custom.values())


def test_a_value_is_kept_as_itself_or_as_the_range_that_holds_it() -> None:
    assert [value_key(v) for v in ("prod", "true", True, False, None, "é")] == [
        '"prod"', '"true"', "true", "false", "null", '"é"'
    ]  # fmt: skip
    assert [value_key(v) for v in (0, 3, 3.0, -15, 15.0)] == ["0", "3", "3", "-15", "15"]
    assert [value_key(v) for v in (16, 31, 31.9, 32, 2.5, 1.5, 0.25, -0.5)] == [
        "[16, 32)", "[16, 32)", "[16, 32)", "[32, 64)", "[2, 4)", "[1, 2)", "(0, 1)", "(-1, 0)"
    ]  # fmt: skip
    assert [value_key(v) for v in (-16, -31.5, 2**53 - 1, 1e300, -1e300)] == [
        "(-32, -16]", "(-32, -16]", "[4503599627370496, 9007199254740992)",
        "[9007199254740992, ∞)", "(-∞, -9007199254740992]",
    ]  # fmt: skip


def test_custom_events_are_counted_per_property_value(engine: Engine) -> None:
    stored = [
        custom(properties={"replicas": 3, "dry_run": False}),
        custom(properties={"replicas": 3, "dry_run": True}),
        custom(properties={"replicas": 40}),
        custom(event="identify", properties={"plan": "pro"}),
        event(),
    ]
    storage.store(engine, [stored])
    with engine.connect() as connection:
        made = rollups.of_tables(connection, since_day="")
    assert made == rollups.of_events(stored)
    assert dict(made.custom) == {
        ("acme", "2026-11-23", "deploy.finished", "", ""): 3,
        ("acme", "2026-11-23", "deploy.finished", "replicas", "3"): 2,
        ("acme", "2026-11-23", "deploy.finished", "replicas", "[32, 64)"): 1,
        ("acme", "2026-11-23", "deploy.finished", "dry_run", "false"): 1,
        ("acme", "2026-11-23", "deploy.finished", "dry_run", "true"): 1,
    }
    [entry] = report.build(engine, since="2026-11-01T00:00:00.000Z")["custom_events"]
    assert entry == {
        "tool": "acme", "event": "deploy.finished", "count": 3, "properties": [
            {"name": "dry_run", "count": 2, "others": 0,
             "values": [{"value": False, "count": 1}, {"value": True, "count": 1}]},
            {"name": "replicas", "count": 3, "others": 0,
             "values": [{"value": 3, "count": 2}, {"range": "[32, 64)", "count": 1}]},
        ],
    }  # fmt: skip


def test_a_propertys_values_past_the_top_are_counted_together() -> None:
    events = [custom(properties={"env": f"e{n:02}"}) for n in range(12) for _ in range(n + 1)]
    summary = report.summarise(
        rollups.of_events(events), since="2026-11-01T00:00:00.000Z", tool="acme"
    )
    [prop] = summary["custom_events"][0]["properties"]
    assert [v["value"] for v in prop["values"]] == [f"e{n:02}" for n in range(11, 1, -1)]
    assert (prop["count"], prop["others"]) == (78, 3)  # e00 once and e01 twice
    assert "            (others)      3" in report.render(summary).splitlines()


def test_an_earlier_releases_database_gets_its_custom_events_rolled_up_once(
    engine: Engine,
) -> None:
    """A database made before ``daily_custom`` existed: the first start creates the table
    and fills it from the custom events stored; later starts leave it as it is."""
    rng = random.Random(7)
    storage.store(engine, [[varied_custom(rng, rng.random() * 9 * 86400) for _ in range(200)]])
    with engine.connect() as connection:
        expected = rollups.of_tables(connection, since_day="").custom
    assert expected
    with engine.begin() as connection:
        connection.execute(text("drop table daily_custom"))
    for _ in range(2):
        again = storage.connect(engine.url.render_as_string(hide_password=False))
        with again.connect() as connection:
            assert rollups.of_tables(connection, since_day="").custom == expected
        again.dispose()
    assert_rollups_agree(engine)


def test_the_rollups_agree_with_the_events(engine: Engine) -> None:
    rng = random.Random(5)
    batches = [
        [varied(rng, rng.random() * 12 * 86400) for _ in range(50)] + [custom()] for _ in range(8)
    ]
    for batch in batches:
        batch += [varied_custom(rng, rng.random() * 12 * 86400) for _ in range(20)]
    for batch in batches:
        storage.store(engine, [batch])
    assert storage.store(engine, [batches[0], batches[1][:10], batches[0][:5]]) == [0, 0, 0]
    future = varied(rng, -3600)  # a client clock a little ahead
    assert storage.store(engine, [[future, future], [future]]) == [1, 0]
    assert report.build(engine, since=iso(12 * 86400), rollups=False)["invocations"] == 401
    assert_rollups_agree(engine)
    stored = {e["event_id"]: e for e in [*(e for b in batches for e in b), future]}
    with engine.connect() as connection:
        assert rollups.of_tables(connection, since_day="") == rollups.of_events(stored.values())

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
    mixed += [varied_custom(rng, rng.random() * 4 * 86400) for _ in range(20)]
    requests = [deletion(i, tool=t) for i in installs[4:] for t in ("acme", "other")]
    storage.store(engine, [mixed[:30], requests, mixed[30:]])
    assert_rollups_agree(engine)
    with engine.connect() as connection:
        for table in ("events", "daily_installs"):
            # (the events of the first four that came after their requests were refused)
            left = set(connection.execute(text(f"select install_id from {table}")).scalars())  # noqa: S608
            assert not set(installs) & left, table
        for table in ("daily_usage", "daily_flags", "daily_custom"):
            counts = connection.execute(text(f"select * from {table}")).all()  # noqa: S608
            assert all(row[-1] > 0 for row in counts), table


def test_two_engines_storing_the_same_events_at_once_store_each_once(engine: Engine) -> None:
    """As two collector processes would (one of them a resend through another): each
    event is new for exactly one of them, and counted once."""
    rng = random.Random(9)
    batch = [varied(rng, rng.random() * 86400) for _ in range(280)]
    batch += [varied_custom(rng, rng.random() * 86400) for _ in range(20)]
    other = storage.connect(str(engine.url.render_as_string(hide_password=False)))
    counts: list[int] = []
    start = threading.Barrier(4)

    def send(target: Engine) -> None:
        start.wait()
        counts.extend(storage.store(target, [list(batch)]))

    threads = [threading.Thread(target=send, args=(e,)) for e in (engine, other) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    other.dispose()
    assert sorted(counts) == [0, 0, 0, 300]
    assert storage.count(engine) == 300
    assert_rollups_agree(engine)
    with engine.connect() as connection:
        assert rollups.of_tables(connection, since_day="") == rollups.of_events(batch)


def test_an_earlier_database_gets_the_daily_installs_counts(engine: Engine) -> None:
    """A ``daily_installs`` made before it counted events gets its counts from the events
    (`tables.create`), and the rollups agree again."""
    rng = random.Random(11)
    stored = [varied(rng, rng.random() * 5 * 86400) for _ in range(200)]
    storage.store(engine, [[*stored, custom(timestamp=iso(3600))]])
    with engine.begin() as connection:
        connection.execute(text("alter table daily_installs drop column events"))
    storage.connect(engine.url.render_as_string(hide_password=False)).dispose()
    assert_rollups_agree(engine)
    with engine.connect() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("daily_installs")}
        assert "events" in columns
        least = sa.select(sa.func.min(tables.daily_installs.c.events))
        assert connection.execute(least).scalar_one() > 0


def test_the_report_shows_a_value_with_control_characters_as_a_literal() -> None:
    """A collector without ``--schema`` takes any text a client sends: one with an escape
    sequence or a newline must not drive the operator's terminal or forge a table row."""
    assert report.shown({"value": "prod"}) == "prod"
    assert report.shown({"value": "\x1b]0;x\x07\x1b[2J\nfake row"}) == (
        '"\\u001b]0;x\\u0007\\u001b[2J\\nfake row"'
    )
    assert report.shown({"value": True}) == "true"
