"""`_identified`: the fingerprint of the traits last identified, kept privately, and what
it tells apart."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from cli_telemetry._identified import fnv1a_64, last_identified, remember, traits_fingerprint


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


INSTALL = "0b5d6c1e-93a4-4f8e-9a57-4ad0cfe2bb11"


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)],
)
def test_fnv1a_64_matches_the_reference_vectors(data: bytes, value: int) -> None:
    assert fnv1a_64(data) == value


def test_the_fingerprint_is_of_the_traits_and_the_install_id_in_any_order() -> None:
    fingerprint = traits_fingerprint(INSTALL, {"plan": "pro", "seats": 5})
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert traits_fingerprint(INSTALL, {"seats": 5, "plan": "pro"}) == fingerprint
    others = [
        traits_fingerprint(INSTALL, {"plan": "free", "seats": 5}),
        traits_fingerprint(INSTALL, {"plan": "pro"}),
        traits_fingerprint(INSTALL, {"plan": "pro", "seats": 6}),
        traits_fingerprint(str(uuid.uuid4()), {"plan": "pro", "seats": 5}),  # a new install
    ]
    assert fingerprint not in others and len(set(others)) == len(others)
    # A value's type is part of it: JSON tells 1, 1.0, true and "1" apart.
    kinds = {traits_fingerprint(INSTALL, {"n": value}) for value in (1, 1.0, True, "1")}
    assert len(kinds) == 4


def test_the_fingerprint_is_stored_privately_and_not_the_traits(tmp_path: Path) -> None:
    path = tmp_path / "identified"
    assert last_identified(str(path)) is None
    fingerprint = traits_fingerprint(INSTALL, {"plan": "pro"})
    old = os.umask(0)
    try:
        remember(str(path), fingerprint)
    finally:
        os.umask(old)
    assert last_identified(str(path)) == fingerprint
    assert _mode(path) == 0o600
    assert path.read_text() == f"traits = {fingerprint}\n"
    assert "pro" not in path.read_text()


def test_a_fingerprint_file_that_is_not_ours_is_no_fingerprint(tmp_path: Path) -> None:
    """Then the next identify is recorded: a planted file cannot silence it."""
    target = tmp_path / "elsewhere"
    target.write_text("traits = 0123456789abcdef\n")
    os.chmod(target, 0o600)
    link = tmp_path / "identified"
    link.symlink_to(target)
    assert last_identified(str(link)) is None
    writable = tmp_path / "writable"
    writable.write_text("traits = 0123456789abcdef\n")
    writable.chmod(0o666)
    assert last_identified(str(writable)) is None
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xff\xfe")
    os.chmod(garbage, 0o600)
    assert last_identified(str(garbage)) is None
