"""LazySamples: training, Ω and accuracy on samples loaded a batch at a time equal the same run on the
whole tensor, bit for bit, and only the asked rows are ever loaded."""

from __future__ import annotations

import pytest
import torch

from app.mas.evaluation import accuracy
from app.mas.importance import estimate_importance
from app.mas.methods import make_method
from app.mas.networks import build_network, network_state
from app.mas.passes import rows_per_pass
from app.mas.samples import LazySamples
from app.mas.training import TrainConfig, train_task


def _data(n: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 6, 6, generator=generator)
    return x, (x.mean(dim=(1, 2, 3)) > 0).long()


class Loader:
    """The tensor's rows, keeping how many were asked for in each call."""

    def __init__(self, x: torch.Tensor):
        self.x, self.sizes = x, []

    def __call__(self, rows: list[int]) -> torch.Tensor:
        self.sizes.append(len(rows))
        return self.x[rows].clone()


def _run(inputs, labels) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    net = build_network({"kind": "cnn", "input_shape": [1, 6, 6], "channels": [4], "hidden": [8]}, seed=0)
    method = make_method("mas", lam=1.0, theta_star=network_state(net), omega={})
    train_task(net, "t", 2, inputs, labels, method, TrainConfig(epochs=2, batch_size=16, lr=0.05))
    omega = estimate_importance(net, "t", inputs, chunk_size=32).sums
    return network_state(net), omega, accuracy(net, "t", inputs, labels)


def test_a_run_on_lazy_samples_equals_the_run_on_the_tensor_and_loads_a_batch_at_a_time() -> None:
    x, y = _data()
    loader = Loader(x)
    lazy = LazySamples(len(x), x.shape[1:], torch.float32, loader)
    theta, omega, score = _run(lazy, y)
    theta_ref, omega_ref, score_ref = _run(x, y)
    assert all(torch.equal(theta[k], theta_ref[k]) for k in theta_ref)
    assert all(torch.equal(omega[k], omega_ref[k]) for k in omega_ref)
    assert score == score_ref
    # Two epochs of 10 batches (16 rows, the last 6), then Ω: 2 rows to size its chunks by memory, and
    # chunks of 32; then the evaluation: 1 row to size its passes by memory, and one pass (here all 150 rows).
    assert rows_per_pass(build_network({"kind": "cnn", "input_shape": [1, 6, 6], "channels": [4], "hidden": [8]},
                                       seed=0), x) >= 150
    assert loader.sizes == ([16] * 9 + [6]) * 2 + [2] + [32] * 4 + [22] + [1, 150]


def test_slices_index_tensors_dtype_and_empty_rows() -> None:
    x, _ = _data(10)
    lazy = LazySamples(10, x.shape[1:], torch.float32, Loader(x))
    assert lazy.shape == x.shape and len(lazy) == 10
    assert torch.equal(lazy[2:5], x[2:5]) and torch.equal(lazy[torch.tensor([7, 1])], x[[7, 1]])
    assert lazy.to(torch.float64)[0:1].dtype == torch.float64
    assert lazy[20:30].shape == (0, 1, 6, 6)


def test_a_failing_load_is_raised_in_the_consumer_and_a_stopped_loop_ends_the_thread() -> None:
    def broken(rows: list[int]) -> torch.Tensor:
        raise ValueError("image 3: not a decodable image")

    lazy = LazySamples(8, (2,), torch.float32, broken)
    with pytest.raises(ValueError, match="decodable"):
        list(lazy.batches([torch.arange(4), torch.arange(4, 8)]))
    x = torch.arange(40.0).reshape(20, 2)
    batches = LazySamples(20, (2,), torch.float32, Loader(x)).batches([torch.tensor([i]) for i in range(20)])
    assert torch.equal(next(batches), x[:1])
    batches.close()  # a loop left early (cancellation): the producer thread is released
