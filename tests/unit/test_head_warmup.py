"""The new head's warm-up (app/mas/head_warmup.py): only the head moves, it learns the task on the trunk's
eval-mode features with batch norms normalising by the task's own rows (checked against a closed form), the
run is deterministic, and `learn_task` warms a new head once and a known one never."""

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


def _own_statistics_features(net: MultiHeadNet, x: torch.Tensor) -> torch.Tensor:
    """The trunk of `_network` in eval mode, its batch norm normalising by the mean and (unbiased) variance of
    these rows themselves, written out by hand: what the warm-up trains the head on in one batch."""
    linear, norm, _, _, last = net.trunk
    with torch.no_grad():
        z = linear(x)
        normalised = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=True) + norm.eps) * norm.weight + norm.bias
        return last(torch.relu(normalised))


def _head_loss(net: MultiHeadNet) -> float:
    with torch.no_grad():
        features = _own_statistics_features(net, TASK.x_train)
        return float(functional.cross_entropy(net.heads[TASK.name](features), TASK.y_train))


def test_only_the_head_moves_and_it_learns_the_task_on_eval_mode_features() -> None:
    net = _network()
    before, loss_before = copy.deepcopy(network_state(net)), _head_loss(net)
    buffers = {name: value.clone() for name, value in net.named_buffers()}
    net.train()
    config = TrainConfig(lr=0.05, batch_size=len(TASK.y_train), seed=0)  # one batch: the closed form's statistics
    losses = warm_up_head(net, TASK.name, TASK.x_train, TASK.y_train, config, epochs=60)

    assert len(losses) == 60 and losses[-1] < 0.8 * losses[0]
    after = network_state(net)
    for name, value in before.items():
        moved = not torch.equal(after[name], value)
        assert moved == name.startswith("heads."), name
    for name, value in net.named_buffers():  # the running statistics are put back as they were
        assert torch.equal(value, buffers[name]), name
    assert net.training and net.trunk[1].momentum == 0.1  # the mode and the norm's settings it had
    # Each pass reports the mean loss over its steps; the last step's loss, on the hand-computed features,
    # is no more than the last pass's mean (full-batch descent lowers the loss at every step here).
    assert losses[0] == pytest.approx(loss_before, rel=1e-4)
    assert _head_loss(net) <= losses[-1] + 1e-6


def test_running_statistics_of_other_data_do_not_reach_the_warm_up() -> None:
    """Running statistics measured on another task's rows (here: far off) must not normalise the features
    the head is warmed on: the trunk will train on the new rows' batch statistics."""
    net = _network()
    net.trunk[1].running_mean.fill_(5.0)
    net.trunk[1].running_var.fill_(9.0)
    seen: list[torch.Tensor] = []
    net.heads[TASK.name].register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    config = TrainConfig(lr=0.05, batch_size=len(TASK.y_train), seed=0)
    warm_up_head(net, TASK.name, TASK.x_train, TASK.y_train, config, epochs=1)

    expected = _own_statistics_features(net, TASK.x_train)
    by_row = lambda f: f[torch.argsort(f.sum(1))]  # noqa: E731 - the pass shuffles the rows; compare as sets
    assert torch.allclose(by_row(seen[0]), by_row(expected), atol=1e-5)
    assert float(net.trunk[1].running_mean[0]) == 5.0 and float(net.trunk[1].running_var[0]) == 9.0


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
