"""The one-time notice and the one-time question, both on stderr, and when to show them.

Neither ever touches stdout, and the question is only asked when a person is there: stdin and
stderr are terminals, the tool is the terminal's foreground job and no CI is detected.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._paths import Paths
    from ._settings import Decision, ToolConfig


def settle(
    config: ToolConfig, paths: Paths, decision: Decision, exception: BaseException | None
) -> Decision:
    """Show the notice or ask the question, if a person can see it; store the result.

    The choice is stored *before* the notice is shown (and the question only asked where
    it can be stored), so that a read-only config never shows it on every run. Nothing is
    recorded on the run that shows the notice; a run interrupted by Ctrl-C (``exception``)
    is never asked.
    """
    from . import _paths, capture
    from ._settings import Config, Decision, save_config
    from .instrument import ABORT, loaded

    config_file = paths.config_file
    choices = decision.config or Config()
    if decision.pending == "notice":
        if capture.stderr_is_tty():
            save_config(config_file, choices.with_notice(config.policy_version), config.tool)
            show_notice(config.tool, config.privacy_url)
        return decision
    if (
        isinstance(exception, (KeyboardInterrupt, EOFError, *loaded(ABORT)))
        or not capture.is_interactive()
        or not capture.in_foreground()
        or capture.detect_ci() is not None
        or _paths.unwritable(os.path.dirname(config_file))
    ):
        return decision  # ask another time, when a person can answer and we can remember
    yes = ask(config.tool, config.privacy_url)
    save_config(config_file, choices.with_choice(yes, config.policy_version), config.tool)
    if not yes:
        return Decision(False, "config", "you answered no to the question", config=choices)
    return Decision(True, "config", "you answered yes to the question", config=choices)


def notice_text(tool: str, privacy_url: str | None) -> str:
    lines = [
        f"{tool} collects usage data, under a random id that does not name you: which"
        " commands and option names you use, whether they succeed, and your OS and Python"
        " versions.",
        "It never collects file names, paths, text you type or personal data (of what you"
        " type, at most a number, a yes/no or a choice from a list fixed in the tool, where"
        " its author asked). Nothing was recorded for this command.",
        f"To opt out, run `{tool} telemetry disable` or set DO_NOT_TRACK=1.",
    ]
    if privacy_url:
        lines.append(f"Details: {privacy_url}")
    return "\n".join(lines)


def show_notice(tool: str, privacy_url: str | None) -> None:
    sys.stderr.write("\n" + notice_text(tool, privacy_url) + "\n")
    sys.stderr.flush()


def ask(tool: str, privacy_url: str | None) -> bool:
    """Ask once; only an explicit yes is consent. EOF or Ctrl-C counts as no."""
    details = f" Details: {privacy_url}" if privacy_url else ""
    sys.stderr.write(
        f"\nHelp improve {tool} by sending usage data under a random id (commands, option"
        " names, errors, OS and Python versions; never file names, paths, text you type or"
        f" personal data).{details}\n"
        f"You can change your answer with `{tool} telemetry enable|disable`.\n"
        "Send usage data? [y/N] "
    )
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (KeyboardInterrupt, EOFError, OSError, ValueError):
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")
