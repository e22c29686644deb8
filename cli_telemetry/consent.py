"""The one-time notice and the one-time question, both on stderr.

Neither ever touches stdout, and the question is only asked when a person is there: stdin and
stderr are terminals and no CI is detected (see `Telemetry._settle_consent`).
"""

from __future__ import annotations

import sys


def notice_text(tool: str, privacy_url: str | None) -> str:
    lines = [
        f"{tool} collects anonymous usage data: which commands and option names you use,"
        " whether they succeed, and your OS and Python versions.",
        "It never collects argument values, file names, paths or personal data."
        " Nothing was recorded for this command.",
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
        f"\nHelp improve {tool} by sending anonymous usage data (commands, option names,"
        f" errors, OS and Python versions; never arguments, paths or personal data).{details}\n"
        f"You can change your answer with `{tool} telemetry enable|disable`.\n"
        "Send anonymous usage data? [y/N] "
    )
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (KeyboardInterrupt, EOFError, OSError, ValueError):
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")
