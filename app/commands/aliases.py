"""`lifelong aliases list|set|delete|history` and `lifelong promote`: the names that point at versions.

Versions never change; aliases move. `production` is what predictions and new tasks use (the first API's
head); a model's promotion policy decides whether a job moves it or leaves its version as `candidate`,
and `lifelong promote MODEL VERSION` moves it by hand. Every move is kept in the alias's history;
`lifelong aliases history MODEL` (no alias) lists the moves of every alias the model ever had.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.commands.common import JsonOption, client_of, handles_errors, print_json, print_table

aliases = typer.Typer(no_args_is_help=True, help="List, move and delete a model's aliases, and show their history.")

ReasonOption = Annotated[str | None, typer.Option(help="why, kept in the alias's history")]
OneAlias = Annotated[str | None, typer.Argument(help="one alias; without it, every alias MODEL ever had")]
LimitOption = Annotated[int | None, typer.Option(help="the newest moves, at most (without ALIAS: 100 unless given)")]


@aliases.command("list")
@handles_errors
def list_(ctx: typer.Context, model: str, as_json: JsonOption = False) -> None:
    """The aliases of MODEL and the versions they name, production first."""
    found = client_of(ctx).aliases(model)
    if as_json:
        return print_json(found)
    print_table(model, ["alias", "version", "moved"], [(a["alias"], a["version"], a["updated_at"]) for a in found])


@aliases.command("set")
@handles_errors
def set_(ctx: typer.Context, model: str, alias: str, version: int, reason: ReasonOption = None,
         as_json: JsonOption = False) -> None:
    """Point ALIAS of MODEL at VERSION (creating it if new; production: promote or roll back)."""
    moved = client_of(ctx).set_alias(model, alias, version, reason)
    print_json(moved) if as_json else typer.echo(f"{model}: {moved['alias']} is version {moved['version']}")


@aliases.command("delete")
@handles_errors
def delete(ctx: typer.Context, model: str, alias: str) -> None:
    """Remove ALIAS of MODEL (not production); its history stays."""
    client_of(ctx).delete_alias(model, alias)
    typer.echo(f"{model}: deleted alias {alias}")


@aliases.command("history")
@handles_errors
def history(ctx: typer.Context, model: str, alias: OneAlias = None, limit: LimitOption = None,
            as_json: JsonOption = False) -> None:
    """Every move of ALIAS (or of every alias MODEL ever had, deleted ones included), newest first: when, which
    alias, from (new: created), to (deleted: removed), by which key or job, and why."""
    moves = client_of(ctx).alias_history(model, alias, limit)
    if as_json:
        return print_json(moves)
    rows = [(m["at"], m["alias"], "new" if m["from"] is None else m["from"], "deleted" if m["to"] is None else m["to"],
             m["by"], m["reason"]) for m in moves]
    if alias is None:
        print_table(f"{model}: every alias", ["when", "alias", "from", "to", "by", "reason"], rows)
    else:
        print_table(f"{model}: {alias}", ["when", "from", "to", "by", "reason"], [(r[0], *r[2:]) for r in rows])


def promote(ctx: typer.Context, model: str, version: int, reason: ReasonOption = None,
            as_json: Annotated[bool, typer.Option("--json", help="print the server's answer as JSON")] = False,
            ) -> None:
    """Make VERSION of MODEL production: what predictions and new tasks use."""
    moved = client_of(ctx).promote(model, version, reason)
    print_json(moved) if as_json else typer.echo(f"{model}: production is version {moved['version']}")
