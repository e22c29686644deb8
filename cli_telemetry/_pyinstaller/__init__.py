"""PyInstaller's hook for cli_telemetry, found through the ``pyinstaller40`` entry point
(pyproject.toml), so that a tool's author builds a frozen app with no flags of ours.

PyInstaller calls `get_hook_dirs` while it builds; nothing of this package is imported by
a tool, its uploader or the collector.
"""

from __future__ import annotations

from pathlib import Path


def get_hook_dirs() -> list[str]:
    """The directory of ``hook-cli_telemetry.py`` (PyInstaller's ``hook-dirs`` entry point)."""
    return [str(Path(__file__).resolve().parent)]
