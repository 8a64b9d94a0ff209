"""The training loop's contract: determinism, progress, cancellation, divergence, bad labels."""

from __future__ import annotations

import copy

import pytest
import torch

from app.mas.methods import make_method
from app.mas.networks import network_state
from app.mas.training import NonFiniteLoss, TrainConfig, TrainingCancelled, train_task


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(50, 7, generator=g), torch.randint(0, 3, (50,), generator=g)


def test_same_seed_same_parameters_bit_for_bit(mlp, data) -> None:
    runs = []
    for _ in range(2):
        net = copy.deepcopy(mlp)
        train_task(net, "c", 3, *data, make_method("finetune"), TrainConfig(epochs=2, batch_size=16, seed=7))
        runs.append(network_state(net))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_progress_reports_every_step_of_the_total(mlp, data) -> None:
    seen: list[tuple[int, int, float]] = []
    result = train_task(mlp, "c", 3, *data, make_method("finetune"), TrainConfig(epochs=3, batch_size=16),
                        progress=lambda step, total, loss: seen.append((step, total, loss)))
    assert [s for s, _, _ in seen] == list(range(1, 13)) and {t for _, t, _ in seen} == {12}
    assert result.steps == 12 and result.loss == seen[-1][2]


def test_a_stop_check_cancels_between_steps(mlp, data) -> None:
    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        train_task(mlp, "c", 3, *data, make_method("finetune"), TrainConfig(epochs=5, batch_size=16),
                   should_stop=lambda: next(calls) >= 4)


def test_a_non_finite_loss_fails_with_a_clear_error(mlp, data) -> None:
    x, y = data
    x = x.clone()
    x[3, 2] = float("nan")
    with pytest.raises(NonFiniteLoss, match="loss became nan"):
        train_task(mlp, "c", 3, x, y, make_method("finetune"), TrainConfig(epochs=1, batch_size=64))


def test_labels_out_of_range_are_refused(mlp, data) -> None:
    with pytest.raises(ValueError, match="labels"):
        train_task(mlp, "c", 2, *data, make_method("finetune"), TrainConfig(epochs=1))
