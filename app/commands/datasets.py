"""`lifelong datasets upload|list|show|delete`: the files tasks train and evaluate on (arrays, texts, images)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.commands.common import JsonOption, client_of, handles_errors, print_fields, print_json, print_table

datasets = typer.Typer(no_args_is_help=True, help="Upload, list, show and delete datasets.")

ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


def _print(dataset: dict, as_json: bool) -> None:
    if as_json:
        return print_json(dataset)
    print_fields({k: dataset.get(k) for k in ("id", "kind", "n", "input_shape", "has_labels", "classes", "format",
                                              "bytes", "sha256", "created_at", "retain_until")})


@datasets.command("upload")
@handles_errors
def upload(ctx: typer.Context, file: ExistingFile, as_json: JsonOption = False,
           retain_until: Annotated[str | None, typer.Option(
               help="delete it at this time (ISO 8601, e.g. 2027-06-30 or 2027-06-30T12:00:00Z), whatever the "
                    "server's retention setting says")] = None) -> None:
    """Upload FILE: .npz (x [and y]) or .csv (arrays, or texts with a text column), .jsonl (texts),
    .zip/.tar/.tar.gz/.tgz (images). Prints its id and what the server read."""
    _print(client_of(ctx).upload_dataset(file, retain_until=retain_until), as_json)


@datasets.command("list")
@handles_errors
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """All datasets, newest first."""
    found = client_of(ctx).list_datasets()
    if as_json:
        return print_json(found)
    print_table(None, ["id", "kind", "rows", "input", "labels", "format", "bytes", "created"],
                [(d["id"], d.get("kind"), d["n"], d["input_shape"] or "-", _labels(d), d.get("format"), d["bytes"],
                  d.get("created_at")) for d in found])


def _labels(dataset: dict) -> str:
    if not dataset["has_labels"]:
        return "-"
    classes = dataset.get("classes")
    if not classes:
        return f"0..{dataset.get('max_label')}"
    return ", ".join(classes) if len(classes) <= 4 else f"{', '.join(classes[:3])}, … ({len(classes)} classes)"


@datasets.command("show")
@handles_errors
def show(ctx: typer.Context, dataset_id: str, as_json: JsonOption = False) -> None:
    """One dataset: rows, input shape, labels."""
    _print(client_of(ctx).get_dataset(dataset_id), as_json)


@datasets.command("delete")
@handles_errors
def delete(ctx: typer.Context, dataset_id: str,
           yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete a dataset: its row and its blob (refused while a queued or running job needs it). The
    versions trained on it keep working; `lifelong versions show` lists what they derived from it."""
    if not yes:
        typer.confirm(f"delete dataset {dataset_id} and its data?", abort=True)
    client_of(ctx).delete_dataset(dataset_id)
    typer.echo(f"deleted dataset {dataset_id}")
