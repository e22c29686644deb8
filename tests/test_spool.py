"""The spool, with real files: append, bounds, claim/ack/release, crash safety, purge.

Every test works in pytest's ``tmp_path`` through the real ``Spool`` (no file system mocks);
the concurrency and import tests run real Python processes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from cli_telemetry._paths import make_private_dir
from cli_telemetry._values import MAX_EVENT_BYTES
from cli_telemetry.spool import LOW_WATER, STALE_TMP_SECONDS, Batch, Spool, SpoolStats

EVENT_NAME = re.compile(r"\d{20}-[0-9a-f]{12}-\d{7}\.json")
SUBPROCESS_TIMEOUT = 60.0


# -- helpers -------------------------------------------------------------------------------


def encode(label: str, size: int | None = None) -> bytes:
    """An event whose ``event_id`` is ``label``, padded to exactly ``size`` bytes if given."""
    data = json.dumps({"event_id": label, "pad": ""}, separators=(",", ":")).encode()
    if size is None:
        return data
    assert size >= len(data)
    data = json.dumps(
        {"event_id": label, "pad": "x" * (size - len(data))}, separators=(",", ":")
    ).encode()
    assert len(data) == size
    return data


def labels(events: list[dict[str, Any]]) -> list[str]:
    return [str(event["event_id"]) for event in events]


def new_names(spool_dir: Path) -> list[str]:
    """The event files in new/, oldest first."""
    new = spool_dir / "new"
    if not new.is_dir():
        return []
    return sorted(p.name for p in new.iterdir() if EVENT_NAME.fullmatch(p.name))


def new_labels(spool_dir: Path) -> list[str]:
    """The ``event_id`` of each event in new/, oldest first."""
    return [
        json.loads((spool_dir / "new" / name).read_bytes())["event_id"]
        for name in new_names(spool_dir)
    ]


def new_bytes(spool_dir: Path) -> int:
    return sum((spool_dir / "new" / name).stat().st_size for name in new_names(spool_dir))


def claimed_dirs(spool_dir: Path) -> list[Path]:
    claimed = spool_dir / "claimed"
    return sorted(claimed.iterdir()) if claimed.is_dir() else []


def event_file_name(time_ns: int, suffix: str = "abcdef012345", size: int = 100) -> str:
    name = f"{time_ns:020d}-{suffix}-{size:07d}.json"
    assert EVENT_NAME.fullmatch(name)
    return name


def set_mtime_ago(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def claim_all(spool: Spool, max_events: int = 100) -> list[Batch]:
    """Claim batches until the spool says there are none (bounded, so it cannot hang)."""
    batches: list[Batch] = []
    for _ in range(1000):
        batch = spool.claim(max_events=max_events)
        if batch is None:
            return batches
        batches.append(batch)
    raise AssertionError("claim() never returned None")


class Messages:
    """A ``report`` callback that remembers what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    def mentioning(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """A spool two levels below tmp_path, so the spool has to create its parents too."""
    return tmp_path / "state" / "spool"


@pytest.fixture
def messages() -> Messages:
    return Messages()


@pytest.fixture
def spool(spool_dir: Path, messages: Messages) -> Spool:
    return Spool(str(spool_dir), report=messages)


# -- append ------------------------------------------------------------------------------


def test_append_writes_one_file_per_event_oldest_first(spool: Spool, spool_dir: Path) -> None:
    spool.append([encode("e0"), encode("e1"), encode("e2")])
    spool.append([encode("e3")])
    spool.append([encode("e4"), encode("e5")])

    names = new_names(spool_dir)
    assert len(names) == 6
    assert sorted(os.listdir(spool_dir / "new")) == names  # nothing but event files
    assert new_labels(spool_dir) == ["e0", "e1", "e2", "e3", "e4", "e5"]
    assert list(os.listdir(spool_dir / "tmp")) == []  # every temp file was renamed


def test_append_stores_exactly_the_bytes_given(spool: Spool, spool_dir: Path) -> None:
    payloads = [
        encode("plain"),
        '{"event_id":"unicode","v":"h\u00e9llo \u2603"}'.encode(),
        encode("big", MAX_EVENT_BYTES),
        b'{"event_id": "spaced" ,\n "trailing": [1, 2, 3] }\n',
    ]
    spool.append(payloads)
    stored = [(spool_dir / "new" / name).read_bytes() for name in new_names(spool_dir)]
    assert stored == payloads


def test_append_with_no_events_writes_nothing(spool: Spool, spool_dir: Path) -> None:
    spool.append([])
    assert new_names(spool_dir) == []
    assert spool.stats().pending == 0


@pytest.mark.usefixtures("permissive_umask")
def test_everything_is_owner_only_even_with_a_permissive_umask(
    spool_dir: Path, messages: Messages
) -> None:
    assert os.umask(0) == 0  # the fixture is in effect
    spool = Spool(str(spool_dir), max_events=2, report=messages)
    spool.append([encode("a"), encode("b")])
    spool.append([encode("c")])  # over the bound: trim writes stats.json and .lock
    batch = spool.claim(max_events=1)  # creates claimed/<batch id>/
    assert batch is not None
    spool.append([encode("d")])

    # a second spool whose parent directory does not exist yet either
    fresh = spool_dir.parent / "other" / "spool"
    other = Spool(str(fresh), max_events=2, report=messages)
    other.append([encode("x"), encode("y"), encode("z")])
    other_batch = other.claim(max_events=1)
    assert other_batch is not None

    def check_tree(root: Path) -> tuple[int, int]:
        dirs = files = 0
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode & 0o777
            if path.is_dir():
                dirs += 1
                assert mode == 0o700, f"{path} is {oct(mode)}"
            else:
                files += 1
                assert mode == 0o600, f"{path} is {oct(mode)}"
        return dirs, files

    # state/ was created by the spool too, so it is checked as well
    dirs, files = check_tree(spool_dir.parent)
    assert (fresh / "stats.json").is_file()
    assert (fresh / ".lock").is_file()
    assert len(claimed_dirs(fresh)) == 1
    assert dirs >= 2 + 4 + 4 + 1  # state, other, the two spools with tmp/new/claimed, a batch
    assert files >= 1 + 1 + 2  # stats.json, .lock, events


def test_many_processes_append_at_once(spool_dir: Path, messages: Messages) -> None:
    workers, per_worker = 8, 25
    # The directories exist already, as they do for every run after the first one; creating
    # them from scratch under concurrency is covered by test_append_recovers_*.
    for sub in ("tmp", "new", "claimed"):
        make_private_dir(str(spool_dir / sub))
    child = (
        "import json, sys\n"
        "from cli_telemetry.spool import Spool\n"
        "spool = Spool(sys.argv[1])\n"
        "worker = sys.argv[2]\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"  # wait for the parent's go, so that all start together
        f"for i in range({per_worker}):\n"
        "    event = {'event_id': f'{worker}-{i:02d}', 'worker': worker, 'i': i}\n"
        "    spool.append([json.dumps(event).encode()])\n"
    )
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", child, str(spool_dir), f"w{n}"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=spool_dir.parent.parent,
                )
            )
            for n in range(workers)
        ]
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", proc.communicate(timeout=SUBPROCESS_TIMEOUT)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
            assert (proc.returncode, out, err) == (0, "", "")

    expected = {f"w{n}-{i:02d}" for n in range(workers) for i in range(per_worker)}
    names = new_names(spool_dir)
    assert len(names) == workers * per_worker
    assert len(set(names)) == len(names)
    assert sorted(os.listdir(spool_dir / "new")) == names
    assert list(os.listdir(spool_dir / "tmp")) == []
    events = [json.loads((spool_dir / "new" / name).read_bytes()) for name in names]
    assert {e["event_id"] for e in events} == expected
    # each process's events sort in the order that process appended them
    for n in range(workers):
        assert [e["i"] for e in events if e["worker"] == f"w{n}"] == list(range(per_worker))

    spool = Spool(str(spool_dir), report=messages)
    assert spool.stats().pending == workers * per_worker
    batches = claim_all(spool, max_events=30)
    claimed = Counter(label for batch in batches for label in labels(batch.events))
    assert set(claimed) == expected
    assert set(claimed.values()) == {1}
    # batches come out oldest first, and each batch in order
    assert [name for batch in batches for name in batch.names] == names
    for batch in batches:
        spool.ack(batch)
    assert spool.stats() == SpoolStats(pending=0, dropped=0, corrupt=0)
    assert claimed_dirs(spool_dir) == []


# -- crash safety --------------------------------------------------------------------------


def test_partial_temp_file_is_not_an_event(spool: Spool, spool_dir: Path) -> None:
    spool.append([encode("whole")])
    partial = spool_dir / "tmp" / event_file_name(1)
    partial.write_bytes(b'{"event_id": "half-writ')

    assert spool.stats().pending == 1
    batch = spool.claim()
    assert batch is not None
    assert labels(batch.events) == ["whole"]
    assert spool.claim() is None
    # a young temp file may belong to a writer that is still running: it stays
    assert partial.read_bytes() == b'{"event_id": "half-writ'
    spool.ack(batch)
    assert spool.stats().pending == 0


def test_claim_removes_old_temp_files_only(spool: Spool, spool_dir: Path) -> None:
    spool.append([encode("e0")])
    old = spool_dir / "tmp" / event_file_name(1)
    old.write_bytes(b'{"event_id": "crashed writer')
    set_mtime_ago(old, STALE_TMP_SECONDS + 60)
    young = spool_dir / "tmp" / event_file_name(2)
    young.write_bytes(b'{"event_id": "live writer')
    set_mtime_ago(young, STALE_TMP_SECONDS - 60)

    batch = spool.claim()
    assert batch is not None
    assert labels(batch.events) == ["e0"]
    assert not old.exists()
    assert young.exists()


def test_claim_removes_old_temp_files_even_with_nothing_to_claim(
    spool: Spool, spool_dir: Path
) -> None:
    make_private_dir(str(spool_dir / "tmp"))
    old = spool_dir / "tmp" / event_file_name(1)
    old.write_bytes(b"{")
    set_mtime_ago(old, STALE_TMP_SECONDS * 2)
    assert spool.claim() is None
    assert not old.exists()


def test_corrupt_events_are_skipped_deleted_counted_and_reported(
    spool: Spool, spool_dir: Path, messages: Messages
) -> None:
    spool.append([encode("e0"), encode("e1"), encode("e2")])
    new = spool_dir / "new"
    truncated = new / event_file_name(1)  # the oldest of all
    truncated.write_bytes(encode("truncated")[:-5])
    not_an_event = new / event_file_name(2)  # valid JSON, but not an event
    not_an_event.write_bytes(b'["event_id", "x"]')
    no_id = new / event_file_name(3)
    no_id.write_bytes(b'{"name": "no event_id"}')
    binary = new / event_file_name(9 * 10**19)  # the newest of all
    binary.write_bytes(b"\xff\xfe\x00garbage")
    corrupt = [truncated, not_an_event, no_id, binary]

    assert spool.stats().pending == 7  # a corrupt file is not known to be corrupt yet
    batch = spool.claim(max_events=3)
    assert batch is not None
    # the corrupt files did not take the good events' places in the batch
    assert labels(batch.events) == ["e0", "e1", "e2"]
    assert [p.exists() for p in corrupt] == [False, False, False, True]
    assert spool.stats().corrupt == 3
    for path in corrupt[:3]:
        assert messages.mentioning(path.name), path.name

    assert spool.claim() is None  # only the newest corrupt file was left
    assert not binary.exists()
    assert messages.mentioning(binary.name)
    stats = spool.stats()
    assert (stats.pending, stats.corrupt, stats.dropped) == (3, 4, 0)
    spool.ack(batch)
    assert spool.stats().pending == 0


def test_foreign_files_are_left_alone_and_reported(
    spool: Spool, spool_dir: Path, messages: Messages
) -> None:
    spool.append([encode("e0")])
    new = spool_dir / "new"
    foreign = {
        "README.txt": b"do not touch",
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
        "notes.json": b'{"event_id": "looks like one"}',
    }
    for name, data in foreign.items():
        (new / name).write_bytes(data)

    assert spool.stats().pending == 1
    batch = spool.claim()
    assert batch is not None
    assert labels(batch.events) == ["e0"]
    for name, data in foreign.items():
        assert (new / name).read_bytes() == data
        assert messages.mentioning(name), name
    assert spool.stats().corrupt == 0
    spool.ack(batch)
    assert spool.claim() is None
    assert spool.stats().pending == 0
    assert spool.purge() == 0
    assert {p.name for p in new.iterdir()} == set(foreign)


def test_append_recovers_when_new_dir_is_missing(spool: Spool, spool_dir: Path) -> None:
    """tmp/ exists but new/ does not: another writer is between its two mkdir calls (or
    was killed there). The event must still land, instead of append failing every time."""
    make_private_dir(str(spool_dir / "tmp"))
    spool.append([encode("e0")])
    assert new_labels(spool_dir) == ["e0"]
    assert spool.stats().pending == 1


def test_names_sort_oldest_first_when_the_clock_does_not_advance(
    spool: Spool, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clocks can be coarse: ``time.time_ns()`` ticks every ~15.6 ms on Windows before
    Python 3.13, so one append of several events can see the same time for all of them."""
    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    expected = [f"e{i:02d}" for i in range(12)]
    spool.append([encode(label) for label in expected])
    monkeypatch.undo()
    assert new_labels(spool_dir) == expected


# -- bounds --------------------------------------------------------------------------------


def test_event_bound_drops_the_oldest_down_to_the_low_water_mark(
    spool_dir: Path, messages: Messages
) -> None:
    max_events = 10
    low_water = int(max_events * LOW_WATER)
    assert low_water == 9
    spool = Spool(str(spool_dir), max_events=max_events, report=messages)
    kept: list[str] = []  # what the spool should hold
    for i in range(25):
        label = f"e{i:02d}"
        spool.append([encode(label)])
        kept.append(label)
        if len(kept) > max_events:
            kept = kept[-low_water:]
        assert new_labels(spool_dir) == kept, f"after {label}"
        assert len(new_names(spool_dir)) <= max_events
        if i == max_events:  # the first append over the bound trims to the low-water mark
            assert len(new_names(spool_dir)) == low_water

    assert kept == [f"e{i:02d}" for i in range(16, 25)]
    stats = spool.stats()
    assert stats == SpoolStats(pending=9, dropped=16, corrupt=0)
    assert messages.mentioning("dropped")


def test_event_bound_with_many_events_in_one_append(spool_dir: Path) -> None:
    spool = Spool(str(spool_dir), max_events=10)
    spool.append([encode(f"e{i:02d}") for i in range(25)])
    assert new_labels(spool_dir) == [f"e{i:02d}" for i in range(16, 25)]
    assert spool.stats().dropped == 16


def test_byte_bound_drops_the_oldest_down_to_the_low_water_mark(
    spool_dir: Path, messages: Messages
) -> None:
    max_bytes = MAX_EVENT_BYTES * 2
    size = 3000
    spool = Spool(str(spool_dir), max_bytes=max_bytes, report=messages)
    kept: list[str] = []
    dropped = 0
    for i in range(25):
        label = f"e{i:02d}"
        spool.append([encode(label, size)])
        kept.append(label)
        if len(kept) * size > max_bytes:
            while len(kept) * size > max_bytes * LOW_WATER:
                kept.pop(0)
                dropped += 1
        assert new_labels(spool_dir) == kept, f"after {label}"
        assert new_bytes(spool_dir) <= max_bytes
        if i == 5:  # 6 x 3000 > 16384: trimmed to 4 x 3000 <= 14745.6
            assert len(kept) == 4

    assert dropped > 0
    stats = spool.stats()
    assert (stats.pending, stats.dropped) == (len(kept), dropped)
    assert messages.mentioning("dropped")


def test_byte_bound_with_events_of_the_largest_size(spool_dir: Path) -> None:
    spool = Spool(str(spool_dir), max_bytes=MAX_EVENT_BYTES * 2)
    spool.append([encode("e0", MAX_EVENT_BYTES), encode("e1", MAX_EVENT_BYTES)])
    assert new_labels(spool_dir) == ["e0", "e1"]  # exactly at the bound is within it
    spool.append([encode("e2", MAX_EVENT_BYTES)])
    assert new_labels(spool_dir) == ["e2"]
    assert spool.stats().dropped == 2


def test_exactly_at_the_byte_bound_is_within_it(spool_dir: Path) -> None:
    spool = Spool(str(spool_dir), max_bytes=9000)
    spool.append([encode(f"e{i}", 3000) for i in range(3)])  # 9000 bytes: sizes are added up
    assert new_labels(spool_dir) == ["e0", "e1", "e2"]
    assert spool.stats().dropped == 0
    spool.append([encode("e3")])  # now over the bound: trimmed to the low-water mark
    assert new_bytes(spool_dir) <= 9000 * LOW_WATER
    assert new_labels(spool_dir)[-1] == "e3"
    assert spool.stats().dropped > 0


def test_trim_within_bounds_drops_nothing(spool: Spool, spool_dir: Path) -> None:
    spool.append([encode("e0"), encode("e1")])
    assert spool.trim() == 0
    assert new_labels(spool_dir) == ["e0", "e1"]
    assert spool.stats().dropped == 0


# -- claim, ack, release -------------------------------------------------------------------


def test_claim_returns_the_oldest_events_in_order(spool: Spool, spool_dir: Path) -> None:
    payloads = [encode(f"e{i}") for i in range(10)]
    for data in payloads:
        spool.append([data])
    names = new_names(spool_dir)

    first = spool.claim(max_events=4)
    assert first is not None
    assert first.events == [json.loads(data) for data in payloads[:4]]
    assert first.names == names[:4]
    assert all(isinstance(event, dict) for event in first.events)
    assert new_names(spool_dir) == names[4:]
    assert spool.stats().pending == 10  # new + claimed

    second = spool.claim(max_events=4)
    assert second is not None
    assert second.batch_id != first.batch_id
    assert labels(second.events) == ["e4", "e5", "e6", "e7"]  # nothing claimed twice
    assert spool.stats().pending == 10

    spool.ack(first)
    assert spool.stats().pending == 6
    assert [p.name for p in claimed_dirs(spool_dir)] == [second.batch_id]

    spool.release(second)
    assert spool.stats().pending == 6
    assert claimed_dirs(spool_dir) == []
    assert new_names(spool_dir) == names[4:]
    again = spool.claim()
    assert again is not None
    assert labels(again.events) == ["e4", "e5", "e6", "e7", "e8", "e9"]
    assert again.names == names[4:]
    spool.ack(again)
    assert spool.stats().pending == 0
    assert spool.claim() is None


def test_peek_reads_the_waiting_events_oldest_first_and_claims_nothing(
    spool: Spool, spool_dir: Path
) -> None:
    assert spool.peek() == []  # no spool yet
    spool.append([encode("e0"), encode("e1")])
    spool.append([encode("e2")])
    (spool_dir / "new" / "README").write_text("not an event")
    (spool_dir / "new" / new_names(spool_dir)[1]).write_text("{corrupt")

    peeked = spool.peek()

    assert [name for name, _ in peeked] == [new_names(spool_dir)[0], new_names(spool_dir)[2]]
    assert labels([event for _, event in peeked]) == ["e0", "e2"]
    assert len(new_names(spool_dir)) == 3  # nothing moved, nothing deleted
    assert claimed_dirs(spool_dir) == []


def test_release_puts_events_back_before_newer_ones(spool: Spool) -> None:
    spool.append([encode(f"e{i}") for i in range(3)])
    batch = spool.claim()
    assert batch is not None
    spool.append([encode("later")])
    spool.release(batch)
    again = spool.claim()
    assert again is not None
    assert labels(again.events) == ["e0", "e1", "e2", "later"]


def test_claim_respects_max_bytes_but_takes_at_least_one(spool: Spool) -> None:
    spool.append([encode(f"e{i}", 1000) for i in range(5)])

    two = spool.claim(max_bytes=2500)
    assert two is not None
    assert labels(two.events) == ["e0", "e1"]

    exact = spool.claim(max_bytes=2000)
    assert exact is not None
    assert labels(exact.events) == ["e2", "e3"]

    one = spool.claim(max_bytes=10)  # the event alone is bigger than the limit
    assert one is not None
    assert labels(one.events) == ["e4"]
    assert spool.claim() is None


def test_claim_on_an_empty_or_missing_spool_returns_none(
    spool: Spool, spool_dir: Path, messages: Messages
) -> None:
    assert not spool_dir.exists()
    assert spool.stats() == SpoolStats(pending=0, dropped=0, corrupt=0)
    assert spool.claim() is None
    spool.append([encode("e0")])
    batch = spool.claim()
    assert batch is not None
    spool.ack(batch)
    assert spool.claim() is None
    assert spool.stats().pending == 0
    assert not messages.mentioning("corrupt")


def test_stale_claim_is_released_by_the_next_claim(spool_dir: Path, messages: Messages) -> None:
    spool = Spool(str(spool_dir), claim_timeout=0.5, report=messages)
    spool.append([encode(f"e{i}") for i in range(5)])
    names = new_names(spool_dir)
    abandoned = spool.claim(max_events=3)  # an uploader that died without ack or release
    assert abandoned is not None
    [claim_dir] = claimed_dirs(spool_dir)
    set_mtime_ago(claim_dir, 60)

    batch = spool.claim()
    assert batch is not None
    assert labels(batch.events) == ["e0", "e1", "e2", "e3", "e4"]
    assert batch.names == names
    assert messages.mentioning(abandoned.batch_id)
    assert spool.stats().pending == 5
    spool.ack(batch)
    assert spool.stats().pending == 0
    assert claimed_dirs(spool_dir) == []


def test_live_claim_is_not_released(spool_dir: Path) -> None:
    spool = Spool(str(spool_dir), claim_timeout=3600)
    spool.append([encode(f"e{i}") for i in range(5)])
    first = spool.claim(max_events=3)
    assert first is not None
    [claim_dir] = claimed_dirs(spool_dir)
    set_mtime_ago(claim_dir, 1800)  # old, but within the timeout
    second = spool.claim()
    assert second is not None
    assert labels(second.events) == ["e3", "e4"]
    assert spool.claim() is None
    spool.ack(first)
    spool.ack(second)
    assert spool.stats().pending == 0


def test_empty_stale_claim_dir_is_cleaned_up(spool_dir: Path) -> None:
    """An uploader that died between creating its batch directory and the first rename."""
    spool = Spool(str(spool_dir), claim_timeout=0.5)
    spool.append([encode("e0")])
    empty = spool_dir / "claimed" / "00000000000000000001-deadbeef"
    make_private_dir(str(empty))
    set_mtime_ago(empty, 60)
    batch = spool.claim()
    assert batch is not None
    assert not empty.exists()
    spool.ack(batch)
    assert claimed_dirs(spool_dir) == []


# -- purge and stats -----------------------------------------------------------------------


def test_purge_removes_everything_and_resets_the_counters(
    spool_dir: Path, messages: Messages
) -> None:
    spool = Spool(str(spool_dir), max_events=10, report=messages)
    for i in range(12):
        spool.append([encode(f"e{i:02d}")])
    (spool_dir / "new" / event_file_name(1)).write_bytes(b"{broken")
    assert spool.claim(max_events=1) is not None  # removes and counts the corrupt one
    batch = spool.claim(max_events=3)
    assert batch is not None
    stray = spool_dir / "tmp" / event_file_name(2)
    stray.write_bytes(b'{"event_id": "partial')
    before = spool.stats()
    assert before.dropped > 0
    assert before.corrupt == 1
    assert before.pending == 10

    assert spool.purge() == 10
    assert spool.stats() == SpoolStats(pending=0, dropped=0, corrupt=0)
    assert new_names(spool_dir) == []
    assert claimed_dirs(spool_dir) == []
    assert list((spool_dir / "tmp").iterdir()) == []
    assert not (spool_dir / "stats.json").exists()
    assert spool.claim() is None
    assert spool.purge() == 0

    # a purged spool still works
    spool.append([encode("after")])
    again = spool.claim()
    assert again is not None
    assert labels(again.events) == ["after"]


def test_purge_of_a_missing_spool_returns_zero(spool: Spool) -> None:
    assert spool.purge() == 0
    assert spool.stats().pending == 0


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"\xff\xfe\x00\x01", b'{"dropped": 3'],
    ids=["syntax", "empty", "binary", "truncated"],
)
def test_corrupt_stats_file_counts_from_zero(
    spool_dir: Path, messages: Messages, content: bytes
) -> None:
    spool = Spool(str(spool_dir), max_events=2, report=messages)
    spool.append([encode("e0")])
    (spool_dir / "stats.json").write_bytes(content)

    stats = spool.stats()
    assert stats == SpoolStats(pending=1, dropped=0, corrupt=0)
    assert messages.mentioning("stats")

    spool.append([encode("e1"), encode("e2")])  # over the bound: trim updates the counters
    assert spool.stats().dropped == 2
    assert json.loads((spool_dir / "stats.json").read_bytes()) == {"dropped": 2}


@pytest.mark.parametrize(
    "content",
    [b"[1, 2]", b'"dropped"', b'{"dropped": "many", "corrupt": true}'],
    ids=["list", "string", "wrong-types"],
)
def test_stats_file_of_the_wrong_shape_counts_from_zero(spool_dir: Path, content: bytes) -> None:
    spool = Spool(str(spool_dir), max_events=2)
    spool.append([encode("e0")])
    (spool_dir / "stats.json").write_bytes(content)
    assert spool.stats() == SpoolStats(pending=1, dropped=0, corrupt=0)
    spool.append([encode("e1"), encode("e2")])
    assert spool.stats().dropped == 2


# -- the hot path's imports ----------------------------------------------------------------


def test_append_within_bounds_does_not_import_filelock(tmp_path: Path) -> None:
    child = (
        "import json, os, sys\n"
        "from cli_telemetry.spool import Spool\n"
        "spool = Spool(sys.argv[1], max_events=3)\n"
        "for i in range(3):\n"
        "    spool.append([json.dumps({'event_id': f'e{i}'}).encode()])\n"
        "print('filelock' in sys.modules)\n"
        "spool.append([json.dumps({'event_id': 'e3'}).encode()])\n"
        "print('filelock' in sys.modules)\n"
        "print(len(os.listdir(os.path.join(sys.argv[1], 'new'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == ["False", "True", "2"]


# -- review follow-ups ---------------------------------------------------------------------


@pytest.mark.parametrize("max_events", [1, 2, 5])
def test_tiny_bounds_keep_the_newest_event(spool_dir: Path, max_events: int) -> None:
    spool = Spool(str(spool_dir), max_events=max_events)
    for i in range(8):
        spool.append([encode(f"e{i}")])
        assert new_labels(spool_dir)[-1] == f"e{i}"
        assert 1 <= len(new_labels(spool_dir)) <= max_events


def test_an_event_larger_than_the_byte_bound_still_survives_alone(spool_dir: Path) -> None:
    spool = Spool(str(spool_dir), max_bytes=1000)
    spool.append([encode("first", 3000)])
    spool.append([encode("second", 3000)])
    assert new_labels(spool_dir) == ["second"]


def test_the_name_carries_the_size_used_for_the_byte_bound(spool: Spool, spool_dir: Path) -> None:
    data = encode("sized", 1234)
    spool.append([data])
    [name] = new_names(spool_dir)
    assert int(name[34:41]) == len(data) == (spool_dir / "new" / name).stat().st_size


@contextmanager
def lock_held_elsewhere(spool_dir: Path) -> Iterator[None]:
    """Another process holds the spool lock until the block ends."""
    make_private_dir(str(spool_dir))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire();"
         " print('held', flush=True); sys.stdin.read()", str(spool_dir / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


def test_ack_release_and_purge_refuse_to_work_without_the_lock(spool_dir: Path) -> None:
    from cli_telemetry.errors import SpoolBusyError

    spool = Spool(str(spool_dir), lock_timeout=0.2)
    spool.append([encode("a")])
    batch = spool.claim()
    assert batch is not None
    with lock_held_elsewhere(spool_dir):
        for operation in (lambda: spool.ack(batch), lambda: spool.release(batch), spool.purge):
            with pytest.raises(SpoolBusyError):
                operation()
        assert claimed_dirs(spool_dir)  # nothing was deleted behind the holder's back
        assert spool.claim() is None  # busy: claims nothing, says so
    spool.ack(batch)
    assert spool.stats().pending == 0


# -- settle: per-sink acknowledgement ------------------------------------------------------


def test_settle_deletes_what_every_sink_has_and_remembers_the_rest(
    spool: Spool, spool_dir: Path
) -> None:
    spool.append([encode(f"e{i}") for i in range(3)])
    batch = spool.claim()
    assert batch is not None and batch.delivered == {}
    first, second, third = batch.names
    have = {first: {"a", "b"}, second: {"a"}, third: set()}
    assert spool.settle(batch, have, ["a", "b"]) == 1
    assert new_labels(spool_dir) == ["e1", "e2"]
    assert not claimed_dirs(spool_dir)
    again = spool.claim()
    assert again is not None
    assert again.delivered == {second: frozenset({"a"})}  # e2 is owed to both
    # The next attempt adds to what was there; a sink no longer wanted does not count.
    assert spool.settle(again, {second: {"b"}, third: {"a", "old"}}, ["a", "b"]) == 1
    assert new_labels(spool_dir) == ["e2"]
    last = spool.claim()
    assert last is not None and last.delivered == {third: frozenset({"a", "old"})}
    assert spool.settle(last, {}, ["a"]) == 1  # "b" was removed: "a" has it
    assert spool.stats().pending == 0
    assert not (spool_dir / "delivered.json").exists()  # nothing left to remember


def test_delivery_marks_of_dropped_events_are_forgotten(spool_dir: Path) -> None:
    spool = Spool(str(spool_dir), max_events=10)
    spool.append([encode(f"e{i}") for i in range(3)])
    batch = spool.claim()
    assert batch is not None
    spool.settle(batch, {name: {"a"} for name in batch.names}, ["a", "b"])
    assert len(json.loads((spool_dir / "delivered.json").read_text())) == 3
    spool.append([encode(f"f{i}") for i in range(10)])  # over the bound: the oldest go
    batch = spool.claim(max_events=1)
    assert batch is not None
    spool.settle(batch, {}, ["a", "b"])
    assert not any(label.startswith("e") for label in new_labels(spool_dir))
    assert not (spool_dir / "delivered.json").exists()  # the marked events were dropped


def test_corrupt_delivery_marks_mean_sending_again_not_losing(
    spool: Spool, spool_dir: Path
) -> None:
    spool.append([encode("e0")])
    batch = spool.claim()
    assert batch is not None
    spool.settle(batch, {batch.names[0]: {"a"}}, ["a", "b"])
    (spool_dir / "delivered.json").write_text("{not json")
    again = spool.claim()
    assert again is not None and labels(again.events) == ["e0"]
    assert again.delivered == {}  # "a" gets it again; it de-duplicates on event_id


def test_claim_skips_the_names_it_is_told_to(spool: Spool) -> None:
    spool.append([encode(f"e{i}") for i in range(3)])
    batch = spool.claim()
    assert batch is not None
    spool.release(batch)
    rest = spool.claim(skip={batch.names[0], batch.names[2]})
    assert rest is not None and labels(rest.events) == ["e1"]


def test_purge_forgets_delivery_marks(spool: Spool, spool_dir: Path) -> None:
    spool.append([encode("e0")])
    batch = spool.claim()
    assert batch is not None
    spool.settle(batch, {batch.names[0]: {"a"}}, ["a", "b"])
    spool.purge()
    assert not (spool_dir / "delivered.json").exists()


def test_settle_counts_each_refused_event_once_however_many_sinks_refuse_it(
    spool: Spool, spool_dir: Path
) -> None:
    spool.append([encode(f"e{i}") for i in range(3)])
    batch = spool.claim()
    assert batch is not None and batch.refused == frozenset()
    first, second, third = batch.names
    # "a" takes e0 and e2 and refuses e1; "b" is down: all three wait for it.
    spool.settle(batch, {name: {"a"} for name in batch.names}, ["a", "b"], refused=[second])
    assert spool.stats().rejected == 1
    marks = json.loads((spool_dir / "delivered.json").read_text())
    assert marks == {first: ["a"], second: {"sinks": ["a"], "refused": True}, third: ["a"]}
    again = spool.claim()
    assert again is not None and again.refused == frozenset({second})
    assert again.delivered == {name: frozenset({"a"}) for name in again.names}
    # "b" refuses e1 too, and e2: only e2 is new.
    assert (
        spool.settle(again, {n: {"b"} for n in again.names}, ["a", "b"], refused=[second, third])
        == 3
    )
    assert (spool.stats().pending, spool.stats().rejected) == (0, 2)
    assert not (spool_dir / "delivered.json").exists()


def test_unattributed_refusals_are_added_as_they_are(spool: Spool) -> None:
    spool.append([encode("e0"), encode("e1")])
    batch = spool.claim()
    assert batch is not None
    spool.settle(batch, {n: {"a"} for n in batch.names}, ["a"], unattributed=2)
    assert (spool.stats().pending, spool.stats().rejected) == (0, 2)


def test_a_refusal_mark_goes_with_its_event(spool_dir: Path) -> None:
    """Acknowledged, dropped by the bounds or purged, a refused event's mark is forgotten
    (and a later event is counted afresh)."""
    spool = Spool(str(spool_dir), max_events=10)
    spool.append([encode("e0")])
    batch = spool.claim()
    assert batch is not None
    spool.settle(batch, {batch.names[0]: {"a"}}, ["a", "b"], refused=batch.names)
    again = spool.claim()
    assert again is not None and again.refused == frozenset(again.names)
    spool.ack(again)
    assert not (spool_dir / "delivered.json").exists()
    spool.append([encode("e1")])
    batch = spool.claim()
    assert batch is not None
    spool.settle(batch, {batch.names[0]: {"a"}}, ["a", "b"], refused=batch.names)
    spool.append([encode(f"f{i}") for i in range(10)])  # over the bound: e1 goes
    assert (spool_dir / "delivered.json").exists()
    batch = spool.claim(max_events=1)
    assert batch is not None and batch.refused == frozenset()
    spool.settle(batch, {}, ["a", "b"])
    assert not (spool_dir / "delivered.json").exists()
    assert spool.stats().rejected == 2


def test_delivery_marks_of_an_earlier_version_are_read(spool: Spool, spool_dir: Path) -> None:
    """Plain lists of sinks (an uploader before refusal marks wrote them) still count;
    entries of neither shape are skipped."""
    spool.append([encode("e0"), encode("e1"), encode("e2")])
    names = new_names(spool_dir)
    (spool_dir / "delivered.json").write_text(
        json.dumps({names[0]: ["a"], names[1]: {"sinks": "a", "refused": "yes"}, names[2]: 3})
    )
    batch = spool.claim()
    assert batch is not None
    assert batch.delivered == {names[0]: frozenset({"a"})}
    assert batch.refused == frozenset()


# -- files it did not make -----------------------------------------------------------------


def test_an_event_file_that_is_a_link_or_too_large_is_dropped_unread(
    spool: Spool, spool_dir: Path, tmp_path: Path, messages: Messages
) -> None:
    """Never read through a link (it could lead to /dev/zero, or another user's file), and
    never more than an event can hold."""
    spool.append([encode("e0")])
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(encode("through-a-link"))
    link = spool_dir / "new" / event_file_name(1)
    link.symlink_to(elsewhere)
    large = spool_dir / "new" / event_file_name(2)
    large.write_bytes(encode("too-large", MAX_EVENT_BYTES + 1))

    batch = spool.claim()

    assert batch is not None and labels(batch.events) == ["e0"]
    assert not os.path.lexists(link) and not large.exists()
    assert elsewhere.read_bytes() == encode("through-a-link")
    assert spool.stats().corrupt == 2
    assert messages.mentioning(link.name) and messages.mentioning(large.name)


def _claimed_link(spool: Spool, spool_dir: Path, tmp_path: Path) -> Path:
    """A directory of someone else's, linked into claimed/ as if it were a batch."""
    spool.append([encode("e0")])
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / event_file_name(5)).write_bytes(encode("not-ours"))
    (victim / "precious").write_text("keep")
    (spool_dir / "claimed" / "00000000000000000001-abcd").symlink_to(victim)
    return victim


def test_purge_deletes_nothing_through_a_link_in_claimed(
    spool: Spool, spool_dir: Path, tmp_path: Path
) -> None:
    victim = _claimed_link(spool, spool_dir, tmp_path)
    assert spool.purge(remove=True) == 1
    assert sorted(p.name for p in victim.iterdir()) == [event_file_name(5), "precious"]
    assert not spool_dir.exists()


def test_claimed_files_behind_a_link_are_neither_released_nor_counted(
    spool: Spool, spool_dir: Path, tmp_path: Path
) -> None:
    victim = _claimed_link(spool, spool_dir, tmp_path)
    assert spool.stats().pending == 1
    assert spool.release_all_claims() == 0
    batch = spool.claim()
    assert batch is not None and labels(batch.events) == ["e0"]
    assert sorted(p.name for p in victim.iterdir()) == [event_file_name(5), "precious"]
