"""Concurrent predictions sharing a forward pass (app/predictions/batching.py).

The order of events is forced with gates, never with sleeps: a pass is held open until the test has
seen the other requests queue behind it, so the tests hold on a loaded machine.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from app.predictions.batching import Coalescer
from tests.conftest import wait_for


class GatedCompute:
    """A pass that records the rows it ran and, for its first pass, waits for `gate` to open."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.passes: list[list[float]] = []
        self.fail_on: float | None = None

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.passes:
            self.gate.wait(timeout=30)
        self.passes.append(x[:, 0].tolist())
        if self.fail_on is not None and self.fail_on in x[:, 0].tolist():
            raise ValueError("a row this pass cannot take")
        return x * 10, x.sum(1)  # each row's answer is its own


def rows(first: float, n: int = 1) -> Tensor:
    return torch.arange(first, first + n, dtype=torch.float64).reshape(n, 1).repeat(1, 2)


def start(coalescer: Coalescer, key: str, x: Tensor, compute: Callable, answers: dict, name: str) -> threading.Thread:
    def call() -> None:
        try:
            answers[name] = coalescer.run(key, x, compute)
        except Exception as error:  # noqa: BLE001 - the test reads what each caller got
            error.add_note("".join(traceback.format_exception(error)))  # where it came from, should a test fail
            answers[name] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def assert_no_caller_failed(answers: dict) -> None:
    """Fail with each failed caller's own traceback (noted by `start`), not at the first answer read."""
    failed = {name: answer for name, answer in answers.items() if isinstance(answer, Exception)}
    assert not failed, "".join(f"caller {name}: {error.__notes__[0]}" for name, error in failed.items())


def queued(coalescer: Coalescer, key: str) -> int:
    with coalescer._lock:
        state = coalescer._keys.get(key)
        return 0 if state is None else len(state.queue)


def test_a_lone_request_runs_at_once_alone() -> None:
    coalescer, compute = Coalescer(wait_s=5.0, max_rows=64), GatedCompute()
    compute.gate.set()
    out, total = coalescer.run("k", rows(3, 2), compute)
    assert compute.passes == [[3.0, 4.0]]
    torch.testing.assert_close(out, rows(3, 2) * 10)
    torch.testing.assert_close(total, rows(3, 2).sum(1))
    assert coalescer._keys == {}  # nothing is left behind for the key


def test_requests_that_arrive_during_a_pass_share_the_next_and_each_gets_its_own_rows() -> None:
    coalescer, compute, answers = Coalescer(wait_s=0.0, max_rows=64), GatedCompute(), {}
    threads = [start(coalescer, "k", rows(0), compute, answers, "first")]
    wait_for(lambda: compute.passes == [] and "k" in coalescer._keys, deadline_s=10, what="the first pass to start")
    for i in range(1, 6):
        threads.append(start(coalescer, "k", rows(10 * i, i), compute, answers, f"r{i}"))
    wait_for(lambda: queued(coalescer, "k") == 5, deadline_s=10, what="five requests to queue")
    compute.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(compute.passes) == 2  # the first alone, the five queued ones together
    assert sorted(compute.passes[1]) == sorted(v for i in range(1, 6) for v in rows(10 * i, i)[:, 0].tolist())
    for i in range(1, 6):
        out, total = answers[f"r{i}"]
        torch.testing.assert_close(out, rows(10 * i, i) * 10)
        torch.testing.assert_close(total, rows(10 * i, i).sum(1))
    torch.testing.assert_close(answers["first"][0], rows(0) * 10)


def test_a_pass_holds_at_most_max_rows_and_the_rest_run_after_it() -> None:
    coalescer, compute, answers = Coalescer(wait_s=0.0, max_rows=4), GatedCompute(), {}
    threads = [start(coalescer, "k", rows(0), compute, answers, "first")]
    wait_for(lambda: "k" in coalescer._keys, deadline_s=10, what="the first pass to start")
    for i in range(1, 5):  # 2 + 2 + 2 + 2 rows queued: two passes of 4
        threads.append(start(coalescer, "k", rows(10 * i, 2), compute, answers, f"r{i}"))
        wait_for(lambda i=i: queued(coalescer, "k") == i, deadline_s=10, what="requests to queue in order")
    compute.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert [len(p) for p in compute.passes] == [1, 4, 4]
    assert compute.passes[1] == [10.0, 11.0, 20.0, 21.0]  # oldest first
    for i in range(1, 5):
        torch.testing.assert_close(answers[f"r{i}"][0], rows(10 * i, 2) * 10)


def test_a_request_as_large_as_a_pass_runs_alone_even_while_others_run() -> None:
    coalescer, compute = Coalescer(wait_s=1.0, max_rows=4), GatedCompute()
    compute.gate.set()
    out, _ = coalescer.run("k", rows(0, 4), compute)
    torch.testing.assert_close(out, rows(0, 4) * 10)
    assert compute.passes == [[0.0, 1.0, 2.0, 3.0]] and coalescer._keys == {}


def test_a_failed_pass_fails_each_of_its_callers_and_the_queue_goes_on() -> None:
    coalescer, compute, answers = Coalescer(wait_s=0.0, max_rows=8), GatedCompute(), {}
    compute.fail_on = 20.0
    threads = [start(coalescer, "k", rows(0), compute, answers, "first")]
    wait_for(lambda: "k" in coalescer._keys, deadline_s=10, what="the first pass to start")
    threads += [start(coalescer, "k", rows(10), compute, answers, "a"),
                start(coalescer, "k", rows(20), compute, answers, "b")]
    wait_for(lambda: queued(coalescer, "k") == 2, deadline_s=10, what="two requests to queue")
    compute.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert isinstance(answers["a"], ValueError) and isinstance(answers["b"], ValueError)
    torch.testing.assert_close(answers["first"][0], rows(0) * 10)
    assert coalescer._keys == {}
    compute.fail_on = None
    torch.testing.assert_close(coalescer.run("k", rows(5), compute)[0], rows(5) * 10)  # the key still works


def test_different_keys_never_share_a_pass() -> None:
    coalescer, compute, answers = Coalescer(wait_s=0.0, max_rows=64), GatedCompute(), {}
    compute.gate.set()
    threads = [start(coalescer, key, rows(i), compute, answers, key) for i, key in enumerate(["a", "b", "c"])]
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(len(p) for p in compute.passes) == [1, 1, 1]


@pytest.mark.parametrize("wait_s", [0.0, 0.05])
def test_many_concurrent_callers_each_get_exactly_their_rows(wait_s: float) -> None:
    coalescer, answers = Coalescer(wait_s=wait_s, max_rows=16), {}

    def compute(x: Tensor) -> tuple[Tensor, Tensor]:
        return x * 10, x.sum(1)

    threads = [start(coalescer, "k", rows(100 * i, 1 + i % 3), compute, answers, str(i)) for i in range(40)]
    for thread in threads:
        thread.join(timeout=30)
    assert_no_caller_failed(answers)
    for i in range(40):
        torch.testing.assert_close(answers[str(i)][0], rows(100 * i, 1 + i % 3) * 10)
    assert coalescer._keys == {}


def test_a_lone_leader_that_finds_requests_queued_when_it_gathers_runs_alone_and_hands_on() -> None:
    """A request that finds its key idle leads; others may queue before it takes the lock again to gather.
    It must find itself absent from the queue by identity: comparing requests field by field compares
    their tensors, which raised in CI and left the key running, every later caller waiting for ever."""
    coalescer, answers = Coalescer(wait_s=0.0, max_rows=64), {}
    gate, gathering = threading.Event(), coalescer._gather

    def gather_after_the_gate(key: str, request: object) -> list:
        gate.wait(timeout=30)  # at once once the gate is open
        return gathering(key, request)

    coalescer._gather = gather_after_the_gate  # type: ignore[method-assign]

    def compute(x: Tensor) -> tuple[Tensor, Tensor]:
        return x * 10, x.sum(1)

    threads = [start(coalescer, "k", rows(0), compute, answers, "lone")]
    wait_for(lambda: "k" in coalescer._keys, deadline_s=10, what="the lone request to take the key")
    threads += [start(coalescer, "k", rows(10, 1), compute, answers, "same shape"),
                start(coalescer, "k", rows(20, 2), compute, answers, "other shape")]
    wait_for(lambda: queued(coalescer, "k") == 2, deadline_s=10, what="two requests to queue")
    gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert_no_caller_failed(answers)
    for name, first, n in [("lone", 0, 1), ("same shape", 10, 1), ("other shape", 20, 2)]:
        torch.testing.assert_close(answers[name][0], rows(first, n) * 10)
    assert coalescer.passes == 2 and coalescer._keys == {}  # alone, then the two queued ones together
