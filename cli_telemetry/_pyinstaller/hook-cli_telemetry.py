"""What a frozen app needs of cli_telemetry beyond what PyInstaller finds by reading imports.

The uploader is a module that nothing imports (a frozen app runs it as itself, see
`cli_telemetry._spawn.run_if_frozen_uploader`), and the uploader imports each sink by the
name its provider gives (`cli_telemetry.providers.Provider.build`). So the whole library is
bundled, but for what a tool never runs: the collector (a server, with its own dependencies)
and its erasers (the providers' deletion APIs), the pytest plugin (pytest), ``__main__``
(the collector's command) and this hook. A custom provider's module is the author's to name
(``--hidden-import``).
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_submodules

NOT_IN_A_TOOL = (
    "cli_telemetry.collector",
    "cli_telemetry.erasers",
    "cli_telemetry.pytest_plugin",
    "cli_telemetry.__main__",
    "cli_telemetry._pyinstaller",
)


def _in_a_tool(name: str) -> bool:
    return not any(name == part or name.startswith(part + ".") for part in NOT_IN_A_TOOL)


hiddenimports = collect_submodules("cli_telemetry", filter=_in_a_tool)
