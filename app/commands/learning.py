"""`lifelong tasks add`, `lifelong importance refresh`, `lifelong predict`: the commands that use a model.

`tasks add` and `importance refresh` upload their files, start the job and follow it to its end
(a live bar on a terminal), so one command trains a task; `--detach` returns at once instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from app.client import QueueName
from app.commands.common import (
    DetachOption,
    ExitCode,
    JsonOption,
    TimeoutOption,
    client_of,
    fail,
    follow,
    handles_errors,
    print_json,
)
from app.commands.models import parse_trainable

tasks = typer.Typer(no_args_is_help=True, help="Teach a model new tasks.")
importance = typer.Typer(no_args_is_help=True, help="Re-measure a model's importance (Ω).")

DEFAULT_EPOCHS = 10  # the server's default, known here to show the epoch in the bar


@tasks.command("add")
@handles_errors
def add(
    ctx: typer.Context,
    model: str,
    task: str,
    train: Annotated[str, typer.Option(
        "--train", help="labeled training data: a file (.npz/.csv arrays, .jsonl/.csv texts, .zip/.tar images)"
                        " or a dataset id")],
    eval_: Annotated[str | None, typer.Option("--eval", help="held-out labeled data for the accuracy matrix")] = None,
    lambda_: Annotated[float | None, typer.Option("--lambda", help="strength of the MAS penalty")] = None,
    epochs: Annotated[int | None, typer.Option(help=f"[default: {DEFAULT_EPOCHS}]")] = None,
    method: Annotated[str | None, typer.Option(help="mas (default), finetune, or another baseline")] = None,
    num_classes: Annotated[int | None, typer.Option(help="[default: from the labels]")] = None,
    batch_size: int | None = None,
    lr: float | None = None,
    optimizer: Annotated[Literal["sgd", "adam"] | None, typer.Option()] = None,
    base_version: Annotated[int | None, typer.Option(help="[default: the head]")] = None,
    seed: int | None = None,
    queue: Annotated[QueueName | None, typer.Option(help="cpu or gpu workers [default: the model's]")] = None,
    trainable: Annotated[str | None, typer.Option(
        help="all, none (heads only) or last:N blocks [default: the model's]")] = None,
    detach: DetachOption = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Learn TASK on MODEL from --train (and --eval), following the job until it ends."""
    client = client_of(ctx)
    job = client.add_task(model, task, _data(train), None if eval_ is None else _data(eval_), lambda_=lambda_,
                          epochs=epochs, method=method, num_classes=num_classes, batch_size=batch_size, lr=lr,
                          optimizer=optimizer, base_version=base_version, seed=seed, queue=queue,
                          trainable=None if trainable is None else parse_trainable(trainable))
    if detach:
        return print_json(job.data) if as_json else typer.echo(job.id)
    typer.echo(f"job {job.id}: learning {task} on {model}", err=True)
    follow(job, as_json=as_json, timeout=timeout, epochs=epochs or DEFAULT_EPOCHS)


@importance.command("refresh")
@handles_errors
def refresh(
    ctx: typer.Context,
    model: str,
    data: Annotated[str, typer.Option(
        "--data", help="inputs (labels ignored): a file (arrays, texts or images, as for tasks add) or dataset id")],
    mode: Annotated[Literal["accumulate", "replace"], typer.Option()] = "accumulate",
    task: Annotated[str | None, typer.Option(help="whose head F(x) is [default: the last learned]")] = None,
    base_version: Annotated[int | None, typer.Option(help="[default: the head]")] = None,
    queue: Annotated[QueueName | None, typer.Option(help="cpu or gpu workers [default: the model's]")] = None,
    detach: DetachOption = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure Ω again on --data; the result is a new version sharing θ with its parent."""
    job = client_of(ctx).refresh_importance(model, _data(data), mode=mode, task=task, base_version=base_version,
                                            queue=queue)
    if detach:
        return print_json(job.data) if as_json else typer.echo(job.id)
    follow(job, as_json=as_json, timeout=timeout)


def predict(
    ctx: typer.Context,
    model: str,
    task: Annotated[str, typer.Option(help="which task's head answers")],
    inputs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=".npy, or .npz with x")] = None,
    text: Annotated[list[str] | None, typer.Option(help="a text to classify (text models); repeat for more")] = None,
    image: Annotated[list[Path] | None, typer.Option(exists=True, dir_okay=False,
                                                     help="a PNG/JPEG file (image models); repeat for more")] = None,
    version: Annotated[int | None, typer.Option(help="[default: the head]")] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="also the class probabilities")] = False,
    output: Annotated[Path | None, typer.Option(help="write the predicted classes here as .npy")] = None,
    as_json: JsonOption = False,
) -> None:
    """Predict classes for the rows of --inputs (sent as a raw .npy body), for --text strings or --image files."""
    given = [option for option in (inputs, text, image) if option]
    if len(given) != 1:
        fail("give exactly one of --inputs FILE, --text TEXT (repeatable) or --image FILE (repeatable)", ExitCode.USAGE)
    raw = _load_inputs(inputs) if inputs is not None else list(text) if text else [str(p) for p in image or []]
    answer = client_of(ctx).predict(model, raw, task=task, version=version, probabilities=probabilities)
    if output is not None:
        np.save(output, answer.predictions)
    if as_json:
        result = {"model": answer.model, "version": answer.version, "task": answer.task,
                  "predictions": answer.predictions.tolist()}
        if answer.probabilities is not None:
            result["probabilities"] = answer.probabilities.tolist()
        if answer.labels is not None:
            result["labels"] = answer.labels
        return print_json(result)
    typer.echo(f"# {answer.model} version {answer.version}, task {answer.task}: {len(answer.predictions)} rows",
               err=True)
    named = answer.predictions.tolist() if answer.labels is None else [
        f"{c}\t{label}" for c, label in zip(answer.predictions.tolist(), answer.labels, strict=True)]
    rows = named if answer.probabilities is None else [
        f"{c}\t{' '.join(f'{p:.4f}' for p in probs)}" for c, probs in zip(named, answer.probabilities, strict=True)]
    typer.echo("\n".join(str(row) for row in rows))


def _data(value: str) -> str | Path:
    """A path that exists is a file to upload; anything else is taken as a dataset id."""
    return Path(value) if Path(value).is_file() else value


def _load_inputs(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        fail(f"{path} is not a readable .npy/.npz file: {error}", ExitCode.USAGE)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if not loaded.files:
            fail(f"{path} holds no arrays", ExitCode.USAGE)
        return loaded["x" if "x" in loaded.files else loaded.files[0]]
