"""`lifelong versions list|show`, `lifelong evaluation`: a model's history (and `head set`, deprecated).

Every train or importance job writes a new version; `production` (an alias) names the one predictions
use and the next task starts from. The first API called it the head; `head` now means only a task's
output layer, so the output says `production`, and `head set` is kept, hidden, for old scripts: it warns
on stderr, then does what `promote` does. `evaluation` prints the accuracy matrix (row: after learning a
task; column: accuracy on each task's eval set, task-free: the model's predictor over every class
learned, and neg. flips: the largest share of an earlier task's rows that the row's parent answered
right and it answers wrong) with average accuracy, forgetting and backward transfer. `versions show`
prints a version's task-free section: its predictor's held-back scores and unknown threshold, and where
each task's class statistics come from.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.commands.common import (
    JsonOption,
    client_of,
    handles_errors,
    print_fields,
    print_json,
    print_table,
    production_of,
)

versions = typer.Typer(no_args_is_help=True, help="List and show a model's versions.")
head = typer.Typer(no_args_is_help=True, help="Deprecated: use `lifelong promote MODEL VERSION`.")


@versions.command("list")
@handles_errors
def list_(ctx: typer.Context, model: str, as_json: JsonOption = False) -> None:
    """The versions of MODEL, oldest first; * marks production."""
    client = client_of(ctx)
    found = client.list_versions(model)
    if as_json:
        return print_json(found)
    current = production_of(client.get_model(model))
    print_table(f"{model} (production: {current})", ["", "version", "parent", "kind", "task", "job", "created"],
                [("*" if v["version"] == current else "", v["version"], v["parent"], v["kind"], v["task"], v["job"],
                  v["created_at"]) for v in found])


@versions.command("show")
@handles_errors
def show(ctx: typer.Context, model: str, version: int, as_json: JsonOption = False) -> None:
    """One version: its tasks, their accuracy, Ω per layer, and how it answers without a task."""
    detail = client_of(ctx).get_version(model, version)
    if as_json:
        return print_json(detail)
    print_fields({"version": detail["version"], "parent": detail["parent"], "kind": detail["kind"],
                  "task": detail["task"], "job": detail["job"], "created": detail["created_at"],
                  "tasks": ", ".join(detail["tasks"]) or "-"})
    if detail["accuracy"]:
        print_table("accuracy", ["task", "accuracy"], [(t, f"{a:.4f}") for t, a in detail["accuracy"].items()])
    layers = detail["importance"].get("layers") or {}
    if layers:
        print_table("importance (total Ω = Σ over tasks of S/n)", ["layer", "mean Ω", "max Ω"],
                    [(name, f"{s['mean']:.3g}", f"{s['max']:.3g}") for name, s in layers.items()])
    estimates = detail["importance"].get("tasks") or {}
    if estimates:
        print_table("importance per task", ["task", "samples", "measure"],
                    [(task, e["n"], e.get("measure") or "-") for task, e in estimates.items()])
    _print_task_free(detail.get("task_free"))
    _print_made_by(detail.get("made_by"))


def _print_task_free(task_free: dict[str, Any] | None) -> None:
    """The model's predictor with its held-back scores and unknown threshold, every predictor's scores, and
    per task whether its class statistics were measured with this version's trunk."""
    if not task_free:
        typer.echo("task-free: none (version 0, or made before task-free answers)")
        return
    typer.echo("task-free:")
    print_fields({"predictor": task_free["predictor"],
                  "held-back accuracy": _score(task_free.get("accuracy")),
                  "task accuracy": _score(task_free.get("task_accuracy")), "ECE": _score(task_free.get("ece")),
                  "threshold": _score(task_free.get("threshold"), ".4g"),
                  "unknown rate": task_free.get("unknown_rate"),
                  "temperature": _score(task_free.get("temperature"), ".4g"),
                  "projection": task_free.get("projection"),
                  "held back": f"{task_free.get('held_back_rows')} rows from {task_free.get('held_back_from')}",
                  "eval rows": task_free.get("eval_rows")})
    scores = task_free.get("predictors") or {}
    evals = task_free.get("eval") or {}
    if scores:
        print_table("task-free predictors (held back / eval sets)",
                    ["predictor", "accuracy", "task accuracy", "ECE", "eval accuracy", "eval ECE"],
                    [(("* " if name == task_free["predictor"] else "") + name, _score(s.get("accuracy")),
                      _score(s.get("task_accuracy")), _score(s.get("ece")),
                      _score((evals.get(name) or {}).get("accuracy")), _score((evals.get(name) or {}).get("ece")))
                     for name, s in scores.items()])
    tasks = task_free.get("tasks") or {}
    if tasks:
        print_table("task-free class statistics per task",
                    ["task", "rows", "at this trunk", "remeasured", "drift reference rows"],
                    [(task, t["n"], _yes(t["at_this_trunk"]), _yes(t["remeasured"]), t.get("reference_rows", 0))
                     for task, t in tasks.items()])


def worst_flips(flips: dict[str, float] | None) -> str:
    """`0.0312 (digits-0-1)`: the largest negative flip rate of a row and its task; `-` with none."""
    if not flips:
        return "-"
    task = max(flips, key=flips.__getitem__)
    return f"{flips[task]:.4f} ({task})"


def _score(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _print_made_by(made_by: dict | None) -> None:
    """How the version was made: the request's learning settings, where it ran, its loss and λ search."""
    if not made_by:
        return
    request = made_by.get("request") or {}
    keys = ("method", "lambda", "penalty", "optimizer", "lr", "momentum", "epochs", "batch_size", "seed",
            "validation_fraction", "train_dataset", "eval_dataset", "mode", "dataset")
    fields = {k: request[k] for k in keys if request.get(k) is not None} | _lambda_fields(made_by)
    fields = {k: v for k, v in fields.items() if v is not None}
    for key in ("worker", "device", "precision", "attempts", "resumed_from_step", "wall_s", "lifelong"):
        if made_by.get(key) is not None:
            fields[key] = made_by[key]
    typer.echo("made by:")
    print_fields(fields)
    if made_by.get("loss_per_epoch"):
        typer.echo("loss per epoch: " + " ".join(f"{loss:.4g}" for loss in made_by["loss_per_epoch"]))
    if made_by.get("lambda_search"):
        print_table("λ search (validation accuracy; a tie goes to the lower loss)",
                    ["λ", "mean", *made_by["lambda_search"][0]["validation"], "mean loss"],
                    [(t["lambda"], f"{t['mean']:.4f}", *(f"{a:.4f}" for a in t["validation"].values()),
                      _loss(t.get("mean_loss"))) for t in made_by["lambda_search"]])


def _lambda_fields(made_by: dict[str, Any]) -> dict[str, Any]:
    """λ as far as it meant anything: fine-tuning has none (versions made before it recorded null still
    say 1.0), and a first task has nothing to protect, so its "auto" searched nothing and no λ was used."""
    request = made_by.get("request") or {}
    if request.get("method") == "finetune":
        return {"lambda": None, "penalty": None}
    if request.get("lambda") == "auto" and not made_by.get("lambda_search"):
        return {"lambda": "auto (no earlier task to protect: no search, no penalty)"}
    return {} if made_by.get("lambda") is None else {"lambda used": made_by["lambda"]}


def _loss(value: float | None) -> str:
    """A trial's mean validation loss: null where it was not finite, absent before losses were kept."""
    return "-" if value is None else f"{value:.4f}"


@head.command("set")
@handles_errors
def set_(ctx: typer.Context, model: str, version: int, as_json: JsonOption = False) -> None:
    """Deprecated: `lifelong promote MODEL VERSION` (this warns, then does just that)."""
    typer.echo("warning: `lifelong head set` is deprecated and will go; use `lifelong promote MODEL VERSION`"
               " (or `lifelong aliases set MODEL production VERSION`)", err=True)
    moved = client_of(ctx).promote(model, version)
    print_json(moved) if as_json else typer.echo(f"{model}: production is version {moved['version']}")


def evaluation(ctx: typer.Context, model: str,
               as_json: Annotated[bool, typer.Option("--json", help="print the server's answer as JSON")] = False,
               ) -> None:
    """The accuracy matrix along production's lineage, with average accuracy, forgetting and BWT; the task-free
    column is the model's predictor over every class learned so far, on the eval sets of every task; neg. flips
    is the largest share of an earlier task's eval rows that the row's parent answered right and it answers
    wrong (with that task; every task's flips, negative and positive, are in --json)."""
    matrix = client_of(ctx).evaluation(model)
    if as_json:
        return print_json(matrix)
    tasks = matrix["tasks"]
    print_table(f"{model}: accuracy after each task (production: {matrix.get('production', matrix.get('head'))})",
                ["version", "learned", *tasks, "task-free", "neg. flips"],
                [(row["version"], row["task"],
                  *(f"{row['accuracy'][t]:.4f}" if t in row["accuracy"] else "" for t in tasks),
                  _score((row.get("task_free") or {}).get("accuracy")), worst_flips(row.get("negative_flips")))
                 for row in matrix["rows"]])
    for key in ("average_accuracy", "forgetting", "bwt"):
        value = matrix.get(key)
        typer.echo(f"{key.replace('_', ' ')}: {'-' if value is None else f'{value:.4f}'}")
