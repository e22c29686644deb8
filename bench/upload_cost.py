"""The uploaders' CPU per recorded command over a day of use:
``python bench/upload_cost.py [--commands 200] [--before REV]``.

A person's day: ``--commands`` runs of the example tool's ``hello`` at random intervals
(exponential, ``--mean-gap`` seconds on average: 200 over eight hours by default; seeded,
so every run sees the same day), telemetry on, sending to a healthy loopback collector.
What is measured is the CPU (user + system) of every uploader the day's commands start,
from the kernel's own accounting: this process makes itself the child subreaper (Linux's
``PR_SET_CHILD_SUBREAPER``), so the detached uploaders, orphaned when their command exits,
become its children, and ``os.wait4`` returns each one's rusage as it is reaped. The
commands' own CPU is reported beside it (`bench/overhead.py` measures their wall time).

The day is compressed, and stays honest this way: a gap shorter than ``--real-gap`` (3 s)
passes for real (the spawn throttle, the uploader's linger and the lock see a real burst);
a longer one is skipped once every uploader has exited (a person's pause outlives an
uploader), by moving the times the library wrote down that much into the past: the
spool's event files, whose names carry their time (the upload policy's only clock), and
the spawn stamp's mtime. Nothing else in the state directory holds a time that matters
with a healthy endpoint (no backoff).

``--before REV`` runs the same day first on the library as it was at that commit (``git
archive``, put first on the tool's PYTHONPATH, which the uploader inherits), so the table
compares before and after on the same machine, minutes apart.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import measured  # bench/measured.py, beside this script
from exit_latency import healthy
from processes import compile_sources, example_tool, library_at, subreaper, user_environ

ROOT = Path(__file__).resolve().parent.parent
STATE = ".local/state/cli-app/telemetry"


def cpu(usage: Any) -> float:
    return float(usage.ru_utime + usage.ru_stime)


class Day:
    """One configuration's day: a HOME, the tool, and the CPU of what it started."""

    def __init__(self, script: str, env: dict[str, str]) -> None:
        self.script = script
        self.env = env
        self.home = Path(env["HOME"])
        self.uploaders = 0
        self.uploader_cpu = 0.0
        self.command_cpu = 0.0

    def reap(self, block: bool) -> None:
        """Collect the uploaders that ended (all of them, waiting, with ``block``)."""
        while True:
            try:
                pid, _, usage = os.wait4(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.uploaders += 1
            self.uploader_cpu += cpu(usage)

    def command(self) -> None:
        argv = [self.script, "hello"]
        with open(os.devnull, "wb") as null:
            pid = os.posix_spawn(
                argv[0], argv, self.env,
                file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1)],
            )  # fmt: skip
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{argv} failed")
        self.command_cpu += cpu(usage)
        self.reap(block=False)

    def skip(self, seconds: float) -> None:
        """Let ``seconds`` pass: once every uploader has exited, move the library's times
        into the past (see the module's doc)."""
        self.reap(block=True)
        state = self.home / STATE
        new = state / "spool" / "new"
        shift = int(seconds * 1e9)
        for path in sorted(new.iterdir()) if new.is_dir() else []:
            name = path.name
            if len(name) == 46 and name[:20].isdigit():
                path.rename(new / f"{int(name[:20]) - shift:020d}{name[20:]}")
        stamp = state / "uploader.stamp"
        if stamp.exists():
            mtime = stamp.stat().st_mtime
            if mtime > 0:
                os.utime(stamp, (mtime - seconds, mtime - seconds))

    def waiting(self) -> int:
        new = self.home / STATE / "spool" / "new"
        return len(list(new.iterdir())) if new.is_dir() else 0


def run_day(script: str, env: dict[str, str], gaps: list[float], real_gap: float) -> Day:
    day = Day(script, env)
    subprocess.run([script, "telemetry", "enable"], env=env, cwd=env["HOME"], check=True,
                   capture_output=True)  # fmt: skip
    for gap in gaps:
        if gap < real_gap:
            time.sleep(gap)  # a burst: the throttle and the linger see it as it is
        else:
            day.skip(gap)
        day.command()
    day.reap(block=True)
    return day


def render(results: dict[str, Any]) -> list[str]:
    """The lines printed for the results (as in the ``--json`` file)."""
    lines = [
        f"a day of {results['commands']} `cli-app hello` at random intervals "
        f"(mean {results['mean_gap']:.0f} s), healthy endpoint",
        f"{'library':<22}{'uploaders':>10}{'uploader CPU':>14}{'per command':>13}"
        f"{'command CPU':>13}{'waiting':>9}",
    ]
    for row in results["days"]:
        lines.append(
            f"{row['library']:<22}{row['uploaders']:>10}{row['uploader_cpu_s']:>13.2f}s"
            f"{row['uploader_cpu_per_command_ms']:>11.1f}ms{row['command_cpu_per_command_ms']:>11.1f}ms"
            f"{row['waiting_at_end']:>9}"
        )
    if len(results["days"]) == 2:
        before, after = (row["uploader_cpu_per_command_ms"] for row in results["days"])
        lines.append(f"uploader CPU per command cut {before / max(after, 1e-9):.1f}-fold")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--mean-gap", type=float, default=8 * 3600 / 200)
    parser.add_argument("--real-gap", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--before", metavar="REV", help="also run the day on the library at REV")
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    run = measured.context(sys.argv)
    subreaper()
    script = example_tool()
    compile_sources()
    rng = random.Random(args.seed)
    gaps = [rng.expovariate(1 / args.mean_gap) for _ in range(args.commands)]
    url, server = healthy()
    work = Path(tempfile.mkdtemp(prefix="cli-telemetry-upload-cost-"))
    base = user_environ()
    libraries: list[tuple[str, str | None]] = []
    if args.before:
        libraries.append((f"before ({args.before})", str(library_at(args.before, work / "lib"))))
    libraries.append(("this checkout", None))
    days = []
    try:
        for label, path in libraries:
            home = work / f"home{len(days)}"
            home.mkdir()
            env = {**base, "HOME": str(home), "CLI_APP_TELEMETRY_ENDPOINT": url}
            if path is not None:
                env["PYTHONPATH"] = path
            day = run_day(script, env, gaps, args.real_gap)
            days.append({
                "library": label,
                "uploaders": day.uploaders,
                "uploader_cpu_s": round(day.uploader_cpu, 3),
                "uploader_cpu_per_command_ms": round(day.uploader_cpu / args.commands * 1000, 2),
                "command_cpu_per_command_ms": round(day.command_cpu / args.commands * 1000, 2),
                "waiting_at_end": day.waiting(),
            })  # fmt: skip
        results = {"commands": args.commands, "mean_gap": args.mean_gap, "seed": args.seed,
                   "real_gap": args.real_gap, "days": days}  # fmt: skip
        print("\n".join(render(results)))
        if args.json:
            measured.write(args.json, run, results)
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
