"""The two clicks a tool may be built on: the real ``click``, or ``typer._click``.

Since 0.26, Typer bundles a trimmed copy of click as ``typer._click`` (no ``Group`` or
``Option`` classes: Typer's own ``TyperGroup`` and ``TyperOption`` take their place) and
never imports the real one, whose import costs tens of milliseconds: this library must not
bring it back into such a tool's process. So the code that looks at commands, parameters and
exceptions never imports either click. It asks `loaded` for the classes of a kind in the
modules this process has already imported: a class whose module was never imported has no
instances, so ``isinstance`` against those alone is exact, and costs a few dictionary
look-ups. Both clicks share the attributes this library reads (``ctx.params``,
``param.opts``, ``exc.exit_code``...), so the code is written, and type-checked, against the
real click's API.
"""

from __future__ import annotations

import sys
from typing import Final

COMMAND: Final = (("click.core", "Command"), ("typer._click.core", "Command"))
GROUP: Final = (("click.core", "Group"), ("typer.core", "TyperGroup"))
OPTION: Final = (("click.core", "Option"), ("typer.core", "TyperOption"))
CHOICE: Final = (("click.types", "Choice"),)
"""Typer >= 0.26 has no parameter types: its options' choices are `choices` below."""
BOOL: Final = (("click.types", "BoolParamType"),)
USAGE_ERROR: Final = (("click.exceptions", "UsageError"), ("typer._click.exceptions", "UsageError"))
CLICK_EXCEPTION: Final = (
    ("click.exceptions", "ClickException"),
    ("typer._click.exceptions", "ClickException"),
)
ABORT: Final = (("click.exceptions", "Abort"), ("typer.exceptions", "Abort"))
EXIT: Final = (("click.exceptions", "Exit"), ("typer.exceptions", "Exit"))
TYPER: Final = (("typer.main", "Typer"),)
"""A Typer app: not a command, but what builds one on every call."""
OWN_PACKAGES: Final = frozenset({"click", "typer"})
"""Where the frameworks' own exceptions (a usage error, an abort) are defined."""


def loaded(kind: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    """The classes of ``kind`` (module and class names) whose modules are imported."""
    found = []
    for module_name, name in kind:
        module = sys.modules.get(module_name)
        cls = getattr(module, name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def choices(param: object) -> list[object] | None:
    """The choices of ``param`` written in code, as its values hold them, or None when it
    has none: a ``click.Choice``'s (an enum's members, on click 8.2 and later), or, on
    Typer >= 0.26, the values of the ``Enum`` or ``Literal`` it is annotated with (an
    option's values are then given by `typed_value`)."""
    kind = getattr(param, "type", None)
    if kind is not None:
        return list(kind.choices) if isinstance(kind, loaded(CHOICE)) else None  # type: ignore[attr-defined]
    declared = getattr(_descriptor(param), "choices", None)
    if isinstance(declared, tuple):
        return [typed_value(param, choice) for choice in declared]
    return None


def typed_value(param: object, value: object) -> object:
    """``value`` as the user typed it, for a Typer >= 0.26 option: an ``Enum`` member by
    its value, as on the earlier Typer line, whose ``Choice`` holds the values (so both
    lines record the same). A click parameter's value is returned as it is."""
    if _descriptor(param) is not None:
        import enum

        if isinstance(value, enum.Enum):
            return value.value
    return value


def is_bool(param: object) -> bool:
    """``param`` takes a boolean value (click's ``BOOL`` type, or a ``bool`` annotation)."""
    kind = getattr(param, "type", None)
    if kind is not None:
        return isinstance(kind, loaded(BOOL))
    return getattr(_descriptor(param), "annotation", None) is bool


def _descriptor(param: object) -> object | None:
    """What Typer >= 0.26 knows of an option's type (its options have no click type)."""
    if getattr(param, "type", None) is not None:
        return None
    return getattr(param, "type_descriptor", None)


def is_frameworks(exc: BaseException | None) -> bool:
    """``exc`` is one of the framework's own exceptions (a usage error, an abort): its class
    name is click's or Typer's, whatever command raised it."""
    return exc is not None and type(exc).__module__.split(".", 1)[0] in OWN_PACKAGES
