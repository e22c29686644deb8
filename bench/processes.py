"""What the benches that run the example tool share: its sources compiled first, becoming
the reaper of the detached uploaders, and a copy of the library as it was at another commit
(for before/after tables)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


def compile_sources() -> None:
    """Compile the library, the examples and the stand-in, so that every side imports from
    bytecode, as an installed tool does: with PYTHONDONTWRITEBYTECODE set (as on the CI
    machines), an editable install would otherwise recompile every module on every run,
    and a bench would measure the compiler."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "cli_telemetry"),
         str(ROOT / "examples"), str(ROOT / "bench" / "baseline")],
        check=True,
    )  # fmt: skip


def subreaper() -> None:
    """Make this process the reaper of its orphaned descendants (Linux): a detached
    uploader becomes its child when its command exits, and ``os.wait4`` returns its end
    and its rusage, instead of init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("this bench needs Linux (PR_SET_CHILD_SUBREAPER)")


def library_at(rev: str, into: Path) -> Path:
    """The library as it was at ``rev``, in a directory of its own (for PYTHONPATH)."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", rev, "cli_telemetry"], cwd=ROOT,
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into)], check=True)
    return into
