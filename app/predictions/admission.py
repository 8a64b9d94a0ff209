"""Bounded work per prediction: a deadline, a stop when the client goes, and load shed past a queue.

A prediction that leaves the event loop (anything but the quick path of a few rows) runs in a thread
of its own pool (`workers` threads, not the pool every other sync route shares, so /readyz and the
rest never queue behind predictions). At most `queue` more wait for a thread; a request beyond that
is refused at once with 503 and Retry-After rather than queued without bound, so a client learns to
back off while the latency of what was admitted stays bounded.

While the work runs, the route watches the connection: when the client disconnects, or the deadline
(LIFELONG_PREDICT_TIMEOUT_S) passes, the work is told through `Deadline`, and it stops at its next
check (app/predictions/service.py checks between slices of rows): a 100,000-text request whose
client gave up stops within one slice, instead of running for an hour.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
from starlette.requests import Request

from app.errors import ServiceError, Unavailable
from app.metrics import set_predictions_admitted

T = TypeVar("T")
WATCH_EVERY_S = 0.05  # how often a running prediction's connection is looked at
RETRY_AFTER_S = 1


class DeadlinePassed(ServiceError):
    status_code = 504


class Overloaded(Unavailable):
    """More predictions than the API takes at once: try again shortly (the Retry-After header says when)."""

    def __init__(self, detail: str, retry_after_s: int):
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after_s)}


class ClientGone(ServiceError):
    """The client closed the connection: nobody will read the answer, so the work stops (499, as nginx logs it)."""

    status_code = 499


class Deadline:
    """When a prediction must be done by, and whether its client has gone."""

    def __init__(self, seconds: float, pause_s: float = 0.0):
        self.seconds, self.pause_s = seconds, pause_s
        self.end = time.monotonic() + seconds
        self.gone = threading.Event()

    def check(self) -> None:
        if self.pause_s:  # the fault tests' slow predictions (LIFELONG_INJECT_FAULTS=slow_predictions)
            time.sleep(self.pause_s)
        if self.gone.is_set():
            raise ClientGone("the client disconnected")
        if time.monotonic() > self.end:
            raise DeadlinePassed(f"the prediction took longer than LIFELONG_PREDICT_TIMEOUT_S = {self.seconds:g} s: "
                                 "send fewer rows per request, or upload the rows as a dataset and score it with "
                                 "evaluate")


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("prediction_deadline", default=None)


def check_deadline() -> None:
    """Raise if the running prediction's client has gone or its deadline passed (no-op outside one)."""
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.check()


class PredictionGate:
    """Admits predictions to their thread pool, sheds the excess, and enforces each one's deadline."""

    def __init__(self, workers: int, queue: int, timeout_s: float, slice_pause_s: float = 0.0):
        self.workers, self.queue, self.timeout_s = workers, queue, timeout_s
        self.slice_pause_s = slice_pause_s  # only for the fault tests: each check of a deadline waits this long
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop, at first use
        self.admitted = 0  # running or waiting for a thread
        self.shed = 0

    def full(self) -> bool:
        return self.admitted >= self.workers + self.queue

    def refusal(self) -> Overloaded:
        """The 503 for a prediction that arrives while the gate is full (counted as shed)."""
        self.shed += 1
        return Overloaded(f"the API is running {self.admitted} predictions, its most (LIFELONG_PREDICT_WORKERS "
                          f"+ LIFELONG_PREDICT_QUEUE): try again shortly", retry_after_s=RETRY_AFTER_S)

    async def run(self, request: Request, work: Callable[[], T]) -> T:
        """`work()` in the pool under a deadline; 503 when full, 504 past the deadline."""
        if self.full():
            raise self.refusal()
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        deadline = Deadline(self.timeout_s, self.slice_pause_s)
        self.admitted += 1
        set_predictions_admitted(self.admitted)
        try:
            return await self._watched(request, deadline, work)
        finally:
            self.admitted -= 1
            set_predictions_admitted(self.admitted)

    async def _watched(self, request: Request, deadline: Deadline, work: Callable[[], T]) -> T:
        def under_deadline() -> T:
            deadline.check()  # it may have waited for a thread past its deadline, or its client gone meanwhile
            _CURRENT.set(deadline)  # this thread's own context (anyio runs each call in a copy)
            return work()

        async def watch() -> None:
            while True:
                await anyio.sleep(min(WATCH_EVERY_S, max(0.0, deadline.end - time.monotonic()) + 1e-3))
                if await request.is_disconnected():
                    deadline.gone.set()
                    return

        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                result = await anyio.to_thread.run_sync(under_deadline, limiter=self._limiter)
            except Exception as error:  # noqa: BLE001 - raised below, outside the group (which would wrap it in a group)
                failure = error
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result
