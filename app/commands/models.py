"""`lifelong models create|list|show|delete`: the models on the server."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer

from app.client import QueueName
from app.commands.common import JsonOption, client_of, handles_errors, print_fields, print_json, print_table

models = typer.Typer(no_args_is_help=True, help="Create, list, show, update and delete models.")

Policy = Literal["auto", "manual", "guarded"]
POLICY_HELP = ("when a job's version becomes production: auto (always), manual (never: it waits as candidate), "
               "guarded (when no earlier task forgot more than --max-forgetting)")
FORGETTING_HELP = "guarded: the most an earlier task's accuracy may drop"
ACCURACY_HELP = "guarded: the least accuracy on the new task's eval set"
PolicyOption = Annotated[Policy | None, typer.Option(help=POLICY_HELP, show_default="guarded")]
MaxForgettingOption = Annotated[float | None, typer.Option(min=0, max=1, help=FORGETTING_HELP, show_default="0.05")]
MinAccuracyOption = Annotated[float | None, typer.Option(min=0, max=1, help=ACCURACY_HELP, show_default="none")]
# `models update`: an option not given leaves the setting as it is.
NewPolicyOption = Annotated[Policy | None, typer.Option("--promotion", help=POLICY_HELP, show_default=False)]
NewMaxForgettingOption = Annotated[float | None, typer.Option(min=0, max=1, help=FORGETTING_HELP, show_default=False)]
NewMinAccuracyOption = Annotated[float | None, typer.Option(min=0, max=1, help=ACCURACY_HELP, show_default=False)]

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
        help="all, none (heads only) or last:N blocks", show_default="the architecture's")] = None,
    architecture: Annotated[str | None, typer.Option(help="the whole architecture as JSON (overrides all)")] = None,
    seed: Annotated[int, typer.Option(help="seeds the initial weights")] = 0,
    queue: Annotated[QueueName | None, typer.Option(
        help="where its jobs go", show_default="the server's LIFELONG_DEFAULT_QUEUE")] = None,
    promotion: PolicyOption = None,
    max_forgetting: MaxForgettingOption = None,
    min_accuracy: MinAccuracyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a model; its version 0 (initial weights) is production."""
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
    policy = promotion_fields(promotion, max_forgetting, min_accuracy)
    model = client_of(ctx).create_model(name, spec, seed=seed, queue=queue, promotion=policy or None)
    if as_json:
        return print_json(model)
    typer.echo(f"created model {model['name']} (production: version {model['head']}, "
               f"promotion {describe_promotion(model['promotion'])})")


@models.command("update")
@handles_errors
def update(
    ctx: typer.Context,
    name: str,
    promotion: NewPolicyOption = None,
    max_forgetting: NewMaxForgettingOption = None,
    min_accuracy: NewMinAccuracyOption = None,
    no_min_accuracy: Annotated[bool, typer.Option("--no-min-accuracy", help="drop min_accuracy")] = False,
    as_json: JsonOption = False,
) -> None:
    """Change a model's promotion policy (the options given; the others stay)."""
    policy = promotion_fields(promotion, max_forgetting, min_accuracy)
    if no_min_accuracy:
        policy["min_accuracy"] = None
    if not policy:
        raise typer.BadParameter("give --promotion, --max-forgetting, --min-accuracy or --no-min-accuracy")
    model = client_of(ctx).update_model(name, promotion=policy)
    print_json(model) if as_json else typer.echo(f"{name}: promotion {describe_promotion(model['promotion'])}")


def promotion_fields(policy: str | None, max_forgetting: float | None, min_accuracy: float | None) -> dict[str, Any]:
    """The API's `promotion` fields that the options give."""
    fields = {"policy": policy, "max_forgetting": max_forgetting, "min_accuracy": min_accuracy}
    return {key: value for key, value in fields.items() if value is not None}


def describe_promotion(promotion: dict[str, Any]) -> str:
    text = promotion["policy"]
    if promotion["policy"] == "guarded":
        text += f" (max_forgetting {promotion['max_forgetting']}, min_accuracy {promotion.get('min_accuracy')})"
    return text


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
    aliases = ", ".join(f"{alias} → {version}" for alias, version in model.get("aliases", {}).items())
    print_fields({"name": model["name"], "architecture": json.dumps(model["architecture"]), "seed": model["seed"],
                  "head": model["head"], "aliases": aliases or "-",
                  "promotion": describe_promotion(model["promotion"]) if "promotion" in model else "-",
                  "tasks": ", ".join(model["tasks"]) or "-", "created": model["created_at"]})


@models.command("delete")
@handles_errors
def delete(ctx: typer.Context, name: str,
           yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete a model with all its versions (admin)."""
    if not yes:
        typer.confirm(f"delete model {name} and all its versions?", abort=True)
    client_of(ctx).delete_model(name)
    typer.echo(f"deleted model {name}")
