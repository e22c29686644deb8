"""`_settings`: environment flags, the config file, and the consent decision's precedence."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_telemetry._aliases import ConsentMode
from cli_telemetry._settings import (
    Config,
    ConfigError,
    Decision,
    EnvSettings,
    decide,
    detect_test_runner,
    env_flag,
    load_config,
    save_config,
)

# -- env_flag ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "0", "false", "FALSE", "False", " 0 ", " false\n"])
def test_env_flag_false_words(value: str) -> None:
    assert env_flag(value) is False


@pytest.mark.parametrize(
    # "   " is not empty: when in doubt, a privacy switch counts as set.
    "value",
    ["1", "true", "TRUE", "yes", "anything", "no", "off", " 1 ", "00", "   "],
)
def test_env_flag_anything_else_is_true(value: str) -> None:
    assert env_flag(value) is True


def test_env_flag_unset_is_false() -> None:
    assert env_flag(None) is False


# -- EnvSettings ----------------------------------------------------------------------------


def test_env_settings_read_the_tools_variables() -> None:
    env = {
        "ACME_TELEMETRY_DISABLED": "1",
        "ACME_TELEMETRY_DEBUG": "true",
        "ACME_TELEMETRY_STRICT": "yes",
    }
    settings = EnvSettings.read("ACME", env)
    assert settings == EnvSettings(
        do_not_track=False,
        disabled=True,
        debug=True,
        strict=True,
        disabled_var="ACME_TELEMETRY_DISABLED",
    )


def test_env_settings_read_each_variable_separately() -> None:
    assert EnvSettings.read("ACME", {"ACME_TELEMETRY_DEBUG": "1"}).debug is True
    assert EnvSettings.read("ACME", {"ACME_TELEMETRY_DEBUG": "1"}).disabled is False
    assert EnvSettings.read("ACME", {"ACME_TELEMETRY_STRICT": "1"}).strict is True
    assert EnvSettings.read("ACME", {"ACME_TELEMETRY_STRICT": "1"}).debug is False
    assert EnvSettings.read("ACME", {"ACME_TELEMETRY_DISABLED": "1"}).strict is False
    assert EnvSettings.read("ACME", {"DO_NOT_TRACK": "1"}).do_not_track is True


def test_env_settings_ignore_other_prefixes_and_false_values() -> None:
    env = {
        "OTHER_TELEMETRY_DISABLED": "1",
        "OTHER_TELEMETRY_DEBUG": "1",
        "OTHER_TELEMETRY_STRICT": "1",
        "ACME_TELEMETRY_DISABLED": "0",
        "ACME_TELEMETRY_DEBUG": "false",
        "ACME_TELEMETRY_STRICT": "",
        "DO_NOT_TRACK": "0",
    }
    settings = EnvSettings.read("ACME", env)
    assert (settings.do_not_track, settings.disabled, settings.debug, settings.strict) == (
        False,
        False,
        False,
        False,
    )


def test_env_settings_default_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZED_TELEMETRY_DISABLED", "1")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.delenv("ZED_TELEMETRY_DEBUG", raising=False)
    settings = EnvSettings.read("ZED")
    assert settings.disabled is True
    assert settings.do_not_track is True
    assert settings.debug is False
    assert settings.disabled_var == "ZED_TELEMETRY_DISABLED"


# -- the config file's text ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        Config(),
        Config(enabled=True),
        Config(enabled=False),
        Config(enabled=True, consent_policy=3),
        Config(enabled=None, notice_policy=2),
        Config(enabled=True, consent_policy=7, notice_policy=5),
        Config(enabled=False, consent_policy=0, notice_policy=1),
    ],
)
def test_config_round_trips_through_its_text(config: Config) -> None:
    text = config.to_text("acme")
    assert text.startswith("# ")  # says what the file is, for a person who opens it
    assert Config.from_text(text) == config


def test_config_from_text_reads_what_a_person_might_write() -> None:
    assert Config.from_text("") == Config()
    assert Config.from_text("# nothing yet\n\n") == Config()
    assert Config.from_text("enabled = false\nfuture_key = [1]\n") == Config(enabled=False)
    assert Config.from_text("  enabled=true \r\n consent_policy =2") == Config(True, 2, 0)
    assert Config.from_text("enabled = true\nenabled = false") == Config(enabled=False)


@pytest.mark.parametrize(
    "text",
    [
        "not a setting",
        "{enabled: true}",
        "= true",
        "enabled = yes",
        "enabled = 1",
        "enabled = True",
        "enabled =",
        "consent_policy = -1",
        "notice_policy = -3",
        "consent_policy = 1.5",
        "consent_policy = two",
        "notice_policy = ",
        "consent_policy = \u0661",  # an Arabic-Indic digit: isdigit() but not ours
        '{"enabled": true}',
    ],
)
def test_config_from_text_rejects_what_we_did_not_write(text: str) -> None:
    with pytest.raises(ConfigError):
        Config.from_text(text)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_config_from_text_rejects_binary_garbage_as_config_error() -> None:
    """A corrupt file is a ConfigError whatever its content."""
    with pytest.raises(ConfigError):
        Config.from_text("[" * 100_000)


def test_with_choice_records_the_policy_only_for_yes() -> None:
    assert Config(notice_policy=2).with_choice(True, 4) == Config(True, 4, 2)
    assert Config(True, 4, 2).with_choice(False, 5) == Config(False, 0, 2)


# -- load_config / save_config ----------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_load_config_of_a_missing_file_is_the_empty_config(tmp_path: Path) -> None:
    assert load_config(str(tmp_path / "telemetry.conf")) == Config()
    assert load_config(str(tmp_path / "no" / "such" / "dir" / "telemetry.conf")) == Config()


def test_load_config_of_invalid_utf8_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    path.write_bytes(b"enabled = \xff\xfe")
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_load_config_of_a_directory_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    path.mkdir()
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_load_config_of_a_bad_value_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    path.write_text("enabled = yes", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(str(path))


def test_save_then_load(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    config = Config(enabled=True, consent_policy=2, notice_policy=1)
    save_config(str(path), config, "acme")
    assert load_config(str(path)) == config


def test_save_config_creates_the_directories_0700_and_the_file_0600(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "config" / "acme" / "telemetry.conf"
        save_config(str(path), Config(enabled=False), "acme")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "config") == 0o700
    assert _mode(tmp_path / "config" / "acme") == 0o700
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path / "config" / "acme") == ["telemetry.conf"]


def test_save_config_replaces_the_file_atomically(tmp_path: Path) -> None:
    """A rename, not a rewrite in place: a reader of the old file never sees a mix."""
    path = tmp_path / "acme" / "telemetry.conf"
    save_config(str(path), Config(enabled=True, consent_policy=1), "acme")
    path.chmod(0o644)  # as if someone loosened it; the new file must be 0600 again
    old_inode = path.stat().st_ino
    with path.open(encoding="utf-8") as old:
        save_config(str(path), Config(enabled=False), "acme")
        assert Config.from_text(old.read()) == Config(enabled=True, consent_policy=1)
    assert path.stat().st_ino != old_inode
    assert load_config(str(path)) == Config(enabled=False)
    assert _mode(path) == 0o600
    assert os.listdir(path.parent) == ["telemetry.conf"], "no temporary file is left behind"


# -- decide ----------------------------------------------------------------------------------


TOOL = "acme"


def _env(*, do_not_track: bool = False, disabled: bool = False) -> EnvSettings:
    return EnvSettings(
        do_not_track=do_not_track,
        disabled=disabled,
        debug=False,
        strict=False,
        disabled_var="ACME_TELEMETRY_DISABLED",
    )


def _never_load() -> Config:
    pytest.fail("the config file was read although the environment had decided")


def _never_untrusted() -> str | None:
    pytest.fail("the directories were looked at although the environment had decided")


def _corrupt() -> Config:
    raise ConfigError("not JSON (Expecting value: line 1 column 1 (char 0))")


MODES: tuple[ConsentMode, ...] = ("notice", "prompt")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("disabled", [False, True])
def test_do_not_track_beats_everything_and_reads_no_file(mode: ConsentMode, disabled: bool) -> None:
    decision = decide(_env(do_not_track=True, disabled=disabled), _never_load, mode, 1, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "do_not_track", None)
    assert "DO_NOT_TRACK" in decision.reason


def test_do_not_track_is_read_from_the_environment_with_env_flag() -> None:
    env = EnvSettings.read("ACME", {"DO_NOT_TRACK": "1", "ACME_TELEMETRY_DISABLED": "0"})
    decision = decide(env, _never_load, "notice", 1, TOOL)
    assert decision.source == "do_not_track"


@pytest.mark.parametrize("mode", MODES)
def test_the_tools_variable_beats_the_config_and_reads_no_file(mode: ConsentMode) -> None:
    decision = decide(_env(disabled=True), _never_load, mode, 1, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "env", None)
    assert "ACME_TELEMETRY_DISABLED" in decision.reason


@pytest.mark.parametrize("mode", MODES)
def test_config_enabled_beats_the_consent_mode(mode: ConsentMode) -> None:
    config = Config(enabled=True, consent_policy=2)
    decision = decide(_env(), lambda: config, mode, 2, TOOL)
    assert decision == Decision(True, "config", decision.reason, pending=None, config=config)


@pytest.mark.parametrize("mode", MODES)
def test_config_disabled_beats_a_shown_notice(mode: ConsentMode) -> None:
    config = Config(enabled=False, notice_policy=9)
    decision = decide(_env(), lambda: config, mode, 1, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "config", None)
    assert decision.config == config


@pytest.mark.parametrize("mode", MODES)
def test_no_stays_no_after_a_policy_bump(mode: ConsentMode) -> None:
    config = Config(enabled=False)
    decision = decide(_env(), lambda: config, mode, 5, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "config", None)


@pytest.mark.parametrize("mode", MODES)
def test_a_corrupt_config_decides_off(mode: ConsentMode) -> None:
    decision = decide(_env(), _corrupt, mode, 1, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "config", None)
    assert "acme telemetry enable" in decision.reason


def test_a_corrupt_config_file_on_disk_decides_off(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    path.write_bytes(b"\x00\xff garbage")
    decision = decide(_env(), lambda: load_config(str(path)), "notice", 1, TOOL)
    assert (decision.enabled, decision.source) == (False, "config")


@pytest.mark.parametrize(
    ("notice_policy", "expected"),
    [
        (0, (False, "default", "notice")),
        (1, (False, "default", "notice")),
        (2, (True, "default", None)),
    ],
)
def test_consent_to_an_older_policy_is_not_consent_in_notice_mode(
    notice_policy: int, expected: tuple[bool, str, str | None]
) -> None:
    config = Config(enabled=True, consent_policy=1, notice_policy=notice_policy)
    decision = decide(_env(), lambda: config, "notice", 2, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == expected
    assert decision.config == config


def test_consent_to_an_older_policy_is_not_consent_in_prompt_mode() -> None:
    config = Config(enabled=True, consent_policy=1, notice_policy=5)
    decision = decide(_env(), lambda: config, "prompt", 2, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "default", "prompt")


def test_consent_to_a_newer_policy_counts() -> None:
    config = Config(enabled=True, consent_policy=3)
    decision = decide(_env(), lambda: config, "prompt", 2, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (True, "config", None)


@pytest.mark.parametrize("notice_policy", [3, 4])
def test_notice_mode_is_on_once_the_current_notice_was_shown(notice_policy: int) -> None:
    config = Config(notice_policy=notice_policy)
    decision = decide(_env(), lambda: config, "notice", 3, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (True, "default", None)


def test_notice_mode_with_nothing_stored_waits_for_the_notice() -> None:
    decision = decide(_env(), Config, "notice", 1, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "default", "notice")


def test_prompt_mode_with_nothing_stored_waits_for_the_answer() -> None:
    decision = decide(_env(), Config, "prompt", 1, TOOL)
    assert (decision.enabled, decision.source, decision.pending) == (False, "default", "prompt")
    assert decision.config == Config()
    assert "acme telemetry enable" in decision.reason


def test_prompt_mode_ignores_a_shown_notice() -> None:
    decision = decide(_env(), lambda: Config(notice_policy=10), "prompt", 1, TOOL)
    assert (decision.enabled, decision.pending) == (False, "prompt")


@pytest.mark.parametrize("mode", MODES)
def test_a_tests_directory_records_as_if_consent_was_given(mode: ConsentMode) -> None:
    """The pytest fixture's directory (`Paths.testing`) stands in for the consent mode: no
    notice, no question, on at once."""
    decision = decide(_env(), Config, mode, 3, TOOL, testing=True)
    assert (decision.enabled, decision.source, decision.pending) == (True, "env", None)
    assert decision.reason == (
        "CLI_TELEMETRY_TEST_DIR is set (a test): recorded as if you had agreed, never sent"
    )


@pytest.mark.parametrize(
    ("env", "load", "untrusted", "source"),
    [
        (_env(do_not_track=True), _never_load, None, "do_not_track"),
        (_env(disabled=True), _never_load, None, "env"),
        (_env(), _never_load, "/x is writable by other users", "files"),
        (_env(), lambda: Config(enabled=False), None, "config"),
        (_env(), _corrupt, None, "config"),
    ],
    ids=["do-not-track", "tool-variable", "untrusted-files", "disabled", "corrupt-config"],
)
def test_in_a_tests_directory_every_way_to_turn_telemetry_off_still_does(
    env: EnvSettings, load: Callable[[], Config], untrusted: str | None, source: str
) -> None:
    decision = decide(env, load, "notice", 1, TOOL, untrusted=lambda: untrusted, testing=True)
    assert (decision.enabled, decision.source) == (False, source)


# -- a test runner -------------------------------------------------------------------------


def stream_of(module: str) -> object:
    """A stream whose class is defined in ``module``: a ``CliRunner`` swaps such a stream
    (of ``click.testing`` or ``typer.testing``) in for ``sys.stdout``."""
    return type("Stream", (), {"__module__": module})()


PYTEST = "pytest (PYTEST_CURRENT_TEST is set)"


@pytest.mark.parametrize(
    ("environ", "stdout", "runner"),
    [
        ({"PYTEST_CURRENT_TEST": "t.py::t (call)"}, sys.__stdout__, PYTEST),
        ({"PYTEST_CURRENT_TEST": ""}, sys.__stdout__, PYTEST),
        ({}, stream_of("click.testing"), "click's CliRunner"),
        ({}, stream_of("typer.testing"), "Typer's CliRunner"),
        ({"PYTEST_CURRENT_TEST": "t.py::t (call)"}, stream_of("click.testing"), PYTEST),
        ({}, sys.__stdout__, None),  # a user's run
        ({}, stream_of("_pytest.capture"), None),  # pytest's own capture: its variable tells
        ({"PYTEST_XDIST_WORKER": "gw0"}, None, None),  # no stdout at all (pythonw)
    ],
)  # fmt: skip
def test_a_test_runner_is_told_by_pytests_variable_or_a_cli_runners_stdout(
    environ: dict[str, str], stdout: object, runner: str | None
) -> None:
    assert detect_test_runner(environ, stdout) == runner


def test_the_suites_private_opt_in_records_under_a_test_runner() -> None:
    environ = {"PYTEST_CURRENT_TEST": "t.py::t (call)", "_CLI_TELEMETRY_RECORD_UNDER_TEST": "1"}
    assert detect_test_runner(environ, stream_of("click.testing")) is None


@pytest.mark.parametrize("mode", MODES)
def test_a_test_runner_beats_the_config_file_and_reads_no_file(mode: ConsentMode) -> None:
    decision = decide(
        _env(), _never_load, mode, 1, TOOL, untrusted=_never_untrusted, under_test=lambda: "pytest"
    )
    assert (decision.enabled, decision.source, decision.pending) == (False, "test_runner", None)
    assert decision.reason == (
        "a test runner is running the tool, pytest; a test records only when it asks for the"
        " telemetry_events fixture"
    )


@pytest.mark.parametrize("env", [_env(do_not_track=True), _env(disabled=True)])
def test_the_environment_beats_a_test_runner_which_is_not_even_looked_for(
    env: EnvSettings,
) -> None:
    def never() -> str | None:
        pytest.fail("looked for a test runner although the environment had decided")

    decision = decide(env, _never_load, "notice", 1, TOOL, under_test=never)
    assert decision.source in ("do_not_track", "env")


def test_the_fixtures_directory_records_under_a_test_runner() -> None:
    """The ``telemetry_events`` fixture's directory is how a test asks to record."""

    def never() -> str | None:
        pytest.fail("looked for a test runner in the fixture's directory")

    decision = decide(_env(), Config, "notice", 1, TOOL, testing=True, under_test=never)
    assert (decision.enabled, decision.source) == (True, "env")


def test_without_a_test_runner_the_config_decides() -> None:
    config = Config(enabled=True, consent_policy=1)
    decision = decide(_env(), lambda: config, "notice", 1, TOOL, under_test=lambda: None)
    assert (decision.enabled, decision.source) == (True, "config")


def test_the_config_is_loaded_once_when_the_environment_is_silent() -> None:
    calls: list[int] = []

    def load() -> Config:
        calls.append(1)
        return Config(enabled=True, consent_policy=1)

    decision = decide(_env(), load, "notice", 1, TOOL)
    assert decision.enabled is True
    assert calls == [1]


def test_load_config_does_not_follow_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.conf"
    target.write_text("enabled = true\nconsent_policy = 1\n")
    path = tmp_path / "telemetry.conf"
    path.symlink_to(target)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        load_config(str(path))


def test_load_config_refuses_a_file_others_can_change_or_too_large(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    path.write_text("enabled = true\nconsent_policy = 1\n")
    path.chmod(0o666)
    with pytest.raises(ConfigError, match="is writable by other users"):
        load_config(str(path))
    path.chmod(0o600)
    path.write_text("# " + "x" * 70_000 + "\nenabled = true\n")
    with pytest.raises(ConfigError, match="is larger than"):
        load_config(str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="a file another user owns takes root to make")
def test_load_config_refuses_another_users_file(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.conf"
    path.write_text("enabled = true\nconsent_policy = 1\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        load_config(str(path))
