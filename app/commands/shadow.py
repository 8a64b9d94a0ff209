"""`lifelong shadow`: watch a candidate answer production's traffic before it serves.

`shadow set MODEL ALIAS --fraction F` replays that share of production's predictions on the version ALIAS
names now, off the request path; `shadow show MODEL` prints rows compared, agreement overall and per task,
and the most frequent disagreements; `shadow end MODEL` stops it. A shadow also ends when its alias moves.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.client import ShadowState
from app.commands.common import JsonOption, client_of, handles_errors, print_json, print_table

shadow = typer.Typer(help="Replay a share of production's predictions on another version and compare.",
                     no_args_is_help=True)


@shadow.command("set")
@handles_errors
def set_shadow(
    ctx: typer.Context,
    model: str,
    alias: Annotated[str, typer.Argument(help="the alias whose version answers in the shadow (not production)")],
    fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of production's prediction requests "
                                                                   "replayed (above 0)")] = 0.1,
    as_json: JsonOption = False,
) -> None:
    """Start (or restart, counts at zero) MODEL's shadow on the version ALIAS names now."""
    if fraction <= 0:
        raise typer.BadParameter("--fraction must be above 0", param_hint="--fraction")
    state = client_of(ctx).set_shadow(model, alias, fraction)
    print_json(state) if as_json else typer.echo(
        f"{model}: {fraction:g} of production's predictions now replayed on {alias} (version {state['version']})")


@shadow.command("show")
@handles_errors
def show_shadow(ctx: typer.Context, model: str, as_json: JsonOption = False) -> None:
    """Rows compared, agreement overall and per task, the most frequent disagreements, rows dropped."""
    state = client_of(ctx).shadow(model)
    if as_json:
        return print_json(state)
    print_shadow(state)


@shadow.command("end")
@handles_errors
def end_shadow(ctx: typer.Context, model: str) -> None:
    """Stop MODEL's shadow (its counts go with it)."""
    client_of(ctx).end_shadow(model)
    typer.echo(f"{model}: shadow ended")


def print_shadow(state: ShadowState) -> None:
    agreement = "-" if state["agreement"] is None else f"{state['agreement']:.4f}"
    typer.echo(f"{state['model']}: shadow on {state['alias']} (version {state['version']}), fraction "
               f"{state['fraction']:g}, since {state['started_at']}")
    typer.echo(f"compared: {state['compared']} rows, agreement {agreement}, dropped {state['dropped']}")
    if state["tasks"]:
        print_table("per task", ["task", "compared", "agreement"],
                    [(task, t["compared"], "-" if t["agreement"] is None else f"{t['agreement']:.4f}")
                     for task, t in state["tasks"].items()])
    if state["disagreements"]:
        print_table("most frequent disagreements", ["production", "shadow", "rows"],
                    [(d["production"], d["shadow"], d["count"]) for d in state["disagreements"]])
