"""Settings: the author's (`ToolConfig`), the environment's (`EnvSettings`, and the debug
output it turns on), the user's config file (`Config`), and the consent decision.

Pure functions over an environment mapping and a config value, so every precedence rule is
unit-testable without touching the disk. The decision is made once per invocation. Every
run of the host tool imports this module, so it holds them all (a module more would cost
~0.1 ms a run).

The config file is a few ``key = value`` lines, not JSON: it is read on every run of the
host tool, and parsing it must not cost the ~1 ms that importing json does. It also lets a
person read it and leave a comment in it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._values import Record

if TYPE_CHECKING:
    from ._aliases import ConsentMode, Pending, Source
    from .providers import Provider


UPLOADER_OPTIONS_VARIABLE: Final = "CLI_TELEMETRY_UPLOADER_OPTIONS"
"""The uploader's options travel in its environment, not its arguments: any user of the
machine can read a process's arguments (``ps``), and an endpoint URL may carry a token.
Named here, where every run finds it, because in a frozen app it is also one of the two
marks of a run started as the uploader (`cli_telemetry._spawn.run_if_frozen_uploader`),
which the command looks for before it imports anything."""

SPAWN_INTERVAL: Final = 2.0
"""A command starts an uploader only if none started (or asked to wait) in this many
seconds (`cli_telemetry._spawn`). Named here because a command checks the stamp before it
imports `cli_telemetry._spawn` (`cli_telemetry.recording`): most runs start nothing."""
UPLOAD_AFTER_EVENTS: Final = 20
"""The upload policy's defaults (`cli_telemetry.recording.upload_due`): a command starts
the uploader once this many events wait, or once the oldest has waited
`UPLOAD_AFTER_SECONDS`. An uploader run costs the user's machine more CPU than the command
it follows (an interpreter, urllib3, a connection) whether it sends one event or a hundred:
at 20 a run, a person's day of 200 commands starts about ten, and the events still reach
the author within the hour (bench/upload_cost.py; docs/delivery/retries.md#when-to-upload)."""
UPLOAD_AFTER_SECONDS: Final = 3600.0
UPLOAD_AT_ONCE_VARIABLE: Final = "CLI_TELEMETRY_UPLOAD_AT_ONCE"
"""A flag: every recorded command starts the uploader (throttled as ever), whatever the
policy says; for tests and demos, where events are expected at the server promptly."""

COLLECTOR: Final = "collector"
COLLECTOR_TARGET: Final = "cli_telemetry.sinks.http:HttpSink"
"""The sink ``endpoint`` describes (`cli_telemetry.providers.Collector`), spelled out here
so that a tool without other sinks never imports the providers module."""


class Privacy(Record):
    """What the author tells their users on the tool's privacy page, beyond what the code
    already knows: who collects, how to reach them, why, and for how long they keep it.

    ``click-telemetry schema --privacy MODULE:ATTR`` writes the page from this and from the
    tool's own configuration (its name, its destinations, its custom events); each detail
    left out becomes a visible ``<placeholder>`` there, and a warning. Every field is
    optional, so that a tool can be instrumented before its page is written.

    - ``collected_by``: who receives the data and answers for it, as users know them
      (``"Acme Ltd"``, ``"Ada Lovelace, the author of acme"``).
    - ``contact``: where a user asks a question or asks for their data to be deleted (an
      email address or a web page).
    - ``purpose``: why, as the end of "The data is used ..." (``"to learn which commands
      people use and which ones fail, so that we can fix them first"``).
    - ``retention_days``: how long the data is kept, in days, before it is deleted (the
      collector keeps 400 by default: say what your ``collector serve --retain`` says).
    - ``forwarded_to``: where your server passes the data on, in plain words
      (``["PostHog, in the European Union"]``): the tool's configuration knows only where
      the tool sends, not what the server behind it does.
    """

    __slots__ = ("collected_by", "contact", "forwarded_to", "purpose", "retention_days")

    def __init__(
        self,
        *,
        collected_by: str | None = None,
        contact: str | None = None,
        purpose: str | None = None,
        retention_days: int | None = None,
        forwarded_to: Sequence[str] = (),
    ) -> None:
        problem = None
        for name, value in (
            ("collected_by", collected_by),
            ("contact", contact),
            ("purpose", purpose),
        ):
            if value is not None and (not isinstance(value, str) or not _one_line(value)):
                problem = f"Privacy {name} must be one line of text, not {value!r}"
        if retention_days is not None and (type(retention_days) is not int or retention_days < 1):
            problem = "Privacy retention_days must be a whole number of at least 1"
        if not isinstance(forwarded_to, (list, tuple)) or not all(
            isinstance(item, str) and _one_line(item) for item in forwarded_to
        ):
            problem = "Privacy forwarded_to must be a list of lines of text"
        if problem is not None:
            from .errors import ConfigurationError  # only an author's mistake pays for it

            raise ConfigurationError(problem)
        self.collected_by: Final = collected_by
        self.contact: Final = contact
        self.purpose: Final = purpose
        self.retention_days: Final = retention_days
        self.forwarded_to: Final = tuple(forwarded_to)


def _one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text and "\r" not in text


class ToolConfig(Record):
    """One tool's telemetry configuration, as the author gave it to `cli_telemetry.Telemetry`
    (see there for each field), checked, as one immutable value.

    Every later stage (recording, consent, status, the ``telemetry`` commands, the
    uploader's options) reads this value and nothing else of `Telemetry`, so none of them
    imports it. A change at run time (`Telemetry.add_sink`) makes a new value, as urllib3's
    ``Timeout`` and ``Retry`` do.
    """

    __slots__ = (
        "consent",
        "endpoint",
        "env_prefix",
        "max_bytes",
        "max_events",
        "policy_version",
        "privacy",
        "privacy_url",
        "record_values",
        "sinks",
        "strict",
        "token",
        "tool",
        "upload_after_events",
        "upload_after_seconds",
        "version",
    )

    def __init__(
        self,
        tool: str,
        version: str,
        *,
        consent: ConsentMode = "notice",
        endpoint: str | None = None,
        token: str | None = None,
        privacy_url: str | None = None,
        policy_version: int = 1,
        strict: bool = False,
        max_events: int | None = None,
        max_bytes: int | None = None,
        sinks: tuple[Provider, ...] = (),
        record_values: frozenset[str] = frozenset(),
        privacy: Privacy | None = None,
        upload_after_events: int = UPLOAD_AFTER_EVENTS,
        upload_after_seconds: float = UPLOAD_AFTER_SECONDS,
    ) -> None:
        self.tool: Final = tool
        self.version: Final = version
        self.env_prefix: Final = tool.upper().replace("-", "_")
        self.consent: Final[ConsentMode] = consent
        self.endpoint: Final = endpoint
        self.token: Final = token
        self.privacy_url: Final = privacy_url
        self.policy_version: Final = policy_version
        self.strict: Final = strict
        self.max_events: Final = max_events
        self.max_bytes: Final = max_bytes
        self.sinks: Final = sinks
        self.record_values: Final = record_values
        self.privacy: Final = privacy or Privacy()
        self.upload_after_events: Final = upload_after_events
        self.upload_after_seconds: Final = upload_after_seconds

    def replace(self, **changes: Any) -> ToolConfig:
        """A copy with ``changes`` (the derived ``env_prefix`` follows ``tool``)."""
        fields = {name: getattr(self, name) for name in self.__slots__ if name != "env_prefix"}
        fields.update(changes)
        return ToolConfig(**fields)

    def sink_names(self) -> list[str]:
        """The sinks' names, the collector (``endpoint``) first."""
        return ([COLLECTOR] if self.endpoint else []) + [sink.name for sink in self.sinks]

    def sink_specs(self, env: EnvSettings) -> list[dict[str, Any]]:
        """What the uploader builds its sinks from (see `cli_telemetry.providers`): the
        collector at ``endpoint`` (or ``<PREFIX>_TELEMETRY_ENDPOINT``), then the others."""
        specs = [sink.to_json() for sink in self.sinks]
        endpoint = env.endpoint or self.endpoint
        if endpoint:
            options = {"endpoint": endpoint, "token": env.token or self.token}
            collector = {"target": COLLECTOR_TARGET, "name": COLLECTOR, "options": options}
            specs = [collector, *(spec for spec in specs if spec["name"] != COLLECTOR)]
        return specs


def env_flag(value: str | None) -> bool:
    """The parsing shared with DO_NOT_TRACK: set to anything but empty, 0 or false.

    Only the empty string is empty: a stray space is "set", because when in doubt a
    privacy switch should count as on.
    """
    return value is not None and value != "" and value.strip().lower() not in ("0", "false")


PYTEST_VARIABLE: Final = "PYTEST_CURRENT_TEST"
CLI_RUNNER_MODULES: Final = {"click.testing": "click's", "typer.testing": "Typer's"}
"""Where the ``CliRunner`` classes live that swap ``sys.stdout`` for their capture while they
run a command: click's, which Typer before 0.26 subclasses, and Typer's own from 0.26."""
RECORD_UNDER_TEST_VARIABLE: Final = "_CLI_TELEMETRY_RECORD_UNDER_TEST"
"""Private: lets a run under a test runner record as a user's run would, in the user's own
files, with the uploader. Only this library's own test suite sets it, because what it tests
is exactly that (a user's run, in a HOME of the test's); an author's tests use the
``telemetry_events`` fixture instead, which records where nothing is ever sent."""


def detect_test_runner(environ: Mapping[str, str], stdout: object) -> str | None:
    """Which test runner is running the tool, in words, or None for a user's run.

    An author who runs their tool in their own tests must not record, nor upload, events of
    their own machine's real install (its config file says "on" once the notice was shown
    there): a test records only when it asks for the ``telemetry_events`` fixture, whose
    directory (`cli_telemetry._paths.TEST_DIR_VARIABLE`) is checked before this. Two signs,
    each one look-up, chosen because a user's run never shows them:

    - ``PYTEST_CURRENT_TEST`` in the environment: pytest sets it while each test runs, in
      its own process (a tool run in process, by any means) and so in every process a test
      starts (``subprocess.run(["acme", ...])``), which inherit it. pytest unsets it
      between tests, so a tool that runs ``pytest.main()`` for its user is still recorded
      once that returns.
    - ``sys.stdout`` is the capture of click's or Typer's ``CliRunner``, which swaps it in
      only while it runs a command: a tool run in process by any test framework (unittest
      too, which sets no variable), and never a user's run.

    ``"pytest" in sys.modules`` was not chosen: a tool may import pytest for its user (a
    test-running command), and its later commands would go unrecorded; ``unittest`` in
    sys.modules would be worse still (``doctest`` and ``unittest.mock`` import it). A test
    started some other way (unittest starting a subprocess) is not recognised: set
    ``DO_NOT_TRACK`` there.
    """
    if PYTEST_VARIABLE in environ:
        runner = f"pytest ({PYTEST_VARIABLE} is set)"
    else:
        whose = CLI_RUNNER_MODULES.get(type(stdout).__module__)
        if whose is None:
            return None
        runner = f"{whose} CliRunner"
    return None if environ.get(RECORD_UNDER_TEST_VARIABLE) else runner


class ConfigError(ValueError):
    """The config file exists but is not a config we wrote."""


def parse_lines(text: str) -> dict[str, str]:
    """``key = value`` lines; blank lines and ``#`` comments are skipped. Last key wins.

    Shared by the config file and the ids file; raises ConfigError on any other line.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"line {number} is not 'key = value'")
        values[key.strip()] = value.strip()
    return values


class Config(Record):
    """The user's recorded choices, stored in ``Paths.config_file``.

    ``consent_policy`` is the policy version that an explicit ``enabled = true`` (from
    ``telemetry enable`` or a "yes" at the prompt) agreed to; ``notice_policy`` the version
    whose notice was shown. A "no" needs no version: no stays no.
    """

    __slots__ = ("consent_policy", "enabled", "notice_policy")

    def __init__(
        self, enabled: bool | None = None, consent_policy: int = 0, notice_policy: int = 0
    ) -> None:
        self.enabled: Final = enabled
        self.consent_policy: Final = consent_policy
        self.notice_policy: Final = notice_policy

    @classmethod
    def from_text(cls, text: str) -> Config:
        values = parse_lines(text)
        enabled = {"true": True, "false": False, None: None}.get(values.get("enabled"), "bad")
        if enabled == "bad":
            raise ConfigError("'enabled' must be true or false")
        versions = [values.get(key, "0") for key in ("consent_policy", "notice_policy")]
        if not all(v.isascii() and v.isdigit() for v in versions):
            raise ConfigError("'consent_policy' and 'notice_policy' must be whole numbers")
        return cls(enabled, int(versions[0]), int(versions[1]))  # type: ignore[arg-type]

    def to_text(self, tool: str) -> str:
        lines = [f"# Telemetry settings for {tool}; `{tool} telemetry enable|disable` rewrites it."]
        if self.enabled is not None:
            lines.append(f"enabled = {'true' if self.enabled else 'false'}")
        if self.consent_policy:
            lines.append(f"consent_policy = {self.consent_policy}")
        if self.notice_policy:
            lines.append(f"notice_policy = {self.notice_policy}")
        return "\n".join(lines) + "\n"

    def with_choice(self, enabled: bool, policy_version: int) -> Config:
        return Config(enabled, policy_version if enabled else 0, self.notice_policy)

    def with_notice(self, policy_version: int) -> Config:
        return Config(self.enabled, self.consent_policy, policy_version)


CONFIG_LIMIT: Final = 64 * 1024


def load_config(path: str) -> Config:
    """Read the config file; a missing file is the empty config, a bad one a ConfigError.

    So is a file this user did not write (`cli_telemetry._paths.read_private`): a link, a
    FIFO or a device, a file another user owns or can write. A planted ``enabled = true``
    turns nothing on; ``telemetry enable`` or ``disable`` replaces such a file.
    """
    from ._paths import UnsafeFile, read_private

    try:
        data = read_private(path, CONFIG_LIMIT)
    except FileNotFoundError:
        return Config()
    except UnsafeFile as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    return Config.from_text(text)


def save_config(path: str, config: Config, tool: str) -> None:
    """Write atomically with owner-only permissions, creating the directory (0700)."""
    from ._paths import make_private_dir, write_private

    make_private_dir(os.path.dirname(path))
    write_private(path, config.to_text(tool))


class EnvSettings(Record):
    """What the environment says, read once. ``prefix`` is the tool's, e.g. ``ACME``."""

    __slots__ = (
        "debug",
        "disabled",
        "disabled_var",
        "do_not_track",
        "endpoint",
        "strict",
        "token",
    )

    def __init__(
        self,
        do_not_track: bool,
        disabled: bool,
        debug: bool,
        strict: bool,
        disabled_var: str,
        endpoint: str | None = None,
        token: str | None = None,
    ) -> None:
        self.do_not_track: Final = do_not_track
        self.disabled: Final = disabled
        self.debug: Final = debug
        self.strict: Final = strict
        self.disabled_var: Final = disabled_var
        self.endpoint: Final = endpoint
        self.token: Final = token

    @classmethod
    def read(cls, prefix: str, environ: Mapping[str, str] | None = None) -> EnvSettings:
        env = os.environ if environ is None else environ
        return cls(
            do_not_track=env_flag(env.get("DO_NOT_TRACK")),
            disabled=env_flag(env.get(f"{prefix}_TELEMETRY_DISABLED")),
            debug=env_flag(env.get(f"{prefix}_TELEMETRY_DEBUG")),
            strict=env_flag(env.get(f"{prefix}_TELEMETRY_STRICT")),
            disabled_var=f"{prefix}_TELEMETRY_DISABLED",
            endpoint=env.get(f"{prefix}_TELEMETRY_ENDPOINT") or None,
            token=env.get(f"{prefix}_TELEMETRY_TOKEN") or None,
        )

    def report(self, message: str) -> None:
        """Say ``message`` on stderr, in debug mode only: with ``<PREFIX>_TELEMETRY_DEBUG=1``
        every failure of ours, and every event that would be recorded, is described there;
        without it, telemetry prints nothing of its own."""
        if self.debug:
            write_stderr(DEBUG_PREFIX + message + "\n")


DEBUG_PREFIX: Final = "cli-telemetry: "


def write_stderr(text: str) -> None:
    """Write to stderr in a way that can never fail the tool: stderr may be closed, None,
    or a broken pipe."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:  # nothing of ours may reach the user as an error
        pass


class Decision(Record):
    """Whether this invocation records, which setting decided, and why, in words.

    ``pending`` is set when consent has not been settled yet: the notice has to be shown or
    the prompt answered before anything is recorded.
    """

    __slots__ = ("config", "enabled", "pending", "reason", "source")

    def __init__(
        self,
        enabled: bool,
        source: Source,
        reason: str,
        pending: Pending | None = None,
        config: Config | None = None,
    ) -> None:
        self.enabled: Final = enabled
        self.source: Final = source
        self.reason: Final = reason
        self.pending: Final = pending
        self.config: Final = config


def decide(
    env: EnvSettings,
    load: Callable[[], Config],
    mode: ConsentMode,
    policy_version: int,
    tool: str,
    untrusted: Callable[[], str | None] | None = None,
    testing: bool = False,
    under_test: Callable[[], str | None] | None = None,
) -> Decision:
    """Apply the precedence: DO_NOT_TRACK, the tool's variable, a test runner, files others
    could change, the config file, the mode.

    ``under_test`` says which test runner runs the tool (`detect_test_runner`), if one
    does: then nothing is recorded, unless the files are a test's (``testing``, below),
    which is how the ``telemetry_events`` fixture asks a test's runs to record.
    ``under_test``, ``untrusted`` and ``load`` are only called when the environment has not
    decided, so a user with DO_NOT_TRACK set costs us no file access at all. ``untrusted``
    says why the files must not be used (`cli_telemetry._paths.untrusted`): then nothing is
    read. A config file we cannot parse, or did not write, decides "off": guessing consent
    from a broken or planted file is not ours to do.

    ``testing`` (the files are a test's, `cli_telemetry._paths.Paths.testing`) stands for
    the mode: the run records as if its user had consented, so that an author's test sees
    what a consenting user's run records, without a notice or a question in its output.
    Everything above it still decides first (a test can check that DO_NOT_TRACK or
    ``telemetry disable`` turn its tool off), and nothing recorded there is ever sent.
    """
    if env.do_not_track:
        return Decision(False, "do_not_track", "DO_NOT_TRACK is set")
    if env.disabled:
        return Decision(False, "env", f"{env.disabled_var} is set")
    runner = under_test() if under_test is not None and not testing else None
    if runner is not None:
        return Decision(
            False,
            "test_runner",
            f"a test runner is running the tool, {runner}; a test records only when it"
            " asks for the telemetry_events fixture",
        )
    why = untrusted() if untrusted is not None else None
    if why is not None:
        return Decision(False, "files", f"{why}, so telemetry uses nothing there")
    try:
        config = load()
    except ConfigError as exc:
        return Decision(
            False,
            "config",
            f"the config file cannot be used ({exc}); `{tool} telemetry enable` or"
            " `disable` rewrites it",
        )
    if config.enabled is False:
        return Decision(False, "config", "turned off in the config file", config=config)
    if config.enabled and config.consent_policy >= policy_version:
        return Decision(True, "config", "turned on in the config file", config=config)
    if testing:
        from ._paths import TEST_DIR_VARIABLE

        return Decision(
            True,
            "env",
            f"{TEST_DIR_VARIABLE} is set (a test): recorded as if you had agreed, never sent",
            config=config,
        )
    if mode == "notice":
        if config.notice_policy >= policy_version:
            return Decision(True, "default", "on by default; the notice was shown", config=config)
        return Decision(
            False,
            "default",
            "on by default, but the one-time notice has not been shown yet",
            pending="notice",
            config=config,
        )
    return Decision(
        False,
        "default",
        f"off until you answer the one-time question (or run `{tool} telemetry enable`)",
        pending="prompt",
        config=config,
    )
