"""Following a job from the terminal: `tasks add`, `importance refresh` and `jobs watch` end here.

The bar is the client's `ProgressBar` (lifelong_client/progress.py), so a job looks the same from the
CLI as from `job.wait(progress=True)`: on a terminal a live bar with the epoch (estimated from its steps
where `tasks add` knows the number of epochs), the time since the job started and an ETA; off one
(logs, CI) a line per state change and one every 10 s while it runs. What is the CLI's own is
here: Ctrl-C stops only the following, never the job: it says so, with the commands to watch or cancel
it, and exits 130 as an interrupted command does. A train job that succeeded is followed by the new
version's accuracy on every task it knows.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Any

import typer

from app.client import DEFAULT_URL, Client, Epochs, Job, ProgressBar
from app.commands.common import ExitCode, print_json


def follow(client: Client, job: Job, *, as_json: bool, timeout: float | None, epochs: Epochs | None = None,
           show: Callable[[Job], None] | None = None) -> None:
    """Wait for the job with the client's bar (live on a terminal, lines off one), then report and exit;
    `show` prints what a job that succeeded found (a drift job's report), where there is more than its
    version. The bar names no job: the command has said which on the line above."""
    try:
        with ProgressBar(epochs=epochs, label=False) as bar:
            job.wait(progress=bar, timeout=timeout)
    except KeyboardInterrupt:
        say_still_running(client, job)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    report_finished(client, job, as_json=as_json, show=show)


def say_still_running(client: Client, job: Job) -> None:
    command = "lifelong"
    if client.base_url not in (DEFAULT_URL, os.environ.get("LIFELONG_URL", DEFAULT_URL).rstrip("/")):
        command += f" --url {shlex.quote(client.base_url)}"  # given with --url: the commands must name it too
    where = "keeps its place in the queue" if job.state == "queued" else "keeps running on the server"
    typer.echo(f"\nstopped following job {job.id}; the job {where}.\n"
               f"  watch it:  {command} jobs watch {job.id}\n"
               f"  cancel it: {command} jobs cancel {job.id}", err=True)


def report_finished(client: Client, job: Job, *, as_json: bool, show: Callable[[Job], None] | None = None) -> None:
    if as_json:
        print_json(job.data)
    elif job.succeeded:
        tested = " (the version tested)" if job.kind == "drift" else ""
        typer.echo(f"job {job.id} succeeded: {job.model} version {job.version}{tested}")
        if job.kind == "train" and job.version is not None:
            print_lambda_choice((job.data.get("result") or {}).get("lambda_selection"))
            print_accuracy(client.get_version(job.model, job.version))
        if show is not None:
            show(job)
    if not job.succeeded:
        error = job.error or {}
        reason = f" ({error.get('type')}: {error.get('message')})" if error else ""
        typer.echo(f"error: job {job.id} {job.state}{reason}", err=True)
        raise typer.Exit(int(ExitCode.JOB_FAILED))


def print_lambda_choice(choice: dict[str, Any] | None) -> None:
    """How λ "auto" chose, where it searched: the λ, the rule, the basis it compared and why."""
    if not choice:
        return
    admissible = ", ".join(f"{lam:g}" for lam in choice.get("admissible", []))
    tolerance = f" within {choice['new_task_tolerance']:g} of the best new-task" if choice["rule"] == "constrained" \
        else ""
    typer.echo(f"λ {choice['lambda']:g} chosen by the {choice['rule']} rule on validation {choice['basis']} "
               f"(λ{tolerance}: {admissible}; {choice.get('reason', '')})")


def print_accuracy(version: dict[str, Any]) -> None:
    """The version's accuracy on each task it knows, in the order they were learned."""
    accuracy = version.get("accuracy") or {}
    tasks = version.get("tasks") or list(accuracy)
    if not tasks:
        return
    width = max(len(task) for task in tasks)
    typer.echo(f"accuracy of version {version['version']} on each task (its eval set):")
    for task in tasks:
        value = accuracy.get(task)
        learned = "  (learned now)" if task == version.get("task") else ""
        typer.echo(f"  {task.ljust(width)}  {'-  (no eval set)' if value is None else f'{value:.4f}'}{learned}")
