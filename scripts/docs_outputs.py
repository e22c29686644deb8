"""Run the commands the docs show and write their outputs into the pages:
``.venv/bin/python scripts/docs_outputs.py`` (``--check``: change nothing, print what
differs and exit 1; tests/test_docs_commands.py runs that).

A command in the docs is a ``$ `` line in a ```` ```console ```` block of README.md or a
page under docs/; the lines after it, up to the next ``$ `` line, are its output. Every
block runs, in a sandbox: a fresh HOME per block (its working directory), the example tools
installed in .venv, a collector on loopback with a SQLite file, which the example tool
sends to (``CLI_APP_ENDPOINT``), ``NO_COLOR=1``, ``TZ=UTC``, ``COLUMNS=80``.

An HTML comment on the line before a block says what else it needs, in words the page's
reader sees in the source (`Marker`)::

    <!-- docs-run: setup=NAME -->           a named function of this file (`SETUPS`) first
    <!-- docs-run: server args="..." -->    a server: run until it answers /healthz, stop it
    <!-- docs-run: synopsis -->              a usage line: every --option of it is in --help
    <!-- docs-run: bench=overhead.json -->   the figures of bench/results/<file>, rendered
    <!-- docs-run: skip "why" covered-by=tests/test_x.py::test_y -->

Only what truly varies is written as a placeholder, in commands and outputs alike: ``<home>``
(the block's HOME), ``<port>`` (its collector's port), ``<install-id>``, ``<time>`` (a UTC
timestamp the command printed), ``<today>``, ``<7 days ago>`` and ``<30 days ago>`` (dates),
``<python>`` (the Python version), and ``<ms>`` for the report's mean durations
(`PLACEHOLDERS`).
Commands run in bash, so pipes, ``$(...)`` and ``export`` work as they read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import difflib
import importlib.util
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import dev  # noqa: E402 - the demo's environment and collector, shared with the docs' runs

REGENERATE = ".venv/bin/python scripts/docs_outputs.py"
MARKER = re.compile(r"^<!-- docs-run: (.*) -->$")
RESULTS = ROOT / "bench" / "results"
CAPTION = "*Measured on"
"""How the line under a bench's block begins: the generator owns that line."""
SETTLE_SECONDS = 60
"""How long a command's uploader may take (it exits within its own deadline; a 2-core CI
machine under load is slow, and a bound is there only so that a hang fails)."""


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclasses.dataclass(frozen=True)
class Marker:
    setup: str | None = None
    server_args: str | None = None
    synopsis: bool = False
    bench: str | None = None
    tool: str | None = None
    skip: str | None = None
    covered_by: str | None = None

    @classmethod
    def parse(cls, text: str) -> Marker:
        fields: dict[str, Any] = {}
        words = shlex.split(text)
        for i, word in enumerate(words):
            key, _, value = word.partition("=")
            if word == "skip":
                if i + 1 >= len(words) or "=" in words[i + 1]:
                    raise ValueError(f'skip needs a reason: skip "why" ({text})')
                fields["skip"] = words[i + 1]
            elif word == "synopsis":
                fields["synopsis"] = True
            elif word == "server":
                fields["server_args"] = ""
            elif key == "args":
                fields["server_args"] = value
            elif key in ("setup", "bench", "tool"):
                fields[key] = value
            elif key == "covered-by":
                fields["covered_by"] = value
            elif i > 0 and words[i - 1] == "skip":
                continue  # the reason
            else:
                raise ValueError(f"unknown word in a docs-run marker: {word!r} ({text})")
        return cls(**fields)


@dataclasses.dataclass
class Command:
    line: str
    """What follows ``$ ``."""
    output: list[str]


@dataclasses.dataclass
class Block:
    page: Path
    first: int
    """The index of the block's first line (after the fence)."""
    end: int
    """The index of its closing fence."""
    marker: Marker
    lines: list[str]

    @property
    def where(self) -> str:
        return f"{name_of(self.page)}:{self.first}"

    def commands(self) -> list[Command]:
        commands: list[Command] = []
        for line in self.lines:
            if line.startswith("$ "):
                commands.append(Command(line[2:], []))
            elif commands:
                commands[-1].output.append(line)
            elif line.strip():
                raise ValueError(f"{self.where}: output before any `$ ` line: {line!r}")
        return commands


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").split("\n")
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            matched = MARKER.match(lines[i - 1]) if i else None
            marker = Marker.parse(matched.group(1)) if matched else Marker()
            found.append(Block(page, i + 1, end, marker, lines[i + 1 : end]))
            i = end
        i += 1
    return found


# --- the sandbox -------------------------------------------------------------------------


class Sandbox:
    """A directory for the run, the shared collector, and what every block's commands get:
    a fresh HOME, the environment, the placeholders' values."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.count = 0
        self.token = f"docs-run-{os.getpid()}"
        """In every command's environment (an uploader inherits it): `settle` waits until no
        process holds it."""

    def env(self, home: Path, port: int) -> dict[str, str]:
        env = dev.isolated_env(str(home), dev.BIN)
        env.update(
            CLI_APP_ENDPOINT=f"http://127.0.0.1:{port}/v1/events",
            NO_COLOR="1",
            TZ="UTC",
            COLUMNS="80",
            LC_ALL="C.UTF-8",
            DOCS_RUN=self.token,
        )
        for name in ("CI", "GITHUB_ACTIONS", "DO_NOT_TRACK", "TERM"):
            env.pop(name, None)  # the tool's CI detection would show in its outputs
        env["TERM"] = "dumb"
        return env

    def fresh_home(self) -> Path:
        self.count += 1
        home = self.root / f"home.{self.count}"
        home.mkdir()
        return home

    def settle(self) -> None:
        """Wait until no process started by a command is left (the uploaders, detached):
        a reader who types the next command a second later sees what they delivered."""
        deadline = time.monotonic() + SETTLE_SECONDS
        needle = f"DOCS_RUN={self.token}".encode()
        while True:
            busy = []
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) == os.getpid():
                    continue
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                except OSError:
                    continue
                if needle in environ.split(b"\0"):
                    busy.append(pid)
            if not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"processes of the docs' commands still run: {busy}")
            time.sleep(0.1)


Stack = contextlib.ExitStack[bool | None]


@dataclasses.dataclass
class Run:
    """One block's run: its HOME, environment and the port its commands' collector uses."""

    sandbox: Sandbox
    home: Path
    env: dict[str, str]
    port: int
    tty: bool = False
    exports: list[str] = dataclasses.field(default_factory=list)
    """The block's ``export`` lines so far: each later command runs after them."""
    stack: Stack = dataclasses.field(default_factory=contextlib.ExitStack)
    """What the block's setup started (servers, a collector), stopped after the block."""

    def sh(self, command: str) -> str:
        """``command`` in bash, with stdout and stderr as one (a terminal shows both)."""
        command = "\n".join([*self.exports, command])
        if self.tty:
            out = run_in_terminal(command, self.env, self.home)
        else:
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=self.home,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
            out = result.stdout.decode()
        self.sandbox.settle()
        return out

    def tool(self, *args: str) -> str:
        return self.sh(shlex.join(["cli-app", *args]))


def run_in_terminal(command: str, env: dict[str, str], cwd: Path) -> str:
    """``command`` with a pseudo-terminal as stdin, stdout and stderr, 80 columns wide:
    what a person at a terminal sees (the tool's notice is shown only there)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
    finally:
        os.close(leader)
        process.wait(timeout=30)
    return b"".join(chunks).decode().replace("\r\n", "\n")


# --- setups ------------------------------------------------------------------------------


class Endpoint(BaseHTTPRequestHandler):
    """A loopback server answering every POST with ``status`` and ``location``."""

    status = 301
    location = "https://telemetry.example.com/v1/events"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.status)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(run: Run, handler: type[BaseHTTPRequestHandler]) -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    run.stack.callback(stop)
    port: int = server.server_address[1]
    return port


def endpoint(run: Run, port: int) -> None:
    run.env["CLI_APP_ENDPOINT"] = f"http://127.0.0.1:{port}/v1/events"


def setup_tty(run: Run) -> None:
    """At a terminal (the notice is shown there), the tool never run before."""
    run.tty = True


def setup_connection_error(run: Run) -> None:
    """Telemetry on, the endpoint a port where nothing listens, two commands run: the
    uploader met a refused connection and backs off."""
    endpoint(run, dev.free_port())
    run.tool("telemetry", "enable")
    run.tool("hello")
    run.tool("hello", "--shout")


def setup_connection_error_then_listening(run: Run) -> None:
    """As `setup_connection_error`, then something listens at the endpoint."""
    setup_connection_error(run)
    endpoint(run, run.port)


def setup_redirect(run: Run) -> None:
    """Telemetry on, the endpoint a loopback server answering 301 to
    https://telemetry.example.com, one command run."""
    endpoint(run, serve(run, Endpoint))
    run.tool("telemetry", "enable")
    run.tool("hello")


def own_collector(run: Run, db: str, **env: str) -> None:
    """A collector of the block's own, storing in ``db``, with ``env``; the tool sends to it."""
    quiet = subprocess.DEVNULL
    env = {**run.env, **env, "DOCS_RUN": ""}  # not one of the commands' processes
    port = run.stack.enter_context(dev.collector(dev.BIN, env, db, stdout=quiet, stderr=quiet))
    if port is None:
        raise RuntimeError("the block's collector did not start")
    run.port = port
    endpoint(run, port)


STORY = [
    ["hello"],
    ["hello", "--shout"],
    ["--verbose", "hello", "--name", "Ada"],
    ["deploy", "start", "web", "--replicas", "3", "--env", "staging"],
    ["deploy", "status", "--format", "json"],
    ["check", "widget.txt"],
]


def setup_collector_db(run: Run) -> None:
    """A collector storing in collector.db in the working directory, the example tool's
    six commands (`STORY`) delivered to it, the collector still running."""
    own_collector(run, f"sqlite:///{run.home}/collector.db")
    run.tool("telemetry", "enable")
    for args in STORY:
        run.tool(*args)


def setup_outbox(run: Run) -> None:
    """A collector storing in collector.db, forwarding to a webhook on a port where nothing
    listens; two commands of the example tool delivered to it."""
    hook = f"http://127.0.0.1:{dev.free_port()}/hook"
    own_collector(run, f"sqlite:///{run.home}/collector.db", TELEMETRY_WEBHOOK_URL=hook)
    run.tool("telemetry", "enable")
    run.tool("hello")
    run.tool("deploy", "start", "web")


def setup_tokens(run: Run) -> None:
    """The token files the commands read: acme.token and read.token."""
    for name in ("acme.token", "read.token"):
        (run.home / name).write_text(os.urandom(16).hex() + "\n")
        (run.home / name).chmod(0o600)


SETUPS: dict[str, Callable[[Run], None]] = {
    "tty": setup_tty,
    "connection-error": setup_connection_error,
    "connection-error-then-listening": setup_connection_error_then_listening,
    "redirect": setup_redirect,
    "collector-db": setup_collector_db,
    "outbox": setup_outbox,
    "tokens": setup_tokens,
}


# --- placeholders ------------------------------------------------------------------------

TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\dZ?")
AVG_MS = re.compile(r"^(  \S.*?\s+\d+\s+\d+\.\d%)\s+\d+$")
"""A row of the report's Commands table: its last column, the mean duration, varies."""


def placeholders(run: Run) -> list[tuple[str, str]]:
    """(value, placeholder), longest value first: what varies from run to run."""
    today = datetime.datetime.now(datetime.UTC).date()
    pairs = [
        (str(run.home), "<home>"),
        (today.isoformat(), "<today>"),
        ((today - datetime.timedelta(days=7)).isoformat(), "<7 days ago>"),
        ((today - datetime.timedelta(days=30)).isoformat(), "<30 days ago>"),
        (platform.python_version(), "<python>"),
    ]
    ids = run.home / ".local/state/cli-app/telemetry/ids"
    if ids.exists():
        for line in ids.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "install_id":
                pairs.append((value.strip(), "<install-id>"))
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def normalise(output: str, run: Run) -> list[str]:
    output = TIMESTAMP.sub("<time>", output)  # before the dates, which are part of one
    for value, placeholder in placeholders(run):
        output = output.replace(value, placeholder)
    lines = output.rstrip("\n").split("\n") if output.strip() else []
    if any(line == "Commands" for line in lines):  # the report: durations are timings
        lines = [AVG_MS.sub(r"\1  <ms>", line) for line in lines]
    return [line.rstrip() for line in lines]


def expand(command: str, run: Run) -> str:
    return command.replace("<home>", str(run.home)).replace("<port>", str(run.port))


# --- running a block ---------------------------------------------------------------------


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))  # its `import measured`
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def bench_lines(marker: Marker) -> list[str]:
    """The block of a bench's committed results: its command, then its table(s)."""
    assert marker.bench is not None
    data = json.loads((RESULTS / marker.bench).read_text(encoding="utf-8"))
    module = load_bench(marker.bench.removesuffix(".json"))
    results = data["results"]
    if "tools" not in results:
        return [f"$ {data['command']}", *module.render(results)]
    tools = results["tools"]
    chosen = [t for t in tools if marker.tool in (None, t["tool"])]
    if not chosen:
        raise ValueError(f"no tool {marker.tool} in {marker.bench}")
    head = [f"$ {data['command']}"] if chosen[0] is tools[0] else []
    return head + [line for tool in chosen for line in module.render(tool)]


def bench_caption(marker: Marker) -> str:
    """The line after a bench's block: when, where and how busy."""
    assert marker.bench is not None
    data = json.loads((RESULTS / marker.bench).read_text(encoding="utf-8"))
    start, end = data["load_average_at_start"], data["load_average_at_end"]
    return (
        f"{CAPTION} {data['date']} at commit `{data['commit']}`, {data['platform']},"
        f" {data['cpus']} CPUs, Python {data['python']}; load average (1 min) {start[0]} at"
        f" the start, {end[0]} at the end (`bench/results/{marker.bench}`).*"
    )


def synopsis_problems(block: Block, sandbox: Sandbox) -> list[str]:
    """Each usage line's --options are in its command's --help."""
    problems = []
    home = sandbox.fresh_home()
    run = Run(sandbox, home, sandbox.env(home, sandbox.port), sandbox.port)
    for command in block.commands():
        runnable = re.sub(r"\s*\[[^]]*\]", "", command.line)
        helped = run.sh(f"{runnable} --help")
        for option in sorted(set(re.findall(r"--[a-z][a-z-]*", command.line))):
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helped):
                problems.append(f"`{command.line}`: {option} is not in `{runnable} --help`")
    return problems


def run_block(block: Block, sandbox: Sandbox) -> list[str]:
    """The block's lines as the commands print them now."""
    if block.marker.bench:
        return bench_lines(block.marker)
    home = sandbox.fresh_home()
    run = Run(sandbox, home, sandbox.env(home, sandbox.port), sandbox.port)
    try:
        if block.marker.setup:
            SETUPS[block.marker.setup](run)
        if block.marker.server_args is not None:
            run.port = dev.free_port()
        lines = []
        for command in block.commands():
            lines.append(f"$ {command.line}")
            if command.line.startswith("export "):
                out = run.sh(expand(command.line, run))
                run.exports.append(expand(command.line, run))
            elif block.marker.server_args is not None:
                out = run_server(f"{command.line} {block.marker.server_args}", run)
            else:
                out = run.sh(expand(command.line, run))
            lines += normalise(out, run)
        return lines
    finally:
        run.stack.close()


def run_server(command: str, run: Run) -> str:
    """A server command: started, left until it answers /healthz on ``run.port``, stopped
    with SIGINT (Ctrl-C); what it printed meanwhile."""
    process = subprocess.Popen(
        ["bash", "-c", "\n".join([*run.exports, expand(command, run)])],
        cwd=run.home,
        env={**run.env, "DOCS_RUN": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C goes to the terminal's process group: the server's
    )
    try:
        if not dev.wait_for(lambda: dev.healthy(run.port) or process.poll() is not None, 60):
            raise TimeoutError(f"`{command}` did not answer on port {run.port}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    return out.decode()


def check_skip(block: Block) -> list[str]:
    test = block.marker.covered_by
    if test is None:
        return []
    path, _, name = test.partition("::")
    file = ROOT / path
    if not file.is_file():
        return [f"{block.where}: covered-by names {path}, which does not exist"]
    if name and not re.search(rf"^def {re.escape(name)}\(", file.read_text(), re.M):
        return [f"{block.where}: covered-by names {test}, which does not exist"]
    return []


@contextlib.contextmanager
def sandbox() -> Iterator[Sandbox]:
    root = Path(tempfile.mkdtemp(prefix="docs-run-"))
    shared = root / "shared"
    shared.mkdir()
    env = dev.isolated_env(str(shared), dev.BIN)
    db = f"sqlite:///{shared}/collector.db"
    try:
        out = subprocess.DEVNULL
        with dev.collector(dev.BIN, env, db, stdout=out, stderr=out) as port:
            if port is None:
                raise RuntimeError("the docs' collector did not start")
            yield Sandbox(root, port)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclasses.dataclass
class Outcome:
    ran: list[str] = dataclasses.field(default_factory=list)
    rendered: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    diffs: list[str] = dataclasses.field(default_factory=list)


def name_of(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def regenerate(write: bool, chosen: list[Path] | None = None) -> Outcome:
    """Run every block of ``chosen`` (default: every page) and compare, or write, what
    the commands print now."""
    outcome = Outcome()
    with sandbox() as box:
        for page in pages() if chosen is None else chosen:
            text = page.read_text(encoding="utf-8")
            lines = text.split("\n")
            for block in reversed(blocks(page)):  # from the end: earlier indexes stay valid
                update(lines, block, box, outcome)
            updated = "\n".join(lines)
            if updated != text:
                name = name_of(page)
                before, after = text.splitlines(), updated.splitlines()
                diff = difflib.unified_diff(before, after, name, f"{name} (as run now)")
                outcome.diffs.append("\n".join(line.rstrip("\n") for line in diff))
                if write:
                    page.write_text(updated, encoding="utf-8")
    return outcome


def update(lines: list[str], block: Block, box: Sandbox, outcome: Outcome) -> None:
    """Put into ``lines`` (its page's) what ``block`` prints now; note what ran or not."""
    marker = block.marker
    if marker.skip is not None:
        outcome.skipped += [f"{block.where}: `{c.line}` ({marker.skip})" for c in block.commands()]
        outcome.problems += check_skip(block)
        return
    if marker.bench:
        outcome.rendered.append(f"{block.where}: bench/results/{marker.bench}")
    else:
        outcome.ran += [f"{block.where}: `{c.line}`" for c in block.commands()]
    if marker.synopsis:
        outcome.problems += [f"{block.where}: {p}" for p in synopsis_problems(block, box)]
        return
    if marker.setup and marker.setup not in SETUPS:
        outcome.problems.append(f"{block.where}: no setup named {marker.setup}")
        return
    new = run_block(block, box)
    lines[block.first : block.end] = new
    if marker.bench:
        after = block.first + len(new) + 1  # the line after the closing fence
        caption = bench_caption(marker)
        if lines[after : after + 1] == [""] and lines[after + 1].startswith(CAPTION):
            lines[after + 1] = caption
        else:
            lines[after:after] = ["", caption]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    only = [a for a in argv if not a.startswith("--")]
    chosen = [p for p in pages() if any(o in name_of(p) for o in only)] if only else None
    outcome = regenerate(write=not check, chosen=chosen)
    print(
        f"{len(outcome.ran)} commands run, {len(outcome.rendered)} bench blocks rendered,"
        f" {len(outcome.skipped)} commands skipped:"
    )
    for skipped in outcome.skipped:
        print(f"  skipped {skipped}")
    for problem in outcome.problems:
        print(f"problem: {problem}")
    if outcome.diffs:
        print("\n".join(outcome.diffs))
        if check:
            print(f"\nThe docs' outputs differ from what the commands print now: run {REGENERATE}")
    return 1 if outcome.problems or (check and outcome.diffs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
