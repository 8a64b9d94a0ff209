"""Batch-norm statistics per task (app/mas/task_statistics.py): a later task's training moves the running
statistics, and no earlier task's outputs, Ω or stored θ see it.

Each test learns task "a", then task "b" on inputs of another distribution at an lr so small that no
parameter moves (1e-30): whatever changes in "a" then comes from the statistics alone. Without per-task
copies "a"'s outputs change; the references are "a"'s own outputs and Ω measured before "b" existed.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from app.mas.importance import estimate_importance, estimate_importance_vmap
from app.mas.methods import make_method
from app.mas.networks import InputSpec, MultiHeadNet, load_state, network_state
from app.mas.training import TrainConfig, train_task

STILL = TrainConfig(epochs=2, batch_size=8, lr=1e-30, seed=0)


def _net() -> MultiHeadNet:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4), nn.BatchNorm1d(4))
    return MultiHeadNet(trunk, 4, InputSpec((5,)))


def _data(seed: int, scale: float, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 5, generator=g) * scale + shift, torch.randint(0, 2, (32,), generator=g)


def _outputs(net: MultiHeadNet, task: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x, task)


def test_a_later_task_moving_the_statistics_leaves_an_earlier_task_as_it_was() -> None:
    net, (xa, ya), (xb, yb) = _net(), _data(0, 1.0, 0.0), _data(1, 3.0, 2.0)
    train_task(net, "a", 2, xa, ya, make_method("finetune"), TrainConfig(epochs=2, batch_size=8, lr=0.1))
    before = _outputs(net, "a", xa)
    shared_before = net.trunk[1].running_mean.clone()
    train_task(net, "b", 2, xb, yb, make_method("finetune"), STILL)
    assert not torch.equal(net.trunk[1].running_mean, shared_before)  # "b" moved the shared statistics
    assert torch.equal(_outputs(net, "a", xa), before)
    copy_b = net.trunk[1].task_statistics["b"]  # "b" keeps what it ended with: the shared ones now
    assert torch.equal(copy_b.mean, net.trunk[1].running_mean) and torch.equal(copy_b.var, net.trunk[1].running_var)
    with torch.no_grad():  # and its outputs are those of the shared statistics (they are its own)
        shared = net.heads["b"](net.trunk(xb))
    torch.testing.assert_close(_outputs(net, "b", xb), shared, rtol=0, atol=0)


def test_an_earlier_tasks_importance_is_measured_with_its_own_statistics() -> None:
    """Ω of "a" after "b" equals Ω of "a" before "b", by the exact path and by vmap (each task's batch norm
    is an eval-mode call with that task's statistics, which the exact path has a rule for)."""
    net, (xa, ya), (xb, yb) = _net(), _data(0, 1.0, 0.0), _data(1, 3.0, 2.0)
    train_task(net, "a", 2, xa, ya, make_method("finetune"), TrainConfig(epochs=2, batch_size=8, lr=0.1))
    exact, slow = estimate_importance(net, "a", xa).sums, estimate_importance_vmap(net, "a", xa).sums
    train_task(net, "b", 2, xb, yb, make_method("finetune"), STILL)
    after = estimate_importance(net, "a", xa)
    for name, value in exact.items():
        torch.testing.assert_close(after.sums[name], value, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(estimate_importance_vmap(net, "a", xa).sums[name], slow[name], rtol=1e-6, atol=1e-9)


def test_an_earlier_task_keeps_the_statistics_it_relied_on_when_a_frozen_norm_starts_training() -> None:
    """"a" learned with the batch norms frozen (eval mode: no copy made); when "b" trains them, "a" first
    gets the statistics it was learned with."""
    net, (xa, ya), (xb, yb) = _net(), _data(0, 1.0, 0.0), _data(1, 3.0, 2.0)
    norms = {name for name, _ in net.named_parameters() if name.startswith(("trunk.1.", "trunk.4."))}
    net.freeze(norms)
    train_task(net, "a", 2, xa, ya, make_method("finetune"), TrainConfig(epochs=2, batch_size=8, lr=0.1))
    assert len(net.trunk[1].task_statistics) == 0 and net.trained_norms() == []
    before = _outputs(net, "a", xa)
    net.freeze(set())
    train_task(net, "b", 2, xb, yb, make_method("finetune"), STILL)
    assert set(net.trunk[1].task_statistics) == {"a", "b"}
    assert torch.equal(_outputs(net, "a", xa), before)


def test_the_copies_travel_with_theta() -> None:
    net, (xa, ya), (xb, yb) = _net(), _data(0, 1.0, 0.0), _data(1, 3.0, 2.0)
    train_task(net, "a", 2, xa, ya, make_method("finetune"), TrainConfig(epochs=2, batch_size=8, lr=0.1))
    train_task(net, "b", 2, xb, yb, make_method("finetune"), STILL)
    state = network_state(net)
    assert {"trunk.1.task_statistics.a.mean", "trunk.4.task_statistics.b.var"} <= state.keys()
    loaded = load_state(_net(), state)
    for task, x in (("a", xa), ("b", xb)):
        assert torch.equal(_outputs(loaded, task, x), _outputs(net, task, x))


def test_concurrent_passes_for_different_tasks_each_use_their_own() -> None:
    net, (xa, ya), (xb, yb) = _net(), _data(0, 1.0, 0.0), _data(1, 3.0, 2.0)
    train_task(net, "a", 2, xa, ya, make_method("finetune"), TrainConfig(epochs=2, batch_size=8, lr=0.1))
    train_task(net, "b", 2, xb, yb, make_method("finetune"), STILL)
    expected = {"a": _outputs(net, "a", xa), "b": _outputs(net, "b", xa)}
    with torch.no_grad():  # "a" with the shared statistics ("b"'s) differs: a mix-up would show
        assert not torch.allclose(net.heads["a"](net.trunk(xa)), expected["a"])
    wrong: list[str] = []

    def predict(task: str) -> None:
        for _ in range(200):
            if not torch.equal(_outputs(net, task, xa), expected[task]):
                wrong.append(task)

    threads = [threading.Thread(target=predict, args=(task,)) for task in ("a", "b", "a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_an_exported_task_graph_carries_that_tasks_statistics() -> None:
    from app.export.graphs import task_graph, trace

    net, (xa, ya), (xb, yb) = _net(), _data(0, 1.0, 0.0), _data(1, 3.0, 2.0)
    train_task(net, "a", 2, xa, ya, make_method("finetune"), TrainConfig(epochs=2, batch_size=8, lr=0.1))
    train_task(net, "b", 2, xb, yb, make_method("finetune"), STILL)
    traced = trace(task_graph(net, "a", "plugin"))
    with torch.no_grad():
        logits, _ = traced(xa)
    torch.testing.assert_close(logits, _outputs(net, "a", xa), rtol=1e-6, atol=1e-6)
