"""`lifelong tasks add`, `lifelong importance refresh`, `lifelong predict`: the commands that use a model.

`tasks add` and `importance refresh` upload their files, start the job and follow it to its end
(a live bar on a terminal), so one command trains a task; `--detach` returns at once instead.
`predict` without `--task` asks for the task-free answer (every class learned, each row's task,
confidence and whether it is unknown) and prints it as a table.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer

from app.client import Prediction, QueueName
from app.commands.common import (
    DetachOption,
    ExitCode,
    JsonOption,
    TimeoutOption,
    client_of,
    data_source,
    fail,
    handles_errors,
    print_json,
    print_table,
)
from app.commands.follow import Epochs, follow
from app.commands.inputs import FORMATS, read_inputs
from app.commands.models import parse_trainable

tasks = typer.Typer(no_args_is_help=True, help="Teach a model new tasks.")
importance = typer.Typer(no_args_is_help=True, help="Re-measure a model's importance (Ω).")

# The server's defaults (app/learning/schemas.py), known here to show them in --help and the epoch in
# the bar; the CLI sends an option only when it is given, so the server's own default applies.
DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_LR = 20, 64, 0.05
DEFAULT_METHOD, DEFAULT_OPTIMIZER = "mas", "sgd"


def server_lambda_grid() -> str:
    """The λ that "auto" tries, `0.001,0.01,…`, read from where the server defines them (DEFAULT_GRID in
    app/mas/validation.py) so that --help cannot drift from them (it once said 0.1,1,10,100). The module's
    source is parsed, not imported: importing it imports torch, 1.4 s added to every command."""
    spec = importlib.util.find_spec("app.mas.validation")
    if spec is not None and spec.origin is not None:
        for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (
                node.targets[0] if isinstance(node, ast.Assign) else None)
            if isinstance(target, ast.Name) and target.id == "DEFAULT_GRID" and node.value is not None:
                return ",".join(f"{value:g}" for value in ast.literal_eval(node.value))
    return "the server's"


def _auto_or(value: str | None, convert: Callable[[str], float | int], option: str,
             kind: str) -> float | int | str | None:
    """`auto` or what `convert` makes of the value (checked here, so a typo is a usage error, not a server's 422)."""
    if value is None or value == "auto":
        return value
    try:
        return convert(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither 'auto' nor {kind}", param_hint=option) from None


def parse_lambda(value: str | None) -> float | str | None:
    """--lambda: `auto` or a number."""
    return _auto_or(value, float, "--lambda", "a number")


def parse_warmup(value: str | None) -> int | str | None:
    """--head-warmup: `auto` or a whole number of passes."""
    return _auto_or(value, int, "--head-warmup", "a whole number")


def parse_floats(value: str | None, option: str) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of numbers", param_hint=option) from None


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
    lambda_: Annotated[str | None, typer.Option(
        "--lambda", help="strength of the penalty, or auto: the best of --lambda-grid on validation rows",
        show_default="auto")] = None,
    lambda_grid: Annotated[str | None, typer.Option(
        help="the λ values auto tries, comma-separated", show_default=server_lambda_grid())] = None,
    lambda_selection: Annotated[Literal["constrained", "mean"] | None, typer.Option(
        help="how auto chooses: constrained (least forgetting among the λ within --new-task-tolerance of the best "
             "new-task validation accuracy) or mean (best mean validation accuracy over every task)",
        show_default="the model's, else constrained")] = None,
    new_task_tolerance: Annotated[float | None, typer.Option(
        callback=lambda value: _fraction(value, "--new-task-tolerance"),
        help="constrained: how far below the best new-task validation accuracy a λ may fall (0 to 1)",
        show_default="the model's, else 0.02")] = None,
    validation_fraction: Annotated[float | None, typer.Option(
        help="share of the training rows held back for validation (0: none; then --lambda must be a number)",
        show_default="0.1")] = None,
    checkpoint_interval: Annotated[float | None, typer.Option(
        help="seconds between the job's checkpoints (a stopped job resumes from its last)", show_default="60")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="passes over the training data", show_default=str(DEFAULT_EPOCHS))] = None,
    method: Annotated[str | None, typer.Option(
        help="mas, finetune, or a baseline: l2, ewc, si, lwf", show_default=DEFAULT_METHOD)] = None,
    num_classes: Annotated[int | None, typer.Option(
        help="classes of the task's head", show_default="from the labels")] = None,
    batch_size: Annotated[int | None, typer.Option(help="rows per step", show_default=str(DEFAULT_BATCH_SIZE))] = None,
    lr: Annotated[float | None, typer.Option(help="learning rate", show_default=str(DEFAULT_LR))] = None,
    optimizer: Annotated[Literal["sgd", "adam"] | None, typer.Option(show_default=DEFAULT_OPTIMIZER)] = None,
    head_warmup: Annotated[str | None, typer.Option(
        help="passes the new head trains alone on the trunk's features before the task trains, or auto "
             "(200 on a pretrained trunk, 0 otherwise)", show_default="auto")] = None,
    base_version: Annotated[int | None, typer.Option(help="the version to start from",
                                                     show_default="production")] = None,
    base_alias: Annotated[str | None, typer.Option(help="start from the version this alias names instead",
                                                   show_default="production")] = None,
    seed: Annotated[int | None, typer.Option(help="seeds the head and shuffling", show_default="the model's")] = None,
    queue: Annotated[QueueName | None, typer.Option(help="cpu or gpu workers", show_default="the model's")] = None,
    trainable: Annotated[str | None, typer.Option(
        help="all, none (heads only) or last:N blocks", show_default="the model's")] = None,
    detach: DetachOption = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Learn TASK on MODEL from --train (and --eval), following the job until it ends."""
    client = client_of(ctx)
    train_data, eval_data = data_source(train, "--train"), None if eval_ is None else data_source(eval_, "--eval")
    train_set = client.get_dataset(client.data_ref(train_data)["dataset"])  # uploads a file; its rows, for the bar
    job = client.add_task(model, task, train_set, eval_data,
                          lambda_=parse_lambda(lambda_), lambda_grid=parse_floats(lambda_grid, "--lambda-grid"),
                          validation_fraction=validation_fraction, checkpoint_interval_s=checkpoint_interval,
                          lambda_selection=lambda_selection, new_task_tolerance=new_task_tolerance,
                          epochs=epochs, method=method, num_classes=num_classes, batch_size=batch_size, lr=lr,
                          optimizer=optimizer, base_version=base_version, base_alias=base_alias, seed=seed,
                          head_warmup=parse_warmup(head_warmup),
                          queue=queue,
                          trainable=None if trainable is None else parse_trainable(trainable))
    if detach:
        return print_json(job.data) if as_json else typer.echo(job.id)
    typer.echo(f"job {job.id}: learning {task} on {model}", err=True)
    follow(client, job, as_json=as_json, timeout=timeout,
           epochs=Epochs(epochs or DEFAULT_EPOCHS, train_set["n"], batch_size or DEFAULT_BATCH_SIZE))


@importance.command("refresh")
@handles_errors
def refresh(
    ctx: typer.Context,
    model: str,
    data: Annotated[str, typer.Option(
        "--data", help="inputs (labels ignored): a file (arrays, texts or images, as for tasks add) or dataset id")],
    mode: Annotated[Literal["accumulate", "replace"], typer.Option()] = "accumulate",
    task: Annotated[str | None, typer.Option(help="whose head F(x) is", show_default="the last learned")] = None,
    base_version: Annotated[int | None, typer.Option(help="the version to start from",
                                                     show_default="production")] = None,
    base_alias: Annotated[str | None, typer.Option(help="start from the version this alias names instead",
                                                   show_default="production")] = None,
    queue: Annotated[QueueName | None, typer.Option(help="cpu or gpu workers", show_default="the model's")] = None,
    detach: DetachOption = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Measure Ω again on --data; the result is a new version sharing θ with its parent."""
    client = client_of(ctx)
    job = client.refresh_importance(model, data_source(data, "--data"), mode=mode, task=task, base_version=base_version,
                                    base_alias=base_alias, queue=queue)
    if detach:
        return print_json(job.data) if as_json else typer.echo(job.id)
    typer.echo(f"job {job.id}: measuring Ω of {model}", err=True)
    follow(client, job, as_json=as_json, timeout=timeout)


def predict(
    ctx: typer.Context,
    model: str,
    task: Annotated[str | None, typer.Option(
        help="which task's head answers; without it every class learned answers (task-free: each row's task, "
             "confidence and whether it is unknown, with the model's predictor)", show_default="task-free")] = None,
    inputs: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=FORMATS)] = None,
    text: Annotated[list[str] | None, typer.Option(help="a text to classify (text models); repeat for more")] = None,
    image: Annotated[list[Path] | None, typer.Option(exists=True, dir_okay=False,
                                                     help="a PNG/JPEG file (image models); repeat for more")] = None,
    version: Annotated[int | None, typer.Option(help="the version that answers", show_default="production")] = None,
    alias: Annotated[str | None, typer.Option(help="the alias whose version answers (e.g. candidate)",
                                              show_default="production")] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="also the class probabilities")] = False,
    output: Annotated[Path | None, typer.Option(
        dir_okay=False, help="write the result to this file instead of stdout: .npy (the classes) or .npz"
                             " (predictions, and probabilities and labels when there are; task-free also tasks,"
                             " confidence, unknown and score)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Predict classes for the rows of --inputs (arrays sent as a raw .npy body, texts from a .txt, .jsonl or .csv
    file as --text sends them), for --text strings or --image files.
    With --task the classes go to stdout (one per line); without it, a table of each row's class, task,
    confidence and unknown (task-free). With --output the result goes to a file."""
    given = [option for option in (inputs, text, image) if option]
    if len(given) != 1:
        fail("give exactly one of --inputs FILE, --text TEXT (repeatable) or --image FILE (repeatable)", ExitCode.USAGE)
    raw = read_inputs(inputs) if inputs is not None else list(text) if text else [str(p) for p in image or []]
    answer = client_of(ctx).predict(model, raw, task=task, version=version, alias=alias, probabilities=probabilities)
    if output is not None:
        return _write_prediction(answer, output, as_json=as_json)
    if as_json:
        return print_json(answer.as_json())
    if answer.task_free:
        return _print_task_free(answer)
    typer.echo(f"# {answer.model} version {answer.version}, task {answer.task}: {len(answer.predictions)} rows",
               err=True)
    named = answer.predictions.tolist() if answer.labels is None else [
        f"{c}\t{label}" for c, label in zip(answer.predictions.tolist(), answer.labels, strict=True)]
    rows = named if answer.probabilities is None else [
        f"{c}\t{' '.join(f'{p:.4f}' for p in probs)}" for c, probs in zip(named, answer.probabilities, strict=True)]
    typer.echo("\n".join(str(row) for row in rows))


def _print_task_free(answer: Prediction) -> None:
    """One row per input: the class over every class learned, its task, the confidence and whether the
    row is unknown (unlike every class learned); with --probabilities, every class's probability."""
    typer.echo(f"# {answer.model} version {answer.version}, task-free ({answer.predictor}, unknown below score "
               f"{_number(answer.threshold)}): {len(answer.predictions)} rows", err=True)
    columns = ["row", "class", "label", "task", "confidence", "unknown", "score"]
    rows = [[i, c, label, task, f"{confidence:.4f}", "yes" if unknown else "no", f"{score:.4g}"]
            for i, (c, label, task, confidence, unknown, score) in enumerate(zip(
                answer.predictions.tolist(), answer.labels or [""] * len(answer.predictions), answer.tasks or [],
                answer.confidence.tolist(), answer.unknown.tolist(), answer.score.tolist(), strict=True))]
    if answer.probabilities is not None:
        columns += [c["label"] for c in answer.classes or []] or [str(i) for i in range(answer.probabilities.shape[1])]
        rows = [[*row, *(f"{p:.4f}" for p in probs)] for row, probs in zip(rows, answer.probabilities, strict=True)]
    print_table(None, columns, rows)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _describe_answer(answer: Prediction) -> str:
    return f"task-free ({answer.predictor})" if answer.task_free else f"task {answer.task}"


def _write_prediction(answer: Prediction, output: Path, *, as_json: bool) -> None:
    """The result into `output` (exactly that path: np.save would add .npy to any other name), and a
    summary: one line on stderr, or with --json the answer without its arrays on stdout."""
    arrays = {"predictions": answer.predictions}
    if output.suffix.lower() == ".npz":
        if answer.probabilities is not None:
            arrays["probabilities"] = answer.probabilities
        if answer.labels is not None:
            arrays["labels"] = np.asarray(answer.labels)
        if answer.task_free:
            arrays |= {"tasks": np.asarray(answer.tasks), "confidence": answer.confidence,
                       "unknown": answer.unknown, "score": answer.score}
    with output.open("wb") as handle:
        if output.suffix.lower() == ".npz":
            np.savez(handle, **arrays)
        else:
            np.save(handle, answer.predictions, allow_pickle=False)
    if as_json:
        summary = {"model": answer.model, "version": answer.version, "task": answer.task,
                   "rows": len(answer.predictions), "output": str(output), "arrays": list(arrays)}
        return print_json(summary | ({"predictor": answer.predictor} if answer.task_free else {}))
    typer.echo(f"# {answer.model} version {answer.version}, {_describe_answer(answer)}: {len(answer.predictions)} rows;"
               f" {', '.join(arrays)} written to {output}", err=True)


def _fraction(value: float | None, option: str) -> float | None:
    """A share between 0 and 1, checked here (exit 2) without typer's range text in the help."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise typer.BadParameter(f"{value} is not between 0 and 1", param_hint=option)
    return value
