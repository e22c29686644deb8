"""Instrumenting a Typer app: every command tree it builds is hooked as a click tool's is.

A Typer app is not a command. ``app()`` (what a console script runs too) builds a fresh
command tree on every call through ``typer.main.get_command``, and so do Typer's
``CliRunner`` and anyone who calls ``get_command(app)``: hooking one tree would miss the
next. Typer builds the tree's root from the class the app names: ``Typer(cls=...)`` or
``@app.callback(cls=...)`` for a group, ``@app.command(cls=...)`` for an app of a single
command (its default classes otherwise). So `instrument_app` names, in each of those
places, a subclass of the class named there whose ``__init__`` hooks the command it makes
(`cli_telemetry.instrument`, the same hooks as for click), and makes the app's own
``command`` and ``callback`` do the same for what is registered afterwards. Like the click
hooks, these are attributes of that app alone: Typer itself is not changed, and another app
in the same process builds its commands as before.

A command of a group app is hooked as the root is: harmless, since a subcommand's hooks
hand what they see to the run of the root it was invoked from (``ctx.meta``).

Only a Typer tool imports this module, and it imports only what Typer has loaded already.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import typer

_HOOKED: Final = "_cli_telemetry_hooked"
_BUILDS_HOOKED: Final = "_cli_telemetry_builds_hooked"


def instrument_app(app: typer.Typer, hook: Callable[[object], None]) -> None:
    """Have every command that ``app`` builds from now on passed to ``hook`` as it is made."""
    if getattr(app, _HOOKED, False):
        return
    import functools

    from typer.core import TyperCommand, TyperGroup
    from typer.models import DefaultPlaceholder

    made: dict[type, type] = {}

    def hooked(cls: type) -> type:
        """A subclass of ``cls`` whose instances are hooked as they are made (one per
        class, so Typer sees the same class on every run)."""
        if getattr(cls, _BUILDS_HOOKED, False):
            return cls
        subclass = made.get(cls)
        if subclass is None:
            base: Any = cls

            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                base.__init__(self, *args, **kwargs)
                hook(self)

            subclass = made[cls] = type(
                cls.__name__,
                (cls,),
                {
                    "__init__": __init__,
                    "__module__": cls.__module__,
                    "__qualname__": cls.__qualname__,
                    "__doc__": cls.__doc__,
                    _BUILDS_HOOKED: True,
                },
            )
        return subclass

    def named(cls: object) -> type | None:
        """The class an author named, or None where Typer's default applies."""
        return None if cls is None or isinstance(cls, DefaultPlaceholder) else cls  # type: ignore[return-value]

    app.info.cls = hooked(named(app.info.cls) or TyperGroup)
    callback_info = app.registered_callback
    if callback_info is not None and named(callback_info.cls) is not None:
        callback_info.cls = hooked(callback_info.cls)  # type: ignore[arg-type]
    for command_info in app.registered_commands:
        command_info.cls = hooked(named(command_info.cls) or TyperCommand)

    register_command = app.command
    register_callback = app.callback

    @functools.wraps(register_command)
    def command(*args: Any, **kwargs: Any) -> Any:
        kwargs["cls"] = hooked(named(kwargs.get("cls")) or TyperCommand)
        return register_command(*args, **kwargs)

    @functools.wraps(register_callback)
    def callback(*args: Any, **kwargs: Any) -> Any:
        cls = named(kwargs.get("cls"))
        if cls is not None:
            kwargs["cls"] = hooked(cls)
        return register_callback(*args, **kwargs)

    app.command = command  # type: ignore[method-assign]
    app.callback = callback  # type: ignore[method-assign]
    setattr(app, _HOOKED, True)
