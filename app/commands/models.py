"""`lifelong models create|list|show|delete`: the models on the server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.client import QueueName
from app.commands.common import JsonOption, client_of, handles_errors, print_fields, print_json, print_table

models = typer.Typer(no_args_is_help=True, help="Create, list, show and delete models.")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.replace(" ", "").split(",") if part]


@models.command("create")
@handles_errors
def create(
    ctx: typer.Context,
    name: str,
    input_shape: Annotated[str, typer.Option(help="comma-separated, e.g. 64 (mlp) or 1,28,28 (cnn)")] = "64",
    hidden: Annotated[str, typer.Option(help="hidden layer widths, comma-separated")] = "256,256",
    kind: Annotated[str, typer.Option(help="mlp, cnn, text-encoder, image-backbone, or a plugin's kind")] = "mlp",
    channels: Annotated[str | None, typer.Option(help="cnn channels, comma-separated")] = None,
    trainable: Annotated[str | None, typer.Option(
        help="all, none (heads only) or last:N blocks [default: the architecture's]")] = None,
    architecture: Annotated[str | None, typer.Option(help="the whole architecture as JSON (overrides all)")] = None,
    seed: int = 0,
    queue: Annotated[QueueName | None, typer.Option(help="where its jobs go [default: the server's]")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a model; its version 0 (initial weights) is the head."""
    if architecture is not None:
        spec: dict[str, Any] = json.loads(architecture)
    else:
        spec = {"kind": kind}
        if kind in ("mlp", "cnn"):
            spec |= {"input_shape": _ints(input_shape), "hidden": _ints(hidden)}
        if channels is not None:
            spec["channels"] = _ints(channels)
        if trainable is not None:
            spec["trainable"] = parse_trainable(trainable)
    model = client_of(ctx).create_model(name, spec, seed=seed, queue=queue)
    print_json(model) if as_json else typer.echo(f"created model {model['name']} (head: version {model['head']})")


def parse_trainable(text: str) -> str | dict[str, int]:
    """`all`, `none` or `last:N` as the API's `trainable`."""
    if text in ("all", "none"):
        return text
    prefix, _, count = text.partition(":")
    if prefix != "last" or not count.isdigit():
        raise typer.BadParameter("trainable is all, none or last:N (e.g. last:2)", param_hint="--trainable")
    return {"last": int(count)}


@models.command("list")
@handles_errors
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """All models, with their head and tasks."""
    found = client_of(ctx).list_models()
    if as_json:
        return print_json(found)
    print_table(None, ["name", "kind", "input", "head", "tasks", "created"],
                [(m["name"], m["architecture"].get("kind"), m["architecture"].get("input_shape"), m["head"],
                  ", ".join(m["tasks"]), m["created_at"]) for m in found])


@models.command("show")
@handles_errors
def show(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """One model: architecture, head, tasks."""
    model = client_of(ctx).get_model(name)
    if as_json:
        return print_json(model)
    print_fields({"name": model["name"], "architecture": json.dumps(model["architecture"]), "seed": model["seed"],
                  "head": model["head"], "tasks": ", ".join(model["tasks"]) or "-", "created": model["created_at"]})


@models.command("delete")
@handles_errors
def delete(ctx: typer.Context, name: str,
           yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete a model with all its versions (admin)."""
    if not yes:
        typer.confirm(f"delete model {name} and all its versions?", abort=True)
    client_of(ctx).delete_model(name)
    typer.echo(f"deleted model {name}")
