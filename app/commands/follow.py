"""Following a job from the terminal: `tasks add`, `importance refresh` and `jobs watch` end here.

The job's row on the server is the truth, so everything shown is computed from it: the elapsed time
from its `started_at` (watching a job again does not restart its clock), the ETA from its rate so
far, the epoch from its steps where the number of epochs is known (`tasks add`). On a terminal that
is a live bar; off one (logs, CI) a line per state change and one every `LINE_EVERY_S` while it
runs. Ctrl-C stops only the following, never the job: it says so, with the commands to watch or
cancel it, and exits 130 as an interrupted command does. A train job that succeeded is followed by
the new version's accuracy on every task it knows.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Column

from app.client import DEFAULT_URL, Client, Job
from app.commands.common import ExitCode, print_json

LINE_EVERY_S = 10.0


def follow(client: Client, job: Job, *, as_json: bool, timeout: float | None, epochs: Epochs | None = None,
           show: Callable[[Job], None] | None = None) -> None:
    """Wait for the job with a live bar (on a terminal) or lines (off one), then report and exit; `show`
    prints what a job that succeeded found (a drift job's report), where there is more than its version."""
    try:
        if sys.stderr.isatty():
            with JobBar(epochs=epochs) as bar:
                job.wait(progress=bar, timeout=timeout)
        else:
            job.wait(progress=LineReporter(epochs=epochs), timeout=timeout)
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


# --- what the row says: epoch, elapsed, ETA ------------------------------------------------------


@dataclass(frozen=True)
class Epochs:
    """What `tasks add` knows of its job: the number of epochs, and the training rows and batch size,
    which bound the steps of one epoch (ceil(rows / batch_size); fewer when the server holds some rows
    back for validation)."""

    count: int
    rows: int
    batch_size: int

    def of(self, job: Job) -> int | None:
        """The epoch the job is in (1-based), from its steps: done // steps per epoch, where steps per
        epoch is total // count. None where that would mislead: a total that is not `count` runs over the
        training rows (a job that trains several times, e.g. once per λ tried)."""
        progress = job.progress or {}
        total = progress.get("total")
        if not total or progress.get("unit") != "steps" or total % self.count:
            return None
        steps_per_epoch = total // self.count
        if steps_per_epoch > math.ceil(self.rows / self.batch_size):
            return None
        return min(self.count, progress.get("done", 0) // steps_per_epoch + 1)


def elapsed_s(job: Job, now: datetime | None = None) -> float | None:
    """Seconds since the job started (to its end once finished); None while it has not started."""
    started = _timestamp(job.data.get("started_at"))
    if started is None:
        return None
    end = _timestamp(job.data.get("finished_at")) if job.finished else None
    return max(0.0, ((end or now or datetime.now(UTC)) - started).total_seconds())


def eta_s(job: Job, elapsed: float | None) -> float | None:
    """Seconds left at the rate so far; None until the job has done some of its work."""
    progress = job.progress or {}
    done, total = progress.get("done", 0), progress.get("total")
    if job.state != "running" or elapsed is None or not total or not 0 < done < total:
        return None
    return elapsed * (total - done) / done


def status_of(job: Job, *, epochs: Epochs | None = None, now: datetime | None = None) -> str:
    """`epoch 2/10, loss 0.1234, 0:00:12 elapsed, ETA 0:00:30`: the parts the row allows."""
    parts = []
    progress = job.progress or {}
    if (progress.get("trials") or 1) > 1:
        parts.append(f"λ trial {progress['trial']}/{progress['trials']}")
    if progress.get("epoch") is not None:  # the job says where it is: no estimate needed
        parts.append(f"epoch {progress['epoch']}/{progress['epochs']}")
    elif (epoch := epochs.of(job) if epochs is not None else None) is not None:
        parts.append(f"epoch {epoch}/{epochs.count}")
    loss = (job.progress or {}).get("loss")
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    elapsed = elapsed_s(job, now)
    if elapsed is not None:
        parts.append(f"{clock(elapsed)} elapsed")
    eta = eta_s(job, elapsed)
    if eta is not None:
        parts.append(f"ETA {clock(eta)}")
    return ", ".join(parts)


def clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the two ways of showing it -------------------------------------------------------------------


class JobBar:
    """A rich bar of one job on stderr: done of total, then `status_of`, which wraps to a second line on
    a narrow terminal rather than lose its ETA (the line above the bar says which job it is)."""

    def __init__(self, epochs: Epochs | None = None):
        self.epochs = epochs
        self._progress = RichProgress(
            BarColumn(bar_width=20), TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[status]}", table_column=Column(no_wrap=False, overflow="fold")),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("job", total=None, count="", status="")

    def __enter__(self) -> JobBar:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def __call__(self, job: Job) -> None:
        progress = job.progress or {}
        done, total = progress.get("done", 0), progress.get("total")
        count = f"{done}/{total} {progress.get('unit', '')}" if total else ""
        state = "" if job.state == "running" else job.state
        status = ", ".join(part for part in (state, status_of(job, epochs=self.epochs)) if part)
        self._progress.update(self._task, completed=done, total=total, count=count, status=status)


class LineReporter:
    """Off a terminal: a line on stderr when the state changes, and every LINE_EVERY_S while running."""

    def __init__(self, epochs: Epochs | None = None):
        self.epochs = epochs
        self.state: str | None = None
        self.last_line = float("-inf")

    def __call__(self, job: Job) -> None:
        now = time.monotonic()
        if job.state == self.state and (job.state != "running" or now - self.last_line < LINE_EVERY_S):
            return
        self.state, self.last_line = job.state, now
        progress = job.progress or {}
        done = f"{progress['done']}/{progress['total']} {progress['unit']}" if progress else ""
        detail = ", ".join(part for part in (done, status_of(job, epochs=self.epochs)) if part)
        typer.echo(f"job {job.id} {job.state}{f' {detail}' if detail else ''}", err=True)


# --- the end --------------------------------------------------------------------------------------


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
