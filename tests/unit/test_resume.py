"""A run stopped after a checkpoint and resumed from it ends bit for bit where the uninterrupted run ends.

The snapshot goes through torch.save / torch.load(weights_only=True), as a job's checkpoint blob does;
the resumed run starts from a network as the run began (what a job loads again from its base
version). Kinds of state covered: SGD momentum and Adam moments, SI's path integral, LwF's targets,
dropout's RNG, per-task batch-norm statistics, the epoch's shuffle mid-epoch, a λ search stopped in
its first or a later trial, and one whose new head was warmed up first.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from app.mas.data import split_digits
from app.mas.learn import LearnedTask, MethodChoice, SearchSnapshot, learn_task
from app.mas.networks import InputSpec, MultiHeadNet, build_network, network_state
from app.mas.training import TrainConfig
from app.mas.validation import ValidationSet

FIRST, SECOND = split_digits(5, seed=0)[2], split_digits(5, seed=0)[4]


class Killed(Exception):
    """Stands for a SIGKILL: the run ends here, and only what was checkpointed survives."""


def _network(kind: str) -> MultiHeadNet:
    """"mlp", "dropout" (an RNG in the forward pass) or "batchnorm" (statistics that training moves and
    each task keeps a copy of)."""
    if kind == "mlp":
        return build_network({"kind": "mlp", "input_shape": [64], "hidden": [32]}, 0)
    torch.manual_seed(0)
    middle = nn.Dropout(0.3) if kind == "dropout" else nn.BatchNorm1d(32)
    trunk = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), middle, nn.Linear(32, 16), nn.ReLU())
    return MultiHeadNet(trunk, 16, InputSpec((64,)))


def _after_first_task(kind: str) -> tuple[MultiHeadNet, dict[str, torch.Tensor]]:
    net = _network(kind)
    learned = learn_task(net, FIRST.name, 2, FIRST.x_train, FIRST.y_train, method=MethodChoice(), theta_star={},
                         omega={}, config=TrainConfig(epochs=2, batch_size=32, seed=0))
    return learned.net, learned.estimate.mean()


def _second(net: MultiHeadNet, omega: dict, method: str, optimizer: str, grid: list[float] | None,
            head_warmup: int = 0, **kwargs) -> LearnedTask:
    config = TrainConfig(epochs=3, batch_size=32, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.005,
                         seed=1, head_warmup=head_warmup)
    validation = [ValidationSet(FIRST.name, FIRST.x_test[:60], FIRST.y_test[:60]),
                  ValidationSet(SECOND.name, SECOND.x_test[:60], SECOND.y_test[:60])]
    return learn_task(net, SECOND.name, 2, SECOND.x_train, SECOND.y_train, method=MethodChoice(method, 1.0),
                      theta_star=network_state(net), omega=omega, config=config, lambda_grid=grid,
                      validation=validation, **kwargs)


def _interrupted(start: MultiHeadNet, omega: dict, method: str, optimizer: str, grid: list[float] | None,
                 save_at: int, kill_at: int, head_warmup: int = 0) -> SearchSnapshot:
    """Runs until call `kill_at` of the checkpoint hook, keeping (serialised) the snapshot of call `save_at`."""
    calls, saved = 0, {}

    def checkpoint(make: object) -> None:
        nonlocal calls
        calls += 1
        if calls == save_at:
            buffer = io.BytesIO()
            torch.save(make(), buffer)
            saved["bytes"] = buffer.getvalue()
        if calls == kill_at:
            raise Killed

    with pytest.raises(Killed):
        _second(copy.deepcopy(start), omega, method, optimizer, grid, head_warmup, checkpoint=checkpoint)
    return torch.load(io.BytesIO(saved["bytes"]), weights_only=True)


CASES = {
    "mas-sgd-momentum": ("mas", "sgd", "mlp", None, 10, 13),
    "mas-adam": ("mas", "adam", "mlp", None, 9, 17),
    "si": ("si", "sgd", "mlp", None, 7, 11),
    "lwf": ("lwf", "sgd", "mlp", None, 12, 14),
    "ewc-dropout": ("ewc", "sgd", "dropout", None, 8, 20),
    "search-first-trial": ("mas", "sgd", "mlp", [0.1, 10.0, 1000.0], 5, 9),
    "search-third-trial": ("mas", "sgd", "mlp", [0.1, 10.0, 1000.0], 56, 60),  # 24 steps per trial
    "lwf-batchnorm": ("lwf", "sgd", "batchnorm", None, 12, 14),
    "search-batchnorm": ("mas", "sgd", "batchnorm", [0.1, 10.0, 1000.0], 56, 60),
    "search-warmed-head": ("mas", "sgd", "batchnorm", [0.1, 10.0, 1000.0], 30, 40),
}
WARMED = {"search-warmed-head": 5}  # passes of head warm-up before the search (app/mas/head_warmup.py)


@pytest.mark.parametrize("case", list(CASES))
def test_a_resumed_run_ends_where_the_uninterrupted_one_does(case: str) -> None:
    method, optimizer, kind, grid, save_at, kill_at = CASES[case]
    warmup = WARMED.get(case, 0)
    start, omega = _after_first_task(kind)
    whole = _second(copy.deepcopy(start), omega, method, optimizer, grid, warmup)
    snapshot = _interrupted(start, omega, method, optimizer, grid, save_at, kill_at, warmup)
    resumed = _second(copy.deepcopy(start), omega, method, optimizer, grid, warmup, resume=snapshot)
    assert resumed.head_warmup == whole.head_warmup == warmup

    assert resumed.lam == whole.lam and [t.as_dict() for t in resumed.trials] == [t.as_dict() for t in whole.trials]
    assert resumed.training == whole.training  # steps, last loss and the loss of every epoch
    theta, expected = network_state(resumed.net), network_state(whole.net)
    assert theta.keys() == expected.keys()
    for name in expected:
        assert torch.equal(theta[name], expected[name]), name
    for name, value in whole.estimate.sums.items():
        assert torch.equal(resumed.estimate.sums[name], value), name


def test_the_interrupted_work_is_really_redone_from_the_snapshot() -> None:
    """The snapshot is of the step it was taken at, not of the end: resuming changes what remains."""
    start, omega = _after_first_task("mlp")
    snapshot = _interrupted(start, omega, "mas", "sgd", None, 10, 13)
    assert snapshot["run"]["step"] == 10 and snapshot["trial"] == 0
    assert snapshot["run"]["epoch"] == 1 and snapshot["run"]["batch"] == 10 - 8  # 8 batches per epoch
    unresumed = _second(copy.deepcopy(start), omega, "mas", "sgd", None)
    snapshot_theta = snapshot["run"]["network"]
    assert any(not torch.equal(snapshot_theta[n], network_state(unresumed.net)[n]) for n in snapshot_theta)
