"""A running job's progress as a person sees it: the one bar of the client and of the `lifelong` CLI.

It lives in the client (the lower layer: the CLI depends on the client, never the other way), so that
`job.wait(progress=True)` in a notebook and `lifelong tasks add` in a terminal draw the same thing from
the same job rows; the CLI adds only what is its own (the line naming the job above the bar, the
Ctrl-C message with its commands, the report once the job ends).

The job's row on the server is the truth, so everything shown is computed from it: the elapsed time
from its `started_at` (watching a job again does not restart its clock), the ETA from its rate so far,
the λ trial and epoch as the job reports them, or the epoch estimated from its steps where the caller
knows the number of epochs. On a terminal (or in Jupyter) with rich installed (the `progress` extra),
a live bar redrawn at each poll; otherwise (logs, CI, the client without rich) a line on stderr per
state change and one every `LINE_EVERY_S` while it runs, so a log gets neither a line per poll nor
silence during a long run.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifelong_client.jobs import Job

LINE_EVERY_S = 10.0


# --- what the row says: epoch, elapsed, ETA ------------------------------------------------------


@dataclass(frozen=True)
class Epochs:
    """What the caller knows of a train job that the row may not say: the number of epochs and, where
    known (`lifelong tasks add`), the training rows and batch size, which bound the steps of one epoch
    (ceil(rows / batch_size); fewer when the server holds some rows back for validation)."""

    count: int
    rows: int | None = None
    batch_size: int | None = None

    def of(self, job: Job) -> int | None:
        """The epoch the job is in (1-based), from its steps: done // steps per epoch, where steps per
        epoch is total // count. None where that would mislead: a total that is not `count` runs over the
        training rows (a job that trains several times, e.g. once per λ tried)."""
        progress = job.progress or {}
        total = progress.get("total")
        if not total or progress.get("unit") != "steps" or total % self.count:
            return None
        steps_per_epoch = total // self.count
        if self.rows is not None and self.batch_size and steps_per_epoch > math.ceil(self.rows / self.batch_size):
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
    """`λ trial 3/4, epoch 2/10, loss 0.1234, 0:00:12 elapsed, ETA 0:00:30`: the parts the row allows."""
    parts = []
    progress = job.progress or {}
    if (progress.get("trials") or 1) > 1:
        parts.append(f"λ trial {progress['trial']}/{progress['trials']}")
    if progress.get("epoch") is not None:  # the job says where it is: no estimate needed
        parts.append(f"epoch {progress['epoch']}/{progress['epochs']}")
    elif (epoch := epochs.of(job) if epochs is not None else None) is not None:
        parts.append(f"epoch {epoch}/{epochs.count}")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    elapsed = elapsed_s(job, now)
    if elapsed is not None:
        parts.append(f"{clock(elapsed)} elapsed")
    eta = eta_s(job, elapsed)
    if eta is not None:
        parts.append(f"ETA {clock(eta)}")
    return ", ".join(parts)


def count_of(job: Job) -> str:
    """`25/40 steps` (or samples); empty before the job has planned its work."""
    progress = job.progress or {}
    total = progress.get("total")
    return f"{progress.get('done', 0)}/{total} {progress.get('unit', '')}".rstrip() if total else ""


def clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the bar ----------------------------------------------------------------------------------------


class ProgressBar:
    """One job's progress on stderr, called with the job after every poll:
    `with ProgressBar() as bar: job.wait(progress=bar)` (what `job.wait(progress=True)` does).

    On a terminal or in Jupyter, with rich installed: a live bar of done of total, then the state where
    it is not "running" and `status_of`, which wraps to a second line on a narrow terminal rather than
    lose its ETA. Otherwise a line per state change and every `LINE_EVERY_S` while running, as
    `job ID STATE 25/40 steps, epoch 3/4, loss 0.5000, 0:00:30 elapsed, ETA 0:00:18`.

    `epochs`: the number of epochs (or an `Epochs`, which can also rule out a wrong estimate), for an
    epoch where the job does not report its own. `label`: whether the bar names the job (its kind and
    task); the CLI says which job on a line of its own above the bar, so it passes False.
    """

    def __init__(self, epochs: Epochs | int | None = None, *, label: bool = True):
        self.epochs = Epochs(epochs) if isinstance(epochs, int) else epochs
        self.label = label
        self._state: str | None = None
        self._last_line = float("-inf")
        self._task: Any = None  # the bar's one rich task, where there is a live bar
        self._progress: Any = self._live_bar()

    def _live_bar(self) -> Any:
        """A rich Progress where a live bar can be drawn, else None (lines). It is redrawn at each poll
        only (no refresh thread): what it shows changes only when the row does, and the same polls then
        draw the same output."""
        try:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress
            from rich.table import Column
        except ImportError:  # the client alone: no rich (pip install 'lifelong-client[progress]')
            return None
        console = Console(stderr=True)
        if not (sys.stderr.isatty() or console.is_jupyter):  # a log or a pipe: lines read better there
            return None
        columns = [TextColumn("[bold]{task.description}")] if self.label else []
        progress = RichProgress(
            *columns, BarColumn(bar_width=20), TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[status]}", table_column=Column(no_wrap=False, overflow="fold")),
            console=console, auto_refresh=False,
        )
        self._task = progress.add_task("job", total=None, count="", status="")
        return progress

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, job: Job) -> None:
        if self._progress is not None:
            self._draw(job)
        else:
            self._line(job)

    def _name(self, job: Job) -> str:
        return " ".join(part for part in (job.kind, job.data.get("task")) if part)

    def _draw(self, job: Job) -> None:
        progress = job.progress or {}
        state = "" if job.state == "running" else job.state
        status = ", ".join(part for part in (state, status_of(job, epochs=self.epochs)) if part)
        self._progress.update(self._task, description=self._name(job), completed=progress.get("done", 0),
                              total=progress.get("total"), count=count_of(job), status=status, refresh=True)

    def _line(self, job: Job) -> None:
        now = time.monotonic()
        if job.state == self._state and (job.state != "running" or now - self._last_line < LINE_EVERY_S):
            return
        self._state, self._last_line = job.state, now
        detail = ", ".join(part for part in (count_of(job), status_of(job, epochs=self.epochs)) if part)
        name = f" ({self._name(job)})" if self.label else ""
        print(f"job {job.id}{name} {job.state}{f' {detail}' if detail else ''}", file=sys.stderr, flush=True)
