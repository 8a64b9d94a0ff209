"""`--help` that a person reads: types as words (TEXT, INTEGER, FILE, [cpu|gpu]) and every default.

Typer prints each parameter's type as its Python annotation (`<str>`, `<list[Path]>`) and has no
setting to change that, nor a hook for the class of the parameters it builds. So the root group,
`ReadableGroup`, goes once over every command under it and gives each parameter the subclass below,
which says its type in words (click's words, as most CLIs use) and shows a default given as text
(`typer.Option(show_default="the head")`) as it is: an option whose default is decided by the server
is None here, and its help still says what that default is.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "path": "PATH", "file": "FILE",
          "directory": "DIRECTORY", "bool": "BOOLEAN", "datetime": "DATETIME"}


def readable_type(typer_label: str) -> str:
    """`<str>` → TEXT, `<list[Path]>` → PATH, `<cpu|gpu>` → [cpu|gpu]."""
    label = typer_label.strip("<>")
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" in label:
        return f"[{label}]"
    return _WORDS.get(label, label.upper())


class ReadableOption(TyperOption):
    def display_type_rich(self, ctx: typer.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        return "" if self.is_flag else readable_type(self.display_type(ctx))

    def _get_default_string(self, *, ctx: typer.Context, show_default_is_str: bool, default_value: Any) -> str:
        if show_default_is_str:
            return str(self.show_default)  # typer would wrap it in parentheses
        return super()._get_default_string(ctx=ctx, show_default_is_str=False, default_value=default_value)


class ReadableArgument(TyperArgument):
    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return readable_type(self.display_type(ctx))

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name


def make_readable(command: TyperCommand | TyperGroup) -> None:
    # --help is made on first use and then kept: make it now, with the command's own settings.
    help_option = command.get_help_option(typer.Context(command, **command.context_settings))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if type(param) is TyperOption:
            param.__class__ = ReadableOption
        elif type(param) is TyperArgument:
            param.__class__ = ReadableArgument
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            make_readable(sub)


class ReadableGroup(TyperGroup):
    """The root group: every command under it gets readable help (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        make_readable(self)
