"""A job as the client sees it: its row read from the server, and `wait()` polling that row until it ends.

The job's row is the truth about it (state, progress, result), so `Job` keeps nothing of its own:
`refresh` reads the row again. `ProgressBar` draws a job's progress on stderr, with rich where it is
installed (the `progress` extra) and as plain lines where it is not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lifelong_client.errors import WaitTimeout
from lifelong_client.schemas import DriftResult, Progress

if TYPE_CHECKING:
    from lifelong_client.client import Client

FINISHED = ("succeeded", "failed", "cancelled")


class Job:
    """A job as last read from the server; `refresh`, `wait` and `cancel` read it again."""

    def __init__(self, client: Client, data: Mapping[str, Any]):
        self._client = client
        self.data: dict[str, Any] = dict(data)

    id = property(lambda self: self.data["id"])
    kind = property(lambda self: self.data["kind"])
    model = property(lambda self: self.data["model"])
    state = property(lambda self: self.data["state"])
    progress = property(lambda self: self.data.get("progress"))
    error = property(lambda self: self.data.get("error"))

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @property
    def version(self) -> int | None:
        """The version the job created, once it succeeded."""
        return (self.data.get("result") or {}).get("version")

    @property
    def drift(self) -> DriftResult | None:
        """A drift job's report once it succeeded: per task its statistic, p-value and verdict."""
        return self.data.get("result") if self.kind == "drift" and self.succeeded else None

    @property
    def lambda_selection(self) -> dict[str, Any] | None:
        """How a train job's λ "auto" chose, once it succeeded: {"rule", "new_task_tolerance", "basis",
        "admissible", "lambda", "reason"}; None where nothing was searched."""
        return (self.data.get("result") or {}).get("lambda_selection")

    @property
    def promotion(self) -> dict[str, Any] | None:
        """What the model's promotion policy made of the version: {"promoted", "policy", "alias", "reason",
        "violations", "unchecked"}, once the job succeeded."""
        return (self.data.get("result") or {}).get("promotion")

    def refresh(self) -> Job:
        self.data = self._client._json("GET", f"/v1/jobs/{self.id}")
        return self

    def cancel(self) -> Job:
        self.data = self._client._json("POST", f"/v1/jobs/{self.id}/cancel")
        return self

    def wait(self, *, progress: Progress = False, timeout: float | None = None, poll_s: float = 0.25) -> Job:
        """Poll until the job ends (in any state: check `succeeded`); `progress=True` draws a bar on
        stderr, a callable is called with the job after every poll. Raises WaitTimeout past `timeout`."""
        if progress is True:
            with ProgressBar() as bar:
                return self.wait(progress=bar, timeout=timeout, poll_s=poll_s)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if callable(progress):
                progress(self)
            if self.finished:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {self.id} still {self.state} after {timeout} s")
            time.sleep(poll_s)
            self.refresh()

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, kind={self.kind!r}, model={self.model!r}, state={self.state!r})"


class ProgressBar:
    """One job's progress on stderr: steps (or samples) done of total, the epoch when the number of epochs
    is known, and the last loss. Use as `with ProgressBar() as bar: job.wait(progress=bar)`. A rich bar
    where rich is installed; otherwise a plain line each time what it says changes."""

    def __init__(self, epochs: int | None = None):
        self.epochs = epochs
        self._last = ""
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress
        except ImportError:  # the client alone: no rich (pip install 'lifelong-client[progress]')
            self._progress = None
            return
        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("job", total=None, unit="", status="")

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, job: Job) -> None:
        progress = job.progress or {}
        done, total = progress.get("done", 0), progress.get("total")
        status = job.state
        if self.epochs and total and progress.get("unit") == "steps":
            epoch = min(self.epochs, done * self.epochs // total + (done < total))
            status += f"  epoch {epoch}/{self.epochs}"
        if progress.get("loss") is not None:
            status += f"  loss {progress['loss']:.4f}"
        description = f"{job.kind} {job.data.get('task') or ''}".strip()
        unit = progress.get("unit", "")
        if self._progress is not None:
            self._progress.update(self._task, description=description, completed=done, total=total, unit=unit,
                                  status=status)
            return
        line = f"{description} {done}/{total if total is not None else '?'} {unit}  {status}"
        if line != self._last:
            print(line, file=sys.stderr, flush=True)
            self._last = line
