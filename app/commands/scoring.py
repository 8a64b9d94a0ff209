"""`lifelong evaluate`: score a version on labeled data (accuracy, per-class precision and recall, confusion)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.commands.common import JsonOption, client_of, print_fields, print_json, print_table


def evaluate(
    ctx: typer.Context,
    model: str,
    task: Annotated[str, typer.Option(help="the task whose head is scored")],
    data: Annotated[str, typer.Option(help="labeled data: a file (.npz/.csv arrays, .jsonl/.csv texts, .zip/.tar"
                                           " images) or a dataset id")],
    version: Annotated[int | None, typer.Option(help="the version scored", show_default="production")] = None,
    alias: Annotated[str | None, typer.Option(help="score the version this alias names instead",
                                              show_default="production")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score TASK of MODEL on --data: accuracy, precision and recall of each class, and the confusion matrix
    (rows: labeled class, columns: predicted class)."""
    source = Path(data) if Path(data).is_file() else data  # a file is uploaded first (same bytes, same dataset)
    scores = client_of(ctx).evaluate(model, source, task=task, version=version, alias=alias)
    if as_json:
        return print_json(scores)
    print_fields({"model": scores["model"], "version": scores["version"], "task": scores["task"],
                  "rows": scores["n"], "accuracy": f"{scores['accuracy']:.4f}"})
    names = [c["label"] if c["label"] is not None else str(c["index"]) for c in scores["per_class"]]
    print_table("per class", ["class", "precision", "recall", "support", "predicted"],
                [(name, _share(c["precision"]), _share(c["recall"]), c["support"], c["predicted"])
                 for name, c in zip(names, scores["per_class"], strict=True)])
    print_table("confusion matrix", ["labeled \\ predicted", *names],
                [(name, *row) for name, row in zip(names, scores["confusion_matrix"], strict=True)])


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
