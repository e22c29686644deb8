"""``python -m cli_telemetry``: the ``click-telemetry`` command, for where the console script
is not on PATH (a venv not activated, ``pipx run``, an embedded interpreter)."""

from __future__ import annotations

from .collector.cli import main

if __name__ == "__main__":
    main()
