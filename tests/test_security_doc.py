"""SECURITY.md names a test for each claim: each named test exists (and so runs in CI)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def named_tests() -> list[tuple[str, str | None]]:
    text = (ROOT / "SECURITY.md").read_text()
    found = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    return [(path, name or None) for path, name in found]


def test_security_md_names_tests_and_each_exists() -> None:
    tests = named_tests()
    assert len(tests) >= 25, "SECURITY.md should name the tests behind its claims"
    for path, name in tests:
        source = ROOT / path
        assert source.is_file(), path
        if name is not None:
            defined = {
                node.name
                for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.FunctionDef)
            }
            assert name in defined, f"{path}::{name} does not exist"
