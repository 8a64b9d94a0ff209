"""A job as the client sees it: its row read from the server, and `wait()` polling that row until it ends.

The job's row is the truth about it (state, progress, result), so `Job` keeps nothing of its own:
`refresh` reads the row again. `wait(progress=True)` draws it with `ProgressBar` (progress.py), the bar the
`lifelong` CLI draws too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lifelong_client.errors import WaitTimeout
from lifelong_client.progress import ProgressBar
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
