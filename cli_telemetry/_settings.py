"""Settings and the consent decision: environment, config file, consent mode.

Pure functions over an environment mapping and a config value, so every precedence rule is
unit-testable without touching the disk. The decision is made once per invocation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

ConsentMode = Literal["notice", "prompt"]
Source = Literal["do_not_track", "env", "config", "default"]
"""Which setting decided, highest precedence first."""

_FALSE_WORDS: Final = frozenset({"", "0", "false"})


def env_flag(value: str | None) -> bool:
    """The parsing shared with DO_NOT_TRACK: set to anything but empty, 0 or false."""
    return value is not None and value.strip().lower() not in _FALSE_WORDS


class ConfigError(ValueError):
    """The config file exists but is not a config we wrote."""


@dataclass(frozen=True)
class Config:
    """The user's recorded choices, stored as JSON in ``Paths.config_file``.

    ``consent_policy`` is the policy version that an explicit ``enabled: true`` (from
    ``telemetry enable`` or a "yes" at the prompt) agreed to; ``notice_policy`` the version
    whose notice was shown. A "no" needs no version: no stays no.
    """

    enabled: bool | None = None
    consent_policy: int = 0
    notice_policy: int = 0

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError("not a JSON object")
        enabled = data.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise ConfigError("'enabled' must be true, false or absent")
        versions = [data.get(key, 0) for key in ("consent_policy", "notice_policy")]
        if not all(type(v) is int and v >= 0 for v in versions):
            raise ConfigError("'consent_policy' and 'notice_policy' must be whole numbers")
        return cls(enabled, versions[0], versions[1])

    def to_json(self) -> str:
        data: dict[str, object] = {}
        if self.enabled is not None:
            data["enabled"] = self.enabled
        if self.consent_policy:
            data["consent_policy"] = self.consent_policy
        if self.notice_policy:
            data["notice_policy"] = self.notice_policy
        return json.dumps(data, indent=2) + "\n"

    def with_choice(self, enabled: bool, policy_version: int) -> Config:
        return replace(self, enabled=enabled, consent_policy=policy_version if enabled else 0)


def load_config(path: str) -> Config:
    """Read the config file; a missing file is the empty config, a bad one a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"unreadable ({type(exc).__name__})") from None
    return Config.from_json(text)


def save_config(path: str, config: Config) -> None:
    """Write atomically (temp file, then rename) with owner-only permissions."""
    from ._paths import make_private_dir

    make_private_dir(os.path.dirname(path))
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(config.to_json())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclass(frozen=True)
class EnvSettings:
    """What the environment says, read once. ``prefix`` is the tool's, e.g. ``ACME``."""

    do_not_track: bool
    disabled: bool
    debug: bool
    strict: bool
    disabled_var: str

    @classmethod
    def read(cls, prefix: str, environ: Mapping[str, str] | None = None) -> EnvSettings:
        env = os.environ if environ is None else environ
        return cls(
            do_not_track=env_flag(env.get("DO_NOT_TRACK")),
            disabled=env_flag(env.get(f"{prefix}_TELEMETRY_DISABLED")),
            debug=env_flag(env.get(f"{prefix}_TELEMETRY_DEBUG")),
            strict=env_flag(env.get(f"{prefix}_TELEMETRY_STRICT")),
            disabled_var=f"{prefix}_TELEMETRY_DISABLED",
        )


Pending = Literal["notice", "prompt"]


@dataclass(frozen=True)
class Decision:
    """Whether this invocation records, which setting decided, and why, in words.

    ``pending`` is set when consent has not been settled yet: the notice has to be shown or
    the prompt answered before anything is recorded.
    """

    enabled: bool
    source: Source
    reason: str
    pending: Pending | None = None
    config: Config | None = None


def decide(
    env: EnvSettings,
    load: Callable[[], Config],
    mode: ConsentMode,
    policy_version: int,
    tool: str,
) -> Decision:
    """Apply the precedence: DO_NOT_TRACK, the tool's variable, the config file, the mode.

    ``load`` is only called when the environment has not decided, so a user with
    DO_NOT_TRACK set costs us no file access at all. A config file we cannot parse
    decides "off": guessing consent from a broken file is not ours to do.
    """
    if env.do_not_track:
        return Decision(False, "do_not_track", "DO_NOT_TRACK is set")
    if env.disabled:
        return Decision(False, "env", f"{env.disabled_var} is set")
    try:
        config = load()
    except ConfigError as exc:
        return Decision(
            False,
            "config",
            f"the config file is unreadable ({exc}); `{tool} telemetry enable` or"
            " `disable` rewrites it",
        )
    if config.enabled is False:
        return Decision(False, "config", "turned off in the config file", config=config)
    if config.enabled and config.consent_policy >= policy_version:
        return Decision(True, "config", "turned on in the config file", config=config)
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
