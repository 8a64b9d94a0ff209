"""`lifelong evaluate`: score a version on labeled data (accuracy, per-class precision and recall, confusion).

Without `--task` the version answers task-free, over every class learned, and the command also prints
the task accuracy (how often the answer's task was the row's), the calibration error and the unknown share.
Both end with the flips against the version's parent: per task, the share of rows the parent answered right
and this version answers wrong (negative), and wrong then right (positive).
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.commands.common import JsonOption, client_of, data_source, print_fields, print_json, print_table


def evaluate(
    ctx: typer.Context,
    model: str,
    data: Annotated[str, typer.Option(help="labeled data: a file (.npz/.csv arrays, .jsonl/.csv texts, .zip/.tar"
                                           " images) or a dataset id; without --task, labels are global class"
                                           " indices (tasks in the order learned) or class names / task/name")],
    task: Annotated[str | None, typer.Option(
        help="the task whose head is scored; without it, the task-free answer over every class learned",
        show_default="task-free")] = None,
    version: Annotated[int | None, typer.Option(help="the version scored", show_default="production")] = None,
    alias: Annotated[str | None, typer.Option(help="score the version this alias names instead",
                                              show_default="production")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score MODEL on --data: accuracy, precision and recall of each class, and the confusion matrix (rows:
    labeled class, columns: predicted class); of --task's head, or without --task task-free (every class
    learned), with its task accuracy, calibration error (ECE) and share of rows called unknown; then per task
    the flips against the version's parent (negative: right then wrong; positive: wrong then right)."""
    source = data_source(data, "--data")  # a file is uploaded first (same bytes, same dataset)
    scores = client_of(ctx).evaluate(model, source, task=task, version=version, alias=alias)
    if as_json:
        return print_json(scores)
    if scores.get("task") is None:
        task_free = scores.get("task_free") or {}
        print_fields({"model": scores["model"], "version": scores["version"],
                      "task": f"none (task-free, predictor {scores.get('predictor')})", "rows": scores["n"],
                      "task-free accuracy": f"{scores['accuracy']:.4f}",
                      "task accuracy": _share(task_free.get("task_accuracy")), "ECE": _share(task_free.get("ece")),
                      "unknown share": _share(task_free.get("unknown"))})
    else:
        print_fields({"model": scores["model"], "version": scores["version"], "task": scores["task"],
                      "rows": scores["n"], "accuracy": f"{scores['accuracy']:.4f}"})
    names = [c["label"] if c["label"] is not None else str(c["index"]) for c in scores["per_class"]]
    print_table("per class", ["class", "precision", "recall", "support", "predicted"],
                [(name, _share(c["precision"]), _share(c["recall"]), c["support"], c["predicted"])
                 for name, c in zip(names, scores["per_class"], strict=True)])
    if scores.get("confusion_matrix") is not None:
        print_table("confusion matrix", ["labeled \\ predicted", *names],
                    [(name, *row) for name, row in zip(names, scores["confusion_matrix"], strict=True)])
    else:  # more classes than LIFELONG_MAX_CONFUSION_CLASSES: per_class is partial, the matrix left out
        print_table(f"top confusions (of {scores.get('classes')} classes; per class: those with the most support)",
                    ["labeled", "predicted", "rows"],
                    [(c["labeled"], c["predicted"], c["count"]) for c in scores.get("top_confusions", [])])
    _print_flips(scores)


def _print_flips(scores: dict) -> None:
    """Per task, how the version's answers changed against its parent's on these rows."""
    negative, positive = scores.get("negative_flips") or {}, scores.get("positive_flips") or {}
    if scores.get("parent") is None or not (negative or positive):
        typer.echo("flips against the parent: none (no parent, or no task both versions know)")
        return
    print_table(f"flips against the parent, version {scores['parent']} (share of rows)",
                ["task", "negative flips (right → wrong)", "positive flips (wrong → right)"],
                [(task, _share(negative.get(task)), _share(positive.get(task))) for task in {**negative, **positive}])


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
