"""`lifelong datasets upload|show`: .npz or .csv files the tasks train and evaluate on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.commands.common import JsonOption, client_of, handles_errors, print_fields, print_json

datasets = typer.Typer(no_args_is_help=True, help="Upload and show datasets.")

ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


def _print(dataset: dict, as_json: bool) -> None:
    if as_json:
        return print_json(dataset)
    print_fields({k: dataset.get(k) for k in ("id", "n", "input_shape", "has_labels", "bytes", "sha256")})


@datasets.command("upload")
@handles_errors
def upload(ctx: typer.Context, file: ExistingFile, as_json: JsonOption = False) -> None:
    """Upload FILE (.npz with x [and y], or .csv with an optional label column); prints its id."""
    _print(client_of(ctx).upload_dataset(file), as_json)


@datasets.command("show")
@handles_errors
def show(ctx: typer.Context, dataset_id: str, as_json: JsonOption = False) -> None:
    """One dataset: rows, input shape, labels."""
    _print(client_of(ctx).get_dataset(dataset_id), as_json)
