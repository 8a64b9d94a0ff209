"""The new head's warm-up (app/mas/head_warmup.py): only the head moves, it learns the task on the trunk's
eval-mode features, the run is deterministic, and `learn_task` warms a new head once and a known one never."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as functional
from torch import nn

from app.mas import head_warmup
from app.mas.data import split_digits
from app.mas.head_warmup import PRETRAINED_WARMUP_EPOCHS, warm_up_head, warmup_epochs
from app.mas.learn import MethodChoice, learn_task
from app.mas.networks import InputSpec, MultiHeadNet, network_state
from app.mas.training import TrainConfig

TASK = split_digits(5, seed=0)[1]


def _network() -> MultiHeadNet:
    """A trunk with dropout and batch norm: eval mode changes both, so features taken in train mode would
    differ from call to call and from what the test computes."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 16))
    net = MultiHeadNet(trunk, 16, InputSpec((64,)))
    net.add_head(TASK.name, 2, seed=3)
    net.train()
    return net


def _head_loss(net: MultiHeadNet) -> float:
    net.eval()
    with torch.no_grad():
        return float(functional.cross_entropy(net(TASK.x_train, TASK.name), TASK.y_train))


def test_only_the_head_moves_and_it_learns_the_task_on_eval_mode_features() -> None:
    net = _network()
    before, loss_before = copy.deepcopy(network_state(net)), _head_loss(net)
    buffers = {name: value.clone() for name, value in net.named_buffers()}
    net.train()
    losses = warm_up_head(net, TASK.name, TASK.x_train, TASK.y_train, TrainConfig(lr=0.05, seed=0), epochs=30)

    assert len(losses) == 30 and losses[-1] < 0.8 * losses[0]
    after = network_state(net)
    for name, value in before.items():
        moved = not torch.equal(after[name], value)
        assert moved == name.startswith("heads."), name
    for name, value in net.named_buffers():  # batch norm ran on its running statistics, not the batch's
        assert torch.equal(value, buffers[name]), name
    assert net.training  # the mode it was in
    # The loss the last pass reports is the head's loss on the same eval-mode features, recomputed here.
    assert _head_loss(net) < 0.8 * loss_before
    assert _head_loss(net) == pytest.approx(losses[-1], rel=0.3)


def test_the_warm_up_is_deterministic_and_zero_passes_do_nothing() -> None:
    first, second, untouched = _network(), _network(), _network()
    config = TrainConfig(lr=0.05, seed=4)
    assert warm_up_head(first, TASK.name, TASK.x_train, TASK.y_train, config, 5) == \
        warm_up_head(second, TASK.name, TASK.x_train, TASK.y_train, config, 5)
    for name, value in network_state(first).items():
        assert torch.equal(value, network_state(second)[name]), name
    state = copy.deepcopy(network_state(untouched))
    assert warm_up_head(untouched, TASK.name, TASK.x_train, TASK.y_train, config, 0) == []
    assert all(torch.equal(v, state[n]) for n, v in network_state(untouched).items())


def test_a_large_task_stops_at_the_step_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(head_warmup, "MAX_WARMUP_STEPS", 25)
    rows = len(TASK.y_train)
    losses = warm_up_head(_network(), TASK.name, TASK.x_train, TASK.y_train, TrainConfig(batch_size=rows // 5, seed=0),
                          epochs=50)
    assert len(losses) == 25 // math.ceil(rows / (rows // 5))  # 5 or 6 steps a pass: 4 or 5 passes, not 50


def test_auto_means_the_pretrained_default_and_numbers_are_taken_as_given() -> None:
    assert warmup_epochs("auto", pretrained=True) == PRETRAINED_WARMUP_EPOCHS
    assert warmup_epochs("auto", pretrained=False) == 0
    assert warmup_epochs(7, pretrained=False) == 7
    for wrong in (-1, True, "many"):
        with pytest.raises(ValueError, match="head_warmup"):
            warmup_epochs(wrong, pretrained=True)
    with pytest.raises(ValueError, match="head_warmup"):
        TrainConfig(head_warmup=-1)


def test_learn_task_warms_a_new_head_once_and_a_known_head_never() -> None:
    net = _network()
    del net.heads[TASK.name]
    config = TrainConfig(epochs=1, batch_size=32, lr=0.05, seed=0, head_warmup=8)
    first = learn_task(net, TASK.name, 2, TASK.x_train, TASK.y_train, method=MethodChoice("finetune"),
                       theta_star={}, omega={}, config=config, importance=None)
    assert first.head_warmup == 8
    # After the warm-up the first epoch starts from a head that already fits: its loss is far below a
    # random head's (ln 2 for two classes).
    cold = learn_task(_network_without_head(), TASK.name, 2, TASK.x_train, TASK.y_train,
                      method=MethodChoice("finetune"), theta_star={}, omega={},
                      config=TrainConfig(epochs=1, batch_size=32, lr=0.05, seed=0), importance=None)
    assert cold.head_warmup == 0 and first.training.loss_per_epoch[0] < cold.training.loss_per_epoch[0] / 2
    again = learn_task(first.net, TASK.name, 2, TASK.x_train, TASK.y_train, method=MethodChoice("finetune"),
                       theta_star={}, omega={}, config=config, importance=None)
    assert again.head_warmup == 0


def _network_without_head() -> MultiHeadNet:
    net = _network()
    del net.heads[TASK.name]
    return net


def test_a_frozen_trunk_gets_no_warm_up() -> None:
    """Heads only: nothing in the trunk trains, so a random head disturbs nothing and is not warmed up."""
    net = _network()
    net.freeze({name for name, _ in net.trunk.named_parameters(prefix="trunk")})
    state = copy.deepcopy(network_state(net))
    assert warm_up_head(net, TASK.name, TASK.x_train, TASK.y_train, TrainConfig(seed=0), 10) == []
    assert all(torch.equal(v, state[n]) for n, v in network_state(net).items())
