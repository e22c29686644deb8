"""The collector's one writer (`app.Writer`): which batches go into one transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_collector_e2e import event

from cli_telemetry.collector import app, storage


def transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[float]
) -> tuple[list[int], list[int]]:
    """Requests whose reading and checking take ``checks`` seconds each, all begun at once:
    how many events each stored, and how many batches each transaction held."""
    engine = storage.connect(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    held: list[int] = []
    store = storage.store

    def counted(engine: Any, batches: Any, *args: Any) -> list[int]:
        held.append(len(batches))
        return store(engine, batches, *args)

    monkeypatch.setattr(storage, "store", counted)

    async def main() -> list[int]:
        writer = app.Writer(engine)
        running = asyncio.create_task(writer.run())

        async def request(seconds: float) -> int:
            with writer.checking():
                await asyncio.sleep(seconds)
            return await writer.store([event()])

        try:
            return list(await asyncio.gather(*(request(seconds) for seconds in checks)))
        finally:
            running.cancel()

    try:
        return asyncio.run(main()), held
    finally:
        engine.dispose()


def test_a_transaction_waits_for_the_batches_being_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored, held = transactions(tmp_path, monkeypatch, [0, app.GATHER / 4, app.GATHER / 2])
    assert stored == [1, 1, 1]
    assert held == [3]


def test_a_check_that_outlasts_the_wait_goes_in_the_next_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored, held = transactions(tmp_path, monkeypatch, [0, app.GATHER * 10])
    assert stored == [1, 1]
    assert held == [1, 1]
