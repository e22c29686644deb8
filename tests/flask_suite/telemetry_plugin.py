"""Flask with telemetry, as its author would add it: loaded into Flask's own test suite.

`tests/test_flask_suite_e2e.py` runs Flask's test suite twice, bare and with ``-p
telemetry_plugin``, and compares the outcomes test by test. Importing this module is all the
instrumenting there is; Flask's code and tests are left as released.

Two tools, so that the check after the run can tell the two kinds of hooked groups apart:

- ``flask``: the root command of the ``flask`` program, ``flask.cli.cli`` (a `FlaskGroup`),
  instrumented once, exactly as an author would.
- ``flask-apps``: every other group of Flask's own classes that the suite builds, each
  instrumented as it is made. Most of Flask's CLI tests build a `FlaskGroup` of their own
  (``FlaskGroup(create_app=...)``, ``@click.group(cls=FlaskGroup)``) and invoke it as the
  root; ``app.test_cli_runner()`` invokes an app's ``app.cli`` (an `AppGroup`) as the root,
  with blueprints' groups nested in it. Hooking only ``flask.cli.cli`` would put telemetry in
  the way of 2 of the suite's 490 tests. Wrapping ``AppGroup.__init__`` (which
  ``FlaskGroup.__init__`` calls) is the one device of this harness that an author would not
  write: it stands in for "the author instrumented this root", once per root.

Both send to the endpoint in ``CLI_TELEMETRY_FLASK_SUITE_ENDPOINT`` (a loopback server of
the calling test), so each spawns an uploader as it records. ``python -m telemetry_plugin
enable`` turns both on, with the library's own ``telemetry enable``, before the run.
"""

from __future__ import annotations

import functools
import os
import sys
from importlib.metadata import version
from typing import Any

import flask.cli

from cli_telemetry import Telemetry

ENDPOINT = os.environ.get("CLI_TELEMETRY_FLASK_SUITE_ENDPOINT", "")

root = Telemetry("flask", version=version("flask"), endpoint=ENDPOINT)
root.instrument(flask.cli.cli)

apps = Telemetry("flask-apps", version=version("flask"), endpoint=ENDPOINT)
_original_init = flask.cli.AppGroup.__init__


@functools.wraps(_original_init)
def _instrumented_init(self: flask.cli.AppGroup, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    apps.instrument(self)


flask.cli.AppGroup.__init__ = _instrumented_init


def main(argv: list[str]) -> int:
    """``python -m telemetry_plugin enable|disable|status``: run the library's ``telemetry``
    subcommand for both tools."""
    for telemetry in (root, apps):
        telemetry.command().main(argv, prog_name=telemetry.tool, standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
