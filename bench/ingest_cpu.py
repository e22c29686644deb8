"""Collector ingest CPU per event, in process: ``python bench/ingest_cpu.py [--events N]``.

What `bench/collector.py` measures from outside (a server process, 4 clients), taken apart
without the HTTP server: the same gzip bodies of 100 events are read (`body.read`: inflate,
count, parse), checked (`validation.check_batch`) and stored (`storage.store`, groups of 4
batches to a transaction, as 4 clients' batches are stored together by the group commit),
and each stage's CPU time per event is printed, for SQLite and, when
CLI_TELEMETRY_BENCH_POSTGRES is set, for PostgreSQL (that database is emptied first). CPU
time of this process, not wall time: on a shared machine it is what the others' load
changes least (PostgreSQL's own work runs in its server processes, so its figure is the
collector's share only). The events are `collector.make_event`'s: a random time of the last
day each (``--times day``, as in `bench/collector.py`), or of the last minute (``--times
recent``: as events arrive from uploaders that send right after their runs). ``--ids v4``
makes their ids random (UUID4), as clients of earlier releases send them; the default,
``v7``, the ids of their times, as the library makes them now. ``--profile`` prints the
functions that took the most time (cProfile). ``--before N`` first stores N events spread
over the last 30 days (their ids of the same kind), directly: the cost of a random id
grows with the index it goes into.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import os
import pstats
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import collector  # bench/collector.py, beside this script

from cli_telemetry._ids import new_event_id
from cli_telemetry.collector import storage
from cli_telemetry.collector.body import read
from cli_telemetry.collector.validation import check_batch

GROUP = 4


def make_event(ids: str, times: str, day: int = 0) -> dict[str, Any]:
    event = collector.make_event(day)
    if times == "recent":
        at = time.time() - random.random() * 60
        event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at))
        event["event_id"] = new_event_id(at)
    if ids == "v4":
        event["event_id"] = str(uuid.uuid4())
    return event


def make_bodies(events: int, ids: str, times: str) -> list[bytes]:
    made = []
    for _ in range(events // 100):
        batch = [make_event(ids, times) for _ in range(100)]
        made.append(gzip.compress(json.dumps({"batch": batch}).encode()))
    return made


def run(
    url: str, bodies: list[bytes], profile: cProfile.Profile | None, before: int, ids: str
) -> dict[str, float]:
    """CPU seconds per event of each stage."""
    engine = storage.connect(url)
    for start in range(0, before, 10_000):
        count = min(10_000, before - start)
        storage.store(
            engine, [[make_event(ids, "day", random.randrange(30)) for _ in range(count)]]
        )
    spent = {"read": 0.0, "check": 0.0, "store": 0.0}

    def timed(stage: str, work: Callable[[], Any]) -> Any:
        begin = time.process_time()
        result = work()
        spent[stage] += time.process_time() - begin
        return result

    if profile is not None:
        profile.enable()
    stored = 0
    for start in range(0, len(bodies), GROUP):
        group = []
        for raw in bodies[start : start + GROUP]:
            document = timed("read", lambda raw=raw: read(raw, True))
            group.append(timed("check", lambda document=document: check_batch(document)[0]))
        stored += sum(timed("store", lambda group=group: storage.store(engine, group)))
    if profile is not None:
        profile.disable()
    engine.dispose()
    assert stored == len(bodies) * 100, stored
    return {stage: seconds / stored for stage, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--ids", choices=["v4", "v7"], default="v7")
    parser.add_argument("--times", choices=["day", "recent"], default="day")
    parser.add_argument("--before", type=int, default=0, help="events stored first")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    bodies = make_bodies(args.events, args.ids, args.times)
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3"}
        if os.environ.get("CLI_TELEMETRY_BENCH_POSTGRES"):
            databases["postgresql"] = os.environ["CLI_TELEMETRY_BENCH_POSTGRES"]
        for name, url in databases.items():
            if name == "postgresql":
                engine = storage.connect(url)
                storage.metadata.drop_all(engine)
                engine.dispose()
            profile = cProfile.Profile() if args.profile else None
            load = os.getloadavg()[0]
            per_event = run(url, bodies, profile, args.before, args.ids)
            total = sum(per_event.values())
            stages = ", ".join(f"{stage} {s * 1e6:.1f}" for stage, s in per_event.items())
            print(
                f"{name}: {args.events:,} events after {args.before:,}, {args.ids} ids,"
                f" times of the {args.times}:"
                f" {total * 1e6:.1f} µs of CPU per event ({stages}); load average {load:.2f}"
            )
            if profile is not None:
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
