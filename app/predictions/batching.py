"""Concurrent predictions of one network and task gathered into one forward pass.

A forward pass of 32 rows costs far less than 32 passes of one row (a GPU is idle between small
launches; a CPU's matrix products run at a fraction of their speed on one row), so requests for the
same version and task that arrive while a pass is running wait for it and then go through together,
each caller answered with exactly its own rows. This is TorchServe's batch delay and Ray Serve's
`serve.batch`, in threads, since predictions run in the API's thread pool:

- A request that finds its key idle runs at once, alone: a lone request waits for nothing, so its
  latency is what it was.
- Requests that arrive while a pass for their key is running queue. When the pass ends, the oldest
  of them leads the next pass: it waits at most `wait_s` more for rows (requests are clearly arriving
  together), takes queued requests in order up to `max_rows` rows (at least one request), runs them as
  one pass and answers each. A request of `max_rows` rows or more always runs alone.

Any failure of a pass is raised in every caller of that pass; the key is handed on all the same, so
one bad pass never stalls the requests queued behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch
from torch import Tensor

Outputs = tuple[Tensor, ...]  # tensors whose first dimension is the rows of the inputs


@dataclass(eq=False)  # a request is itself: `in` and `remove` on the queue compare identity, never tensors
class _Request:
    x: Tensor
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # set instead of `outputs` when this request is to run the next pass
    outputs: Outputs | None = None
    error: BaseException | None = None


@dataclass
class _Key:
    running: bool = False
    queue: list[_Request] = field(default_factory=list)


class Coalescer:
    """Runs `compute` on the rows of concurrent requests under one key in shared passes (see module doc)."""

    def __init__(self, wait_s: float, max_rows: int):
        self.wait_s = wait_s
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._keys: dict[Hashable, _Key] = {}
        self.passes = 0  # passes run so far (for tests and metrics)

    def run(self, key: Hashable, x: Tensor, compute: Callable[[Tensor], Outputs]) -> Outputs:
        """`compute(x)`, possibly as part of one pass over several callers' rows."""
        if x.shape[0] >= self.max_rows or self.max_rows <= 1:
            self._count()
            return compute(x)
        request = _Request(x)
        with self._lock:
            state = self._keys.setdefault(key, _Key())
            if state.running:
                state.queue.append(request)
                self._arrived.notify_all()
            else:
                state.running, request.leads = True, True
        if not request.leads:
            request.ready.wait()
        if request.leads:
            self._lead(key, request, compute)
        if request.error is not None:
            raise request.error
        assert request.outputs is not None
        return request.outputs

    def _lead(self, key: Hashable, request: _Request, compute: Callable[[Tensor], Outputs]) -> None:
        """Run one pass for `request` and what joins it, answer them, and hand the key on."""
        members = [request]
        try:
            members = self._gather(key, request)
            outputs = compute(torch.cat([m.x for m in members]) if len(members) > 1 else request.x)
            self._count()
            start = 0
            for member in members:
                rows = member.x.shape[0]
                member.outputs = tuple(o[start : start + rows] for o in outputs)
                start += rows
        except BaseException as error:  # noqa: BLE001 - every caller of the pass hears of its failure
            for member in members:
                member.error = error
        finally:
            self._hand_on(key)
            for member in members:
                if member is not request:
                    member.ready.set()

    def _gather(self, key: Hashable, request: _Request) -> list[_Request]:
        """`request` and, when it took over from a finished pass, the queued requests that fit with it."""
        with self._lock:
            state = self._keys[key]
            if request in state.queue:  # handed on: others are arriving too, wait a little for more
                deadline = time.monotonic() + self.wait_s
                while self._rows(state.queue) < self.max_rows and (left := deadline - time.monotonic()) > 0:
                    self._arrived.wait(left)
                members, rows = [], 0
                for queued in list(state.queue):
                    if members and rows + queued.x.shape[0] > self.max_rows:
                        break
                    members.append(queued)
                    rows += queued.x.shape[0]
                    state.queue.remove(queued)
                if request not in members:  # it is the oldest, so it is always first
                    raise AssertionError("the leading request must be in its own pass")
                return members
            return [request]

    def _hand_on(self, key: Hashable) -> None:
        with self._lock:
            state = self._keys[key]
            if state.queue:
                state.queue[0].leads = True
                state.queue[0].ready.set()
            else:
                del self._keys[key]

    def _count(self) -> None:
        with self._lock:
            self.passes += 1

    @staticmethod
    def _rows(queue: list[_Request]) -> int:
        return sum(r.x.shape[0] for r in queue)
