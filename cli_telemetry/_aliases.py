"""The package's ``Literal`` type aliases, in a module no run of the host tool imports.

Building a ``Literal`` costs about 0.05 ms, the first one in a process three times that, and
the host tool would pay it at import on every run for names only a type checker reads:
the modules that use them import them under ``TYPE_CHECKING``, and ``cli_telemetry``
exports them lazily.
"""

from __future__ import annotations

from typing import Literal

ConsentMode = Literal["notice", "prompt"]
"""``notice``: opt-out after a one-time notice; ``prompt``: opt-in, asked once."""
Source = Literal["do_not_track", "env", "test_runner", "files", "config", "default"]
"""Which setting decided, highest precedence first (``test_runner``: a test runs the tool,
see `cli_telemetry._settings.detect_test_runner`; ``files``: the directories or the home
directory are not safe to use, see `cli_telemetry._paths.untrusted`)."""
Pending = Literal["notice", "prompt"]
"""What a `cli_telemetry._settings.Decision` still waits for: the notice to be shown, or the
question answered."""
