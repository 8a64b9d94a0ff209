"""`lifelong export`: one task's network at a version (or alias) as an ONNX or TorchScript file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from app.commands.common import JsonOption, client_of, print_json


def export(
    ctx: typer.Context,
    model: str,
    version: Annotated[str, typer.Argument(help="a version number, or an alias (production, candidate, …)")],
    task: Annotated[str, typer.Option(help="the task whose head the network ends in")],
    output: Annotated[Path, typer.Option(dir_okay=False, help="the file to write")],
    format: Annotated[Literal["onnx", "torchscript"], typer.Option(  # noqa: A002 - the API's name
        help="onnx (onnxruntime and other runtimes) or torchscript (torch.jit.load)")] = "onnx",
    as_json: JsonOption = False,
) -> None:
    """Write TASK's network at VERSION of MODEL (the trunk and that task's head, with the preprocessing a graph
    can hold) to --output; what the caller still does to raw inputs is in the file's metadata."""
    client = client_of(ctx)
    number = client.resolve_version(model, version)
    content = client.export(model, number, task=task, format=format, path=output)
    if as_json:
        return print_json({"model": model, "version": number, "task": task, "format": format,
                           "output": str(output), "bytes": len(content)})
    named = "" if version.isdigit() else f" ({version})"
    typer.echo(f"{model} version {number}{named}, task {task}: {format} written to {output} ({len(content)} bytes)",
               err=True)
