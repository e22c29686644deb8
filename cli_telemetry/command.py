"""``<tool> telemetry status|enable|disable``: the subcommands and what they do, built only
in the runs that use them.

The group that holds them is made in `cli_telemetry.telemetry` (`Telemetry.command` for
click, `Telemetry.typer_app` for Typer): every run of the host tool registers it, and a
module of its own would cost every run about 0.2 ms to import.

These commands are the user's explicit request, so unlike the recording path they do report
their own failures (on stderr, one line, with exit code 1; never a traceback): a ``disable``
that silently failed to write its setting would be a broken promise. ``status`` only reads,
and answers whatever state the files are in (but for starting the uploader while a
deletion request waits, `cli_telemetry.deletion`). ``enable`` and ``disable`` write nothing, and
delete nothing, in a directory another user could have planted something in or could change
(`_paths.untrusted`): root with another user's HOME would otherwise write root's files there,
and ``disable``'s purge could be led by a link to delete files elsewhere.

Both frameworks' subcommands (`click_commands`, `typer_commands`) run the same actions
(`show_status`, `turn_on`, `turn_off`), which write through the framework's own ``echo``
and say why they cannot in a `Refusal`: a tool on Typer 0.26 or later has no click to
import, and the library must not bring it in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .instrument import INTERNAL

if TYPE_CHECKING:
    import click

    from . import _paths
    from ._settings import Config, ToolConfig
    from .status import Status

    Echo = Callable[..., None]
    """The framework's ``echo(message, err=False)``."""

STATUS_HELP = "Say whether telemetry is on, why, and what is stored."
JSON_HELP = "Print a JSON object instead."
ENABLE_HELP = "Turn telemetry on."
DISABLE_HELP = (
    "Turn telemetry off, delete every pending event and the install id, and ask for what was"
    " sent with that id to be deleted."
)


class Refusal(Exception):
    """What a subcommand could not do, and why: one line, shown as ``Error: <line>`` with
    exit code 1 (click's own way of showing a ``ClickException``)."""


# -- the subcommands, for each framework ----------------------------------------------------


def click_commands(config_of: Callable[[], ToolConfig]) -> dict[str, click.Command]:
    """The subcommands for click, by name, each marked as the library's own (never
    recorded)."""
    import click

    def run(action: Callable[[], None]) -> None:
        try:
            action()
        except Refusal as exc:
            raise click.ClickException(str(exc)) from None

    @click.command(help=STATUS_HELP)
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def status(as_json: bool) -> None:
        run(lambda: show_status(config_of, as_json, click.echo))

    @click.command(help=ENABLE_HELP)
    def enable() -> None:
        run(lambda: turn_on(config_of, click.echo))

    @click.command(help=DISABLE_HELP)
    def disable() -> None:
        run(lambda: turn_off(config_of, click.echo))

    commands: dict[str, click.Command] = {"disable": disable, "enable": enable, "status": status}
    for command in commands.values():
        setattr(command, INTERNAL, True)
    return commands


def typer_commands(config_of: Callable[[], ToolConfig]) -> dict[str, Any]:
    """The subcommands for Typer, built by Typer from the same actions, each marked as the
    library's own. A refusal is shown as click shows it (`Refusal`), not in a Rich panel:
    one line, whatever Typer would draw."""
    import typer
    from typer.main import get_command

    def run(action: Callable[[], None]) -> None:
        try:
            action()
        except Refusal as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None

    app = typer.Typer(add_completion=False)

    # Defaults, not Annotated: Typer reads these annotations by name, from this module's
    # globals, where typer is not imported.
    @app.command(help=STATUS_HELP)
    def status(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
        run(lambda: show_status(config_of, as_json, typer.echo))

    @app.command(help=ENABLE_HELP)
    def enable() -> None:
        run(lambda: turn_on(config_of, typer.echo))

    @app.command(help=DISABLE_HELP)
    def disable() -> None:
        run(lambda: turn_off(config_of, typer.echo))

    commands: dict[str, Any] = dict(getattr(get_command(app), "commands", {}))
    for command in commands.values():
        setattr(command, INTERNAL, True)
    return commands


# -- the actions ----------------------------------------------------------------------------


def show_status(config_of: Callable[[], ToolConfig], as_json: bool, echo: Echo) -> None:
    import json

    from .status import read_status

    tool = config_of().tool
    state = read_status(config_of())
    if state.deletions_waiting:  # under DO_NOT_TRACK, nothing else would try again
        _deliver_deletions(config_of(), echo)
    if as_json:
        echo(json.dumps(state.as_dict(), indent=2))
        return
    echo(f"Telemetry for {tool} is {'on' if state.enabled else 'off'}: {state.reason}.")
    echo(f"Install id:  {state.install_id or '(none: created with the first recorded event)'}")
    echo(f"Config file: {state.config_file}")
    echo(f"Spool:       {state.spool_dir}")
    echo(f"Waiting:     {state.pending} event(s){_when_sent(state, config_of())}")
    echo(f"Dropped:     {state.dropped} (spool full), {state.rejected} (refused for good)")
    echo(f"Last upload: {state.last_upload or 'never'}")
    if state.last_error:
        echo(f"Last error:  {state.last_error}")
    echo("Sinks:" + ("" if state.sinks else "       none (the events stay on this machine)"))
    for sink in state.sinks:
        for line in sink.describe():
            echo(line)
    if state.deletions_waiting:
        echo(
            f"Deletion:    {state.deletions_waiting} request(s) from `disable` waiting"
            f" for {', '.join(state.deletions_waiting_for)}"
        )
    if state.enabled:
        echo(f"Turn it off with `{tool} telemetry disable` or DO_NOT_TRACK=1.")


def _when_sent(state: Status, config: ToolConfig) -> str:
    """When the waiting events go, by the upload policy (`Status.upload_due`) and the
    destinations' backoff; nothing when none would (telemetry off, or no destination)."""
    if not (state.enabled and state.sinks and (state.upload_due or state.upload_due_at)):
        return ""
    if state.upload_due:
        resting = [sink.next_attempt for sink in state.sinks]
        if all(resting):  # every destination backs off: the uploader would start for none
            return f", sent with the first command after {min(filter(None, resting))}"
        return ", sent with the next command"
    from .recording import enough_events, spool_bounds

    enough = enough_events(config, spool_bounds(config)[0])
    return f", sent once {enough} wait or with the first command after {state.upload_due_at}"


def turn_on(config_of: Callable[[], ToolConfig], echo: Echo) -> None:
    from . import _paths

    tool = config_of().tool
    paths = _paths.resolve(tool)
    _refuse_untrusted(paths, f"not writing {paths.config_file}")
    before = _explicit_choice(paths.config_file)
    choices = _config_or_empty(paths.config_file)
    _write(paths.config_file, choices.with_choice(True, config_of().policy_version), tool)
    word = "was already" if before is True else "is now"
    echo(f"Telemetry for {tool} {word} enabled (in {paths.config_file}).")
    _warn_overrides(config_of(), echo)
    why = _paths.untrusted(paths, config=False)
    if why is not None:
        echo(f"Note: telemetry stays off while {why}.", err=True)


def turn_off(config_of: Callable[[], ToolConfig], echo: Echo) -> None:
    from . import _paths

    tool = config_of().tool
    paths = _paths.resolve(tool)
    _refuse_untrusted(
        paths,
        f"not writing {paths.config_file}",
        "; set DO_NOT_TRACK=1 to turn telemetry off without it",
    )
    choices = _config_or_empty(paths.config_file)
    _write(paths.config_file, choices.with_choice(False, config_of().policy_version), tool)
    deleted = _delete_state(config_of(), paths, echo)
    echo(
        f"Telemetry for {tool} is now disabled; deleted {deleted} pending event(s)"
        " and the random install id."
    )
    if os.path.exists(paths.deletion_file):
        _deliver_deletions(config_of(), echo)
        echo(
            "A request to delete what was sent with that id is on its way to where it"
            f" went; `{tool} telemetry status` says until it has arrived."
        )


def _deliver_deletions(config: ToolConfig, echo: Echo) -> None:
    """Start the uploader for the deletion requests that wait, where the files can be
    trusted; a failure to start it is a note, not the command's failure."""
    from . import _paths, deletion

    paths = _paths.resolve(config.tool)
    if _paths.untrusted(paths) is not None:
        return
    try:
        deletion.start_uploader(config, paths)
    except OSError as exc:
        echo(
            f"Note: could not start the uploader ({exc.strerror or type(exc).__name__});"
            " the deletion request waits for the next run.",
            err=True,
        )


def _refuse_untrusted(paths: _paths.Paths, what: str, advice: str = "") -> None:
    """Stop, in one line, where the config file must not be written (see the module doc)."""
    from . import _paths

    why = _paths.untrusted(paths, state=False)
    if why is not None:
        raise Refusal(f"{what}: {why}{advice}")


def _explicit_choice(path: str) -> bool | None:
    from ._settings import ConfigError, load_config

    try:
        return load_config(path).enabled
    except ConfigError:
        return None


def _config_or_empty(path: str) -> Config:
    from ._settings import Config, ConfigError, load_config

    # A corrupt file is replaced: the user has just told us what they want.
    try:
        return load_config(path)
    except ConfigError:
        return Config()


def _write(path: str, config: Config, tool: str) -> None:
    from ._settings import save_config

    try:
        save_config(path, config, tool)
    except OSError as exc:
        raise Refusal(
            f"could not write {path} ({exc.strerror or type(exc).__name__});"
            " set DO_NOT_TRACK=1 to turn telemetry off without it"
        ) from None


def _delete_state(config: ToolConfig, paths: _paths.Paths, echo: Echo) -> int:
    """Stop a running uploader, then delete the spool, its counters, the ids and the
    uploader's files: leave no file of ours behind, and nothing sent after we return.

    Called once the config says "off"; each failure says so, in one line."""
    from . import _paths

    if not os.path.isdir(paths.state_dir) and not os.path.islink(paths.state_dir):
        return 0
    done = f"telemetry for {config.tool} is now disabled, but"
    why = _paths.untrusted(paths, config=False)
    if why is not None:
        raise Refusal(f"{done} nothing under {paths.state_dir} was deleted: {why}")
    try:
        return _delete_files(paths, config, echo)
    except OSError as exc:
        where = exc.filename or paths.state_dir
        raise Refusal(
            f"{done} {where} could not be deleted ({exc.strerror or type(exc).__name__})"
        ) from None


def _delete_files(paths: _paths.Paths, config: ToolConfig, echo: Echo) -> int:
    import time

    from filelock import FileLock, Timeout

    from . import deletion
    from .errors import SpoolBusyError
    from .recording import open_spool

    uploader = FileLock(paths.uploader_lock, timeout=0, mode=0o600)
    try:
        uploader.acquire()
    except Timeout:
        _stop_uploader(paths)
        try:
            uploader.acquire(timeout=10)
        except Timeout:
            raise Refusal(
                "the uploader did not stop; telemetry is off now and it will send nothing"
                " more once it notices: run this again to delete the waiting events"
            ) from None
    try:
        try:
            deletion.leave(config, paths, time.time())  # before the id it names is deleted
        except OSError as exc:
            echo(
                f"Note: could not write {paths.deletion_file}"
                f" ({exc.strerror or type(exc).__name__}): what was sent with the install id"
                " stays where it went.",
                err=True,
            )
        # The ids before the spool: a command that is recording right now and appends after
        # the purge finds the ids gone and takes its event back (`recording._store`).
        _unlink(paths.ids_file)
        deleted = open_spool(config, paths).purge(remove=True)
        for path in (paths.uploader_pid, paths.uploader_stamp, paths.upload_state):
            _unlink(path)
        _unlink(paths.identified_file)
        try:
            # Still held: a waiting uploader notices and starts over. (Windows may refuse to
            # delete an open file; an empty lock file left behind holds nothing.)
            os.unlink(paths.uploader_lock)
        except OSError:
            pass
    except SpoolBusyError:
        raise Refusal(
            "the spool is busy (another process is using it); telemetry is off now,"
            " run this again to delete the waiting events"
        ) from None
    finally:
        uploader.release()
    try:
        os.rmdir(paths.state_dir)  # only if empty: a file someone else put there stays
    except OSError:
        pass
    return deleted


def _stop_uploader(paths: _paths.Paths) -> None:
    """Terminate the uploader that holds the lock, if its pid file names a live one."""
    import signal

    from ._spawn import running_uploader

    pid = running_uploader(paths.uploader_pid)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass  # it exited meanwhile: the lock wait covers it


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise Refusal(f"could not delete {path} ({exc.strerror or type(exc).__name__})") from None


def _warn_overrides(config: ToolConfig, echo: Echo) -> None:
    from ._settings import EnvSettings

    env = EnvSettings.read(config.env_prefix)
    if env.do_not_track:
        echo("Note: DO_NOT_TRACK is set, and it still turns telemetry off.", err=True)
    elif env.disabled:
        echo(f"Note: {env.disabled_var} is set, and it still turns telemetry off.", err=True)
