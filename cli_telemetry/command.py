"""``<tool> telemetry status|enable|disable``: the end user's controls.

These commands are the user's explicit request, so unlike the recording path they do report
their own failures (on stderr, one line, with exit code 1; never a traceback): a ``disable``
that silently failed to write its setting would be a broken promise. ``status`` only reads,
and answers whatever state the files are in (but for starting the uploader while a
deletion request waits, `cli_telemetry.deletion`). ``enable`` and ``disable`` write nothing, and
delete nothing, in a directory another user could have planted something in or could change
(`_paths.untrusted`): root with another user's HOME would otherwise write root's files there,
and ``disable``'s purge could be led by a link to delete files elsewhere.

Every run of the host tool registers a `cli_telemetry.telemetry.TelemetryGroup`, but only
the runs that use it import this module, which builds the subcommands.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from .instrument import INTERNAL

if TYPE_CHECKING:
    from . import _paths
    from ._settings import Config, ToolConfig


def telemetry_commands(config_of: Callable[[], ToolConfig]) -> dict[str, click.Command]:
    """The subcommands, by name, each marked as the library's own (never recorded)."""
    import json

    from . import _paths
    from .status import read_status

    config = config_of()
    tool = config.tool
    group = click.Group()

    @group.command(help="Say whether telemetry is on, why, and what is stored.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead.")
    def status(as_json: bool) -> None:
        state = read_status(config_of())
        if state.deletions_waiting:  # under DO_NOT_TRACK, nothing else would try again
            from . import deletion

            deletion.start_uploader(config_of(), _paths.resolve(tool))
        if as_json:
            click.echo(json.dumps(state.as_dict(), indent=2))
            return
        click.echo(f"Telemetry for {tool} is {'on' if state.enabled else 'off'}: {state.reason}.")
        click.echo(
            f"Install id:  {state.install_id or '(none: created with the first recorded event)'}"
        )
        click.echo(f"Config file: {state.config_file}")
        click.echo(f"Spool:       {state.spool_dir}")
        click.echo(f"Waiting:     {state.pending} event(s)")
        click.echo(
            f"Dropped:     {state.dropped} (spool full), {state.rejected} (refused for good)"
        )
        click.echo(f"Last upload: {state.last_upload or 'never'}")
        if state.last_error:
            click.echo(f"Last error:  {state.last_error}")
        if state.deletions_waiting:
            click.echo(
                f"Deletion:    {state.deletions_waiting} request(s) from `disable` waiting"
                f" for {', '.join(state.deletions_waiting_for)}"
            )
        if state.enabled:
            click.echo(f"Turn it off with `{tool} telemetry disable` or DO_NOT_TRACK=1.")

    @group.command(help="Turn telemetry on.")
    def enable() -> None:
        paths = _paths.resolve(tool)
        _refuse_untrusted(paths, f"not writing {paths.config_file}")
        before = _explicit_choice(paths.config_file)
        choices = _config_or_empty(paths.config_file)
        _write(paths.config_file, choices.with_choice(True, config_of().policy_version), tool)
        word = "was already" if before is True else "is now"
        click.echo(f"Telemetry for {tool} {word} enabled (in {paths.config_file}).")
        _warn_overrides(config_of())
        why = _paths.untrusted(paths, config=False)
        if why is not None:
            click.echo(f"Note: telemetry stays off while {why}.", err=True)

    @group.command(
        help="Turn telemetry off, delete every pending event and the install id, and ask"
        " for what was sent with that id to be deleted."
    )
    def disable() -> None:
        paths = _paths.resolve(tool)
        _refuse_untrusted(
            paths,
            f"not writing {paths.config_file}",
            "; set DO_NOT_TRACK=1 to turn telemetry off without it",
        )
        choices = _config_or_empty(paths.config_file)
        _write(paths.config_file, choices.with_choice(False, config_of().policy_version), tool)
        deleted = _delete_state(config_of(), paths)
        click.echo(
            f"Telemetry for {tool} is now disabled; deleted {deleted} pending event(s)"
            " and the anonymous install id."
        )
        if os.path.exists(paths.deletion_file):
            from . import deletion

            deletion.start_uploader(config_of(), paths)
            click.echo(
                "A request to delete what was sent with that id is on its way to where it"
                f" went; `{tool} telemetry status` says until it has arrived."
            )

    for command in (status, enable, disable):
        setattr(command, INTERNAL, True)
    return dict(group.commands)


def _refuse_untrusted(paths: _paths.Paths, what: str, advice: str = "") -> None:
    """Stop, in one line, where the config file must not be written (see the module doc)."""
    from . import _paths

    why = _paths.untrusted(paths, state=False)
    if why is not None:
        raise click.ClickException(f"{what}: {why}{advice}")


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
        raise click.ClickException(
            f"could not write {path} ({exc.strerror or type(exc).__name__});"
            " set DO_NOT_TRACK=1 to turn telemetry off without it"
        ) from None


def _delete_state(config: ToolConfig, paths: _paths.Paths) -> int:
    """Stop a running uploader, then delete the spool, its counters, the ids and the
    uploader's files: leave no file of ours behind, and nothing sent after we return.

    Called once the config says "off"; each failure says so, in one line."""
    from . import _paths

    if not os.path.isdir(paths.state_dir) and not os.path.islink(paths.state_dir):
        return 0
    done = f"telemetry for {config.tool} is now disabled, but"
    why = _paths.untrusted(paths, config=False)
    if why is not None:
        raise click.ClickException(f"{done} nothing under {paths.state_dir} was deleted: {why}")
    try:
        return _delete_files(paths, config)
    except OSError as exc:
        where = exc.filename or paths.state_dir
        raise click.ClickException(
            f"{done} {where} could not be deleted ({exc.strerror or type(exc).__name__})"
        ) from None


def _delete_files(paths: _paths.Paths, config: ToolConfig) -> int:
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
            raise click.ClickException(
                "the uploader did not stop; telemetry is off now and it will send nothing"
                " more once it notices: run this again to delete the waiting events"
            ) from None
    try:
        deleted = open_spool(config, paths).purge(remove=True)
        try:
            deletion.leave(config, paths, time.time())  # before the id it names is deleted
        except OSError as exc:
            click.echo(
                f"Note: could not write {paths.deletion_file}"
                f" ({exc.strerror or type(exc).__name__}): what was sent with the install id"
                " stays where it went.",
                err=True,
            )
        for path in (paths.ids_file, paths.uploader_pid, paths.uploader_stamp, paths.upload_state):
            _unlink(path)
        try:
            # Still held: a waiting uploader notices and starts over. (Windows may refuse to
            # delete an open file; an empty lock file left behind holds nothing.)
            os.unlink(paths.uploader_lock)
        except OSError:
            pass
    except SpoolBusyError:
        raise click.ClickException(
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
        raise click.ClickException(
            f"could not delete {path} ({exc.strerror or type(exc).__name__})"
        ) from None


def _warn_overrides(config: ToolConfig) -> None:
    from ._settings import EnvSettings

    env = EnvSettings.read(config.env_prefix)
    if env.do_not_track:
        click.echo("Note: DO_NOT_TRACK is set, and it still turns telemetry off.", err=True)
    elif env.disabled:
        click.echo(f"Note: {env.disabled_var} is set, and it still turns telemetry off.", err=True)
