"""`_ids`: the install id is created once, privately, and agreed on by concurrent first runs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import cli_telemetry
from cli_telemetry._ids import Ids, load_or_create_ids, new_event_id, read_ids


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def test_first_call_creates_the_ids_file_privately(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "state" / "acme" / "telemetry" / "ids"
        ids = load_or_create_ids(str(path))
    finally:
        os.umask(old)

    assert _is_uuid(ids.install_id)
    assert uuid.UUID(ids.install_id).version == 4
    assert _mode(path) == 0o600
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert _mode(directory) == 0o700, directory
    assert os.listdir(path.parent) == ["ids"], "no temporary file is left behind"
    assert path.read_text(encoding="utf-8").splitlines() == [f"install_id = {ids.install_id}"]
    assert read_ids(str(path)) == ids


def test_later_calls_return_the_same_ids_and_leave_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    first = load_or_create_ids(str(path))
    content = path.read_bytes()
    inode = path.stat().st_ino

    again = [load_or_create_ids(str(path)) for _ in range(3)]

    assert again == [first, first, first]
    assert path.read_bytes() == content
    assert path.stat().st_ino == inode


def test_different_files_get_different_install_ids(tmp_path: Path) -> None:
    one = load_or_create_ids(str(tmp_path / "a" / "ids"))
    two = load_or_create_ids(str(tmp_path / "b" / "ids"))
    assert one.install_id != two.install_id


GIVEN = "3f1c2a9b-e07d-4c55-a1e2-b3c4d5e6f708"


def test_existing_ids_are_read_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    path.write_text(f"install_id = {GIVEN}\n", encoding="utf-8")
    content, inode = path.read_bytes(), path.stat().st_ino
    assert load_or_create_ids(str(path)) == Ids(GIVEN)
    assert (path.read_bytes(), path.stat().st_ino) == (content, inode)


def test_an_earlier_releases_machine_id_is_deleted_and_its_install_id_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ids"
    path.write_text(f"install_id = {GIVEN}\nmachine_id = {'ab' * 32}\n", encoding="utf-8")
    assert load_or_create_ids(str(path)) == Ids(GIVEN)
    assert path.read_text(encoding="utf-8") == f"install_id = {GIVEN}\n"
    assert _mode(path) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a setting",
        b"{",
        b'{"install_id": "x"}',
        b"install_id =",
        b"install_id = \nmachine_id = m",
        b"install_id = given-id",  # the collector would refuse every event that carried it
        b"install_id = 3F1C2A9B-E07D-4C55-A1E2-B3C4D5E6F708",
        b"machine_id = m",
        b"= x",
        b"install_id = \xff\xfe",
    ],
)
def test_a_corrupt_ids_file_is_replaced_with_valid_ids(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ids"
    path.write_bytes(content)
    path.chmod(0o644)

    ids = load_or_create_ids(str(path))

    assert _is_uuid(ids.install_id)
    assert read_ids(str(path)) == ids
    assert _mode(path) == 0o600
    assert load_or_create_ids(str(path)) == ids
    assert os.listdir(tmp_path) == ["ids"]


_WORKER = """
import sys
from cli_telemetry._ids import load_or_create_ids

paths = sys.argv[1:]
print("ready", flush=True)
sys.stdin.readline()  # the barrier: every process is started and waiting here
print(" ".join(load_or_create_ids(path).install_id for path in paths), flush=True)
"""
ROUNDS = 10
"""Each process makes the first call on this many files, so one run races many times."""


def test_concurrent_first_calls_agree_on_one_install_id(tmp_path: Path) -> None:
    paths = [tmp_path / f"state{i}" / "telemetry" / "ids" for i in range(ROUNDS)]
    # The workers import the very package this test imported, whatever the working directory.
    package_root = str(Path(cli_telemetry.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": package_root, "PYTHONDONTWRITEBYTECODE": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, *map(str, paths)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for _ in range(8)
    ]
    results: list[tuple[int, str, str]] = []
    try:
        for proc in processes:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in processes:  # release them all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in processes:
            out, err = proc.communicate(timeout=60)
            results.append((proc.returncode, out, err))
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert [(code, err) for code, _, err in results] == [(0, "")] * len(processes)
    answers = [out.split() for _, out, _ in results]
    for i, path in enumerate(paths):
        install_ids = {answer[i] for answer in answers}
        assert len(install_ids) == 1, f"{path}: {install_ids}"
        [install_id] = install_ids
        assert _is_uuid(install_id)
        stored = read_ids(str(path))
        assert stored is not None
        assert stored.install_id == install_id
        assert os.listdir(path.parent) == ["ids"], "no temporary file is left behind"


# -- event ids ----------------------------------------------------------------------------


def test_an_event_id_is_a_uuid7_holding_the_records_millisecond() -> None:
    when = 1_795_000_000.1234  # 2026-11-18
    event_id = new_event_id(when)
    parsed = uuid.UUID(event_id)
    assert str(parsed) == event_id  # lowercase, 8-4-4-4-12: what the schema's UUID rule takes
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert int.from_bytes(parsed.bytes[:6], "big") == 1_795_000_000_123
    assert abs(int(new_event_id()[:13].replace("-", ""), 16) / 1000 - time.time()) < 5


def test_event_ids_sort_by_time_and_stay_unique_under_a_burst() -> None:
    """A burst in one millisecond leaves 74 random bits to tell the ids apart; ids of later
    milliseconds sort after (what the collector's index gains by)."""
    burst = [new_event_id(1_795_000_000.0) for _ in range(100_000)]
    assert len(set(burst)) == len(burst)
    assert {uuid.UUID(event_id).version for event_id in burst} == {7}
    later = [new_event_id(1_795_000_000.0 + i / 1000) for i in range(1, 1000)]
    assert max(burst) < min(later) and later == sorted(later)


def test_a_deletion_request_has_a_random_id_that_keeps_no_time() -> None:
    """The collector keeps a request's id (to count a resent one once) with a count by day
    only: a UUIDv7 would keep the moment of ``disable``."""
    from cli_telemetry.deletion import request_for

    request = request_for("acme", str(uuid.uuid4()), 1_795_000_000.0)
    assert uuid.UUID(request["event_id"]).version == 4
