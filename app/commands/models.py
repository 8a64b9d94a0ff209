"""`lifelong models create|list|show|update|delete`: the models on the server, their promotion policy (with
`--max-negative-flip-rate`), how they answer predictions that name no task (`--task-free-predictor`,
`--unknown-rate`) and the level of their drift reports (`--drift-alpha`)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer

from app.client import Predictor, QueueName, SelectionRule
from app.commands.common import (
    JsonOption,
    client_of,
    handles_errors,
    print_fields,
    print_json,
    print_table,
    production_of,
)

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
TASK_FREE_ACCURACY_HELP = ("guarded: the least task-free accuracy (every class learned, the model's predictor) on the"
                           " eval sets of every task")
PREDICTOR_HELP = ("which predictor answers predictions that name no task: max_softmax, energy, ncm (nearest class"
                  " mean), ridge (RanPAC ridge head) or ridge_routed")
UNKNOWN_RATE_HELP = "the largest share (0 to 0.5) of held-back in-distribution rows a task-free answer calls unknown"
MinTaskFreeAccuracyOption = Annotated[float | None, typer.Option(
    min=0, max=1, help=TASK_FREE_ACCURACY_HELP, show_default="none")]
PredictorOption = Annotated[Predictor | None, typer.Option(
    "--task-free-predictor", help=PREDICTOR_HELP, show_default="ridge")]
UnknownRateOption = Annotated[float | None, typer.Option(min=0, max=0.5, help=UNKNOWN_RATE_HELP,
                                                         show_default="0.05")]
NewMinTaskFreeAccuracyOption = Annotated[float | None, typer.Option(
    min=0, max=1, help=TASK_FREE_ACCURACY_HELP, show_default=False)]
NewPredictorOption = Annotated[Predictor | None, typer.Option(
    "--task-free-predictor", help=PREDICTOR_HELP, show_default=False)]
NewUnknownRateOption = Annotated[float | None, typer.Option(min=0, max=0.5, help=UNKNOWN_RATE_HELP,
                                                            show_default=False)]
FLIP_RATE_HELP = ("guarded: the largest share of an earlier task's eval rows that the base version answered right"
                  " and the new version answers wrong (negative flips)")
DRIFT_ALPHA_HELP = ("the level (0 to 1) of drift reports' verdicts (each task is tested at it / the number of"
                    " tasks): the chance of a false alarm on a batch like the training data")
MaxNegativeFlipRateOption = Annotated[float | None, typer.Option(min=0, max=1, help=FLIP_RATE_HELP,
                                                                 show_default="none")]


def check_drift_alpha(value: float | None) -> float | None:
    """0 < alpha < 1, checked here so that a typo is a usage error (exit 2), not the server's 422."""
    if value is not None and not 0 < value < 1:
        raise typer.BadParameter(f"{value} is not between 0 and 1 (both excluded)")
    return value


DriftAlphaOption = Annotated[float | None, typer.Option(callback=check_drift_alpha, help=DRIFT_ALPHA_HELP,
                                                        show_default="0.01")]
NewMaxNegativeFlipRateOption = Annotated[float | None, typer.Option(min=0, max=1, help=FLIP_RATE_HELP,
                                                                    show_default=False)]
NewDriftAlphaOption = Annotated[float | None, typer.Option(callback=check_drift_alpha, help=DRIFT_ALPHA_HELP,
                                                           show_default=False)]


LAMBDA_RULE_HELP = ("how λ 'auto' chooses when a task request does not say: constrained (the least forgetting among"
                    " the λ within --new-task-tolerance of the best new-task validation accuracy) or mean (the best"
                    " mean accuracy over every task)")
TOLERANCE_HELP = "constrained: how far below the best new-task validation accuracy a λ may fall (0.02: 2 points)"
LambdaRuleOption = Annotated[SelectionRule | None, typer.Option(help=LAMBDA_RULE_HELP, show_default="constrained")]
ToleranceOption = Annotated[float | None, typer.Option(min=0, max=1, help=TOLERANCE_HELP, show_default="0.02")]
NewLambdaRuleOption = Annotated[SelectionRule | None, typer.Option(help=LAMBDA_RULE_HELP, show_default=False)]
NewToleranceOption = Annotated[float | None, typer.Option(min=0, max=1, help=TOLERANCE_HELP, show_default=False)]


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
    min_task_free_accuracy: MinTaskFreeAccuracyOption = None,
    max_negative_flip_rate: MaxNegativeFlipRateOption = None,
    task_free_predictor: PredictorOption = None,
    unknown_rate: UnknownRateOption = None,
    projection: Annotated[int | None, typer.Option(
        min=0, max=8192, help="width of the ridge head's random projection (0: none, the trunk's own features);"
                              " fixed at creation", show_default="1024")] = None,
    drift_alpha: DriftAlphaOption = None,
    lambda_selection: LambdaRuleOption = None,
    new_task_tolerance: ToleranceOption = None,
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
    policy = promotion_fields(promotion, max_forgetting, min_accuracy, min_task_free_accuracy, max_negative_flip_rate)
    options = task_free_fields(task_free_predictor, unknown_rate) | (
        {} if projection is None else {"projection": projection})
    model = client_of(ctx).create_model(name, spec, seed=seed, queue=queue, promotion=policy or None,
                                        task_free=options or None, drift_alpha=drift_alpha,
                                        lambda_selection=selection_fields(lambda_selection, new_task_tolerance))
    if as_json:
        return print_json(model)
    typer.echo(f"created model {model['name']} (production: version {production_of(model)}, "
               f"promotion {describe_promotion(model['promotion'])}, "
               f"task-free {describe_task_free(model.get('task_free'))}, drift alpha {model.get('drift_alpha')}, "
               f"{describe_selection(model.get('lambda_selection'))})")


@models.command("update")
@handles_errors
def update(
    ctx: typer.Context,
    name: str,
    promotion: NewPolicyOption = None,
    max_forgetting: NewMaxForgettingOption = None,
    min_accuracy: NewMinAccuracyOption = None,
    no_min_accuracy: Annotated[bool, typer.Option("--no-min-accuracy", help="drop min_accuracy")] = False,
    min_task_free_accuracy: NewMinTaskFreeAccuracyOption = None,
    no_min_task_free_accuracy: Annotated[bool, typer.Option(
        "--no-min-task-free-accuracy", help="drop min_task_free_accuracy")] = False,
    max_negative_flip_rate: NewMaxNegativeFlipRateOption = None,
    no_max_negative_flip_rate: Annotated[bool, typer.Option(
        "--no-max-negative-flip-rate", help="drop max_negative_flip_rate (flips are not checked)")] = False,
    task_free_predictor: NewPredictorOption = None,
    unknown_rate: NewUnknownRateOption = None,
    drift_alpha: NewDriftAlphaOption = None,
    lambda_selection: NewLambdaRuleOption = None,
    new_task_tolerance: NewToleranceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a model's promotion policy, how it answers without a task, its drift alpha and how λ "auto"
    chooses (the options given; the others stay; the projection is fixed at creation). A new predictor answers
    at once: every version fits them all; a new drift alpha applies to the reports made from now on; a new λ
    selection to the task requests sent from now on."""
    policy = promotion_fields(promotion, max_forgetting, min_accuracy, min_task_free_accuracy, max_negative_flip_rate)
    dropped = {"min_accuracy": no_min_accuracy, "min_task_free_accuracy": no_min_task_free_accuracy,
               "max_negative_flip_rate": no_max_negative_flip_rate}
    policy |= {key: None for key, drop in dropped.items() if drop}
    options = task_free_fields(task_free_predictor, unknown_rate)
    selection = selection_fields(lambda_selection, new_task_tolerance)
    if not policy and not options and drift_alpha is None and selection is None:
        raise typer.BadParameter("give --promotion, --max-forgetting, --min-accuracy, --no-min-accuracy, "
                                 "--min-task-free-accuracy, --no-min-task-free-accuracy, --max-negative-flip-rate, "
                                 "--no-max-negative-flip-rate, --task-free-predictor, --unknown-rate, --drift-alpha, "
                                 "--lambda-selection or --new-task-tolerance")
    model = client_of(ctx).update_model(name, promotion=policy or None, task_free=options or None,
                                        drift_alpha=drift_alpha, lambda_selection=selection)
    if as_json:
        return print_json(model)
    typer.echo(f"{name}: promotion {describe_promotion(model['promotion'])}, "
               f"task-free {describe_task_free(model.get('task_free'))}, drift alpha {model.get('drift_alpha')}, "
               f"{describe_selection(model.get('lambda_selection'))}")


def promotion_fields(policy: str | None, max_forgetting: float | None, min_accuracy: float | None,
                     min_task_free_accuracy: float | None = None,
                     max_negative_flip_rate: float | None = None) -> dict[str, Any]:
    """The API's `promotion` fields that the options give."""
    fields = {"policy": policy, "max_forgetting": max_forgetting, "min_accuracy": min_accuracy,
              "min_task_free_accuracy": min_task_free_accuracy, "max_negative_flip_rate": max_negative_flip_rate}
    return {key: value for key, value in fields.items() if value is not None}


def task_free_fields(predictor: str | None, unknown_rate: float | None) -> dict[str, Any]:
    """The API's `task_free` fields that the options give."""
    fields = {"predictor": predictor, "unknown_rate": unknown_rate}
    return {key: value for key, value in fields.items() if value is not None}


def selection_fields(rule: str | None, tolerance: float | None) -> dict[str, Any] | None:
    """The API's `lambda_selection` fields that the options give; None when they give none."""
    fields = {key: value for key, value in (("rule", rule), ("new_task_tolerance", tolerance)) if value is not None}
    return fields or None


def describe_selection(selection: dict[str, Any] | None) -> str:
    if not selection:
        return "λ selection -"
    tolerance = f", new_task_tolerance {selection['new_task_tolerance']}" if selection["rule"] == "constrained" else ""
    return f"λ selection {selection['rule']}{tolerance}"


def describe_promotion(promotion: dict[str, Any]) -> str:
    text = promotion["policy"]
    if promotion["policy"] == "guarded":
        text += f" (max_forgetting {promotion['max_forgetting']}, min_accuracy {promotion.get('min_accuracy')}"
        if promotion.get("min_task_free_accuracy") is not None:
            text += f", min_task_free_accuracy {promotion['min_task_free_accuracy']}"
        if promotion.get("max_negative_flip_rate") is not None:
            text += f", max_negative_flip_rate {promotion['max_negative_flip_rate']}"
        text += ")"
    return text


def describe_task_free(options: dict[str, Any] | None) -> str:
    if not options:
        return "-"
    return (f"predictor {options['predictor']} (unknown_rate {options['unknown_rate']}, "
            f"projection {options['projection']})")


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
    """All models, with the version production names and their tasks."""
    found = client_of(ctx).list_models()
    if as_json:
        return print_json(found)
    print_table(None, ["name", "kind", "input", "production", "tasks", "created"],
                [(m["name"], m["architecture"].get("kind"), m["architecture"].get("input_shape"), production_of(m),
                  ", ".join(m["tasks"]), m["created_at"]) for m in found])


@models.command("show")
@handles_errors
def show(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """One model: architecture, aliases (production first), tasks."""
    model = client_of(ctx).get_model(name)
    if as_json:
        return print_json(model)
    aliases = ", ".join(f"{alias} → {version}" for alias, version in model.get("aliases", {}).items())
    print_fields({"name": model["name"], "architecture": json.dumps(model["architecture"]), "seed": model["seed"],
                  "production": production_of(model), "aliases": aliases or "-",
                  "promotion": describe_promotion(model["promotion"]) if "promotion" in model else "-",
                  "task-free": describe_task_free(model.get("task_free")), "drift alpha": model.get("drift_alpha"),
                  "λ selection": describe_selection(model.get("lambda_selection")).removeprefix("λ selection "),
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
