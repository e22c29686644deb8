"""What the benches that run the example tools share: the tool's script and a user's
environment for it, the sources compiled first, becoming the reaper of the detached
uploaders, and a copy of the library as it was at another commit (for before/after
tables)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


def example_tool(name: str = "cli-app") -> str:
    """The console script of an example tool (``cli-app``, ``typer-app``) beside this
    Python."""
    script = shutil.which(name, path=os.path.dirname(sys.executable))
    if script is None:
        raise SystemExit(f"{name} is not installed next to this Python; run `python3 dev.py test`")
    return script


USER_UNSET = ("DO_NOT_TRACK", "CLI_TELEMETRY_UPLOAD_AT_ONCE", "PYTHONPATH")
"""What a bench's runs never inherit from the shell that starts it: whether telemetry
records, when it uploads, and where Python imports from (each bench sets its own)."""


def user_environ() -> dict[str, str]:
    """This process's environment as a user's run of the example tools has it: without the
    XDG directories (each run gets a HOME of its own), the tools' own variables
    (``CLI_APP_``, ``TYPER_APP_``) and `USER_UNSET`."""
    own = ("XDG_", "CLI_APP_", "TYPER_APP_")
    return {k: v for k, v in os.environ.items() if not k.startswith(own) and k not in USER_UNSET}


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
