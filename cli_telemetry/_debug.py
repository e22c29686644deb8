"""Debug output: the only place telemetry writes to the end user's terminal by itself.

With ``<PREFIX>_TELEMETRY_DEBUG=1`` every failure of ours, and every event that would be
recorded, is described on stderr; without it, nothing. Writing can never fail the tool:
stderr may be closed, None, or a broken pipe.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._settings import EnvSettings

PREFIX: Final = "cli-telemetry: "


def debug(env: EnvSettings | None, message: str) -> None:
    """Say ``message`` on stderr, in debug mode only."""
    if env is not None and env.debug:
        write_stderr(PREFIX + message + "\n")


def write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:  # nothing of ours may reach the user as an error
        pass
