"""Collector throughput and report speed: ``python bench/collector.py [--seconds S]``.

1. Ingest: the collector as a real server process on loopback, 4 client threads posting
   batches of 100 events (gzip, as the uploader sends them; the bodies are made before the
   clock starts, as an uploader's events are on disk already) for ``--seconds``; prints events
   stored per second, for SQLite and, when CLI_TELEMETRY_TEST_POSTGRES is set (dev.py test
   and scripts/postgres.sh provide one), for PostgreSQL.
2. Report: 1,000,000 events inserted directly, then the time of `report.build` over them.
   ``--custom 0.2`` makes a fifth of the events custom events (``deploy.finished`` with
   three properties) instead of command events; the default, 0, only command events.
3. Retention: the events of those older than 15 days (about half) pruned in chunks
   (`retention.prune`), while a writer stores batches of 10 events one after another: how
   long the prune took, and how long a store waited meanwhile (the chunks hold ingest for
   that long at most).

PostgreSQL runs in its own database, ``cli_telemetry_bench`` beside the test database, or
the one CLI_TELEMETRY_BENCH_POSTGRES names. ``--only ingest`` (or ``report``, ``prune``;
repeatable) runs only those parts; ``--json PATH`` also writes the results there, with when,
where and under what load they were measured (bench/measured.py): the docs' figures are
rendered from that file by `render` (scripts/docs_outputs.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import measured  # bench/measured.py, beside this script
import urllib3

from cli_telemetry._ids import new_event_id
from cli_telemetry.collector import report, retention, storage, window

CLI = os.path.join(os.path.dirname(sys.executable), "click-telemetry")
COMMANDS = ["acme deploy start", "acme deploy status", "acme hello", "acme check", "acme init"]


def make_event(day: int = 0) -> dict[str, Any]:
    """A realistic command event, ``day`` days ago (plus a random time of day), its id
    made as the library makes it (a UUIDv7 of its time)."""
    at = time.time() - day * 86400 - random.random() * 86400
    when = time.gmtime(at)
    flags = random.sample(["--env", "--dry-run", "--verbose", "--replicas"], 2)
    return {
        "schema_version": 1,
        "event_id": new_event_id(at),
        "event": "command",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", when),
        "tool": "acme",
        "tool_version": random.choice(["1.3.0", "1.4.0"]),
        "install_id": str(uuid.UUID(int=random.randrange(5000))),
        "command": random.choice(COMMANDS),
        "flags": flags,
        "values": {"--env": "prod"} if "--env" in flags else {},
        "exit_code": 0,
        "outcome": random.choice(["success"] * 9 + ["error"]),
        "error_type": None,
        "duration_ms": random.randrange(2000),
        "os": random.choice(["linux", "macos"]),
        "os_version": "6.1.0",
        "arch": "x86_64",
        "python_version": random.choice(["3.11.7", "3.12.4"]),
        "ci": random.choice([None, None, None, "github_actions"]),
        "interactive": True,
    }


def make_custom_event(day: int = 0) -> dict[str, Any]:
    """A custom event as a tool's ``track`` records it, ``day`` days ago."""
    at = time.time() - day * 86400 - random.random() * 86400
    when = time.gmtime(at)
    return {
        "schema_version": 1,
        "event_id": new_event_id(at),
        "event": "deploy.finished",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", when),
        "tool": "acme",
        "tool_version": random.choice(["1.3.0", "1.4.0"]),
        "install_id": str(uuid.UUID(int=random.randrange(5000))),
        "command": "acme deploy start",
        "os": random.choice(["linux", "macos"]),
        "os_version": "6.1.0",
        "arch": "x86_64",
        "python_version": random.choice(["3.11.7", "3.12.4"]),
        "ci": random.choice([None, None, None, "github_actions"]),
        "interactive": True,
        "properties": {
            "replicas": random.choice([1, 1, 2, 3, 5, 40]),
            "dry_run": random.random() < 0.2,
            "env": random.choice(["dev", "staging", "prod"]),
        },
    }


def any_event(custom: float, day: int = 0) -> dict[str, Any]:
    """A custom event with probability ``custom`` (``--custom``), else a command event."""
    return make_custom_event(day) if custom and random.random() < custom else make_event(day)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` and its children so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def bodies(count: int, custom: float) -> list[bytes]:
    """``count`` gzip request bodies of 100 new events each (no duplicates), made before
    the clock starts: the clients then cost what an uploader costs to send (its events
    are JSON on disk already), and leave the 2 cores to the server as far as they can."""
    made = []
    for _ in range(count):
        batch = {"batch": [any_event(custom) for _ in range(100)]}
        made.append(gzip.compress(json.dumps(batch).encode()))
    return made


def ingest(
    url: str, seconds: float, custom: float, clients: int = 4, rate_cap: int = 40_000
) -> tuple[float, float, float]:
    """Events stored per second, and the CPU seconds per event of server and clients."""
    payloads = bodies(int(seconds * rate_cap / 100), custom)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([CLI, "collector", "serve", "--db", url, "--port", str(port)])
    http = urllib3.PoolManager(maxsize=clients, retries=False)
    endpoint = f"http://127.0.0.1:{port}/v1/events"
    deadline = time.monotonic() + 30
    while True:
        try:
            if http.request("GET", f"http://127.0.0.1:{port}/healthz").status == 200:
                break
        except urllib3.exceptions.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit("the collector did not start") from None
            time.sleep(0.1)
    stored = [0] * clients

    def client(index: int) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                body = payloads.pop()
            except IndexError:
                raise SystemExit("the clients ran out of bodies: raise rate_cap") from None
            response = http.request(
                "POST", endpoint, body=body,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )  # fmt: skip
            assert response.status == 200, response.data
            stored[index] += json.loads(response.data)["stored"]

    start = time.monotonic()
    server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
    server.terminate()
    server.wait(30)
    total = sum(stored)
    return total / elapsed, server_cpu / total, client_cpu / total


def fill(url: str, events: int, custom: float) -> None:
    """Store ``events`` events spread over the last 30 days, directly (no server)."""
    engine = storage.connect(url)
    for start in range(0, events, 10_000):
        count = min(10_000, events - start)
        batch = [any_event(custom, day=random.randrange(30)) for _ in range(count)]
        storage.store(engine, [batch])
        print(f"\r  inserted {start + count:,} events", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    engine.dispose()


def report_time(url: str) -> float:
    """The median time of 3 reports of the last 7 days."""
    engine = storage.connect(url)
    times = []
    for _ in range(3):
        begin = time.perf_counter()
        report.build(engine, since=window.iso_ago(7 * 86400), tool="acme")
        times.append(time.perf_counter() - begin)
    engine.dispose()
    return statistics.median(times)


def prune_while_storing(url: str, custom: float, days: int = 15) -> tuple[int, float, list[float]]:
    """Prune the events older than ``days`` while a writer stores batches of 10: how many
    were pruned, in how many seconds, and each store's time meanwhile."""
    engine, writer = storage.connect(url), storage.connect(url)
    waits: list[float] = []
    done = threading.Event()

    def store() -> None:
        while not done.is_set():
            begin = time.perf_counter()
            storage.store(writer, [[any_event(custom) for _ in range(10)]])
            waits.append(time.perf_counter() - begin)

    thread = threading.Thread(target=store)
    thread.start()
    begin = time.perf_counter()
    pruned = retention.prune(engine, window.iso_ago(days * 86400)) or 0
    seconds = time.perf_counter() - begin
    done.set()
    thread.join()
    engine.dispose()
    writer.dispose()
    return pruned, seconds, waits


PARTS = ("ingest", "report", "prune")


def render(results: dict[str, Any], part: str | None = None) -> list[str]:
    """The lines printed for the results (as in the ``--json`` file), all parts or only
    ``part``: the docs' figures are these lines, rendered from the committed results
    (scripts/docs_outputs.py)."""
    databases: dict[str, dict[str, Any]] = results["databases"]
    width = max(len(name) for name in databases)
    lines: list[str] = []
    ran = [p for p in PARTS if any(p in parts for parts in databases.values())]
    if results.get("custom"):
        lines.append(f"a share of {results['custom']:g} of the events are custom events")
    for name in ran if part is None else [part]:
        rows = {db: parts[name] for db, parts in databases.items() if name in parts}
        if not rows:
            raise ValueError(f"no {name} in these results")
        if name == "ingest":
            lines += [
                f"ingest: the server on loopback, {results['clients']} clients posting batches"
                f" of 100 (gzip) for {results['seconds']:g} s",
                f"{'':<{width}}  {'events/s':>10}  {'server CPU/event':>16}"
                f"  {'clients CPU/event':>17}",
            ]
            for db, row in rows.items():
                lines.append(
                    f"{db:<{width}}  {row['events_per_second']:>10,.0f}"
                    f"  {row['server_cpu_us']:>13.0f} µs  {row['clients_cpu_us']:>14.0f} µs"
                )
        elif name == "report":
            lines.append(
                f"report: the last 7 days of {results['events']:,} events over 30 days"
                " (median of 3)"
            )
            lines += [f"{db:<{width}}  {row['seconds']:.2f} s" for db, row in rows.items()]
        else:
            lines += [
                f"prune: the events older than 15 days of those {results['events']:,}, in"
                f" chunks of {results['chunk']:,},",
                "while a writer stores batches of 10 events, one after another (each store's time)",
                f"{'':<{width}}  {'pruned':>9}  {'took':>6}  {'stores':>6}  {'median':>8}"
                f"  {'p99':>8}  {'worst':>8}",
            ]
            for db, row in rows.items():
                lines.append(
                    f"{db:<{width}}  {row['pruned']:>9,}  {row['seconds']:>4.0f} s"
                    f"  {row['stores']:>6,}  {row['store_median_ms']:>5.0f} ms"
                    f"  {row['store_p99_ms']:>5.0f} ms  {row['store_max_ms']:>5.0f} ms"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="of ingest")
    parser.add_argument("--events", type=int, default=1_000_000, help="for report and prune")
    parser.add_argument("--custom", type=float, default=0.0, help="share of custom events")
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part")
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    parts = args.only or list(PARTS)
    run = measured.context(sys.argv)
    results: dict[str, Any] = {
        "seconds": args.seconds,
        "clients": 4,
        "events": args.events,
        "chunk": retention.CHUNK,
        "custom": args.custom,
        "databases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"sqlite": f"sqlite:///{tmp}/bench.sqlite3"}
        if os.environ.get("CLI_TELEMETRY_TEST_POSTGRES"):
            # Its own database (scripts/postgres.sh makes it): tests running meanwhile
            # empty the test database at will.
            test_url = os.environ["CLI_TELEMETRY_TEST_POSTGRES"]
            databases["postgresql"] = os.environ.get(
                "CLI_TELEMETRY_BENCH_POSTGRES", test_url.rsplit("/", 1)[0] + "/cli_telemetry_bench"
            )
        for name, url in databases.items():
            measured_here: dict[str, Any] = results["databases"].setdefault(name, {})
            if "ingest" in parts:
                engine = storage.connect(url)
                storage.metadata.drop_all(engine)
                engine.dispose()
                rate, server_cpu, client_cpu = ingest(url, args.seconds, args.custom)
                measured_here["ingest"] = {
                    "events_per_second": rate,
                    "server_cpu_us": server_cpu * 1e6,
                    "clients_cpu_us": client_cpu * 1e6,
                }
        for name, url in databases.items():
            if "report" not in parts and "prune" not in parts:
                break
            measured_here = results["databases"][name]
            engine = storage.connect(url)
            storage.metadata.drop_all(engine)
            engine.dispose()
            fill(url, args.events, args.custom)
            if "report" in parts:
                measured_here["report"] = {"seconds": report_time(url)}
            if "prune" in parts:
                pruned, seconds, waits = prune_while_storing(url, args.custom)
                waits.sort()
                measured_here["prune"] = {
                    "pruned": pruned,
                    "seconds": seconds,
                    "stores": len(waits),
                    "store_median_ms": statistics.median(waits) * 1e3,
                    "store_p99_ms": waits[int(len(waits) * 0.99)] * 1e3,
                    "store_max_ms": waits[-1] * 1e3,
                }
    print("\n".join(render(results)))
    if args.json:
        measured.write(args.json, run, results)


if __name__ == "__main__":
    main()
