"""λ "auto": held-back validation rows, and a search whose chosen run is exactly a run at that λ."""

from __future__ import annotations

import math

import pytest
import torch

from app.mas.data import split_digits
from app.mas.evaluation import accuracy, accuracy_and_loss
from app.mas.learn import MethodChoice, learn_task
from app.mas.networks import build_network, network_state
from app.mas.sequence import run_sequence
from app.mas.training import TrainConfig
from app.mas.validation import DEFAULT_GRID, Trial, ValidationSet, best_trial, split_validation


def test_the_split_is_seeded_disjoint_and_complete() -> None:
    train, held = split_validation(50, 0.1, seed=3)
    assert len(held) == 5 and len(train) == 45
    assert sorted(train.tolist() + held.tolist()) == list(range(50))
    again_train, again_held = split_validation(50, 0.1, seed=3)
    assert torch.equal(held, again_held) and torch.equal(train, again_train)
    assert not torch.equal(held, split_validation(50, 0.1, seed=4)[1])
    assert len(split_validation(50, 0.0, seed=3)[1]) == 0
    assert len(split_validation(3, 0.01, seed=0)[1]) == 1  # at least one row when asked for any
    assert len(split_validation(1, 0.5, seed=0)[1]) == 0  # and never all of them
    with pytest.raises(ValueError):
        split_validation(10, 1.0, seed=0)


def test_the_best_mean_wins_and_a_tie_goes_to_the_lower_loss_then_the_larger_lambda() -> None:
    trials = [Trial(0.1, {"a": 0.5, "b": 1.0}), Trial(1.0, {"a": 0.9, "b": 0.9}), Trial(10.0, {"a": 1.0, "b": 0.7})]
    assert best_trial(trials).lam == 1.0
    tied = [Trial(1.0, {"a": 0.8}, {"a": 0.4}), Trial(10.0, {"a": 0.8}, {"a": 0.5}), Trial(0.1, {"a": 0.7}, {"a": 0.1})]
    assert best_trial(tied).lam == 1.0  # the loss only breaks ties: λ 0.1's lower loss does not beat accuracy
    assert best_trial([Trial(1.0, {"a": 0.8}, {"a": 0.4}), Trial(10.0, {"a": 0.8}, {"a": 0.4})]).lam == 10.0
    assert best_trial([Trial(1.0, {"a": 0.8}), Trial(10.0, {"a": 0.8}), Trial(0.1, {"a": 0.8})]).lam == 10.0
    assert best_trial([Trial(1.0, {"a": 0.8}, {"a": 0.4}), Trial(10.0, {"a": 0.8})]).lam == 1.0  # no loss: last


def test_a_trial_round_trips_and_reads_one_kept_before_losses() -> None:
    trial = Trial(0.1, {"a": 0.75, "b": 0.5}, {"a": 0.25, "b": 1.0})
    assert Trial.from_dict(trial.as_dict()) == trial
    assert trial.as_dict()["mean_loss"] == 0.625
    assert Trial.from_dict({"lambda": 1.0, "validation": {"a": 0.5}, "mean": 0.5}) == Trial(1.0, {"a": 0.5})
    assert Trial(1.0, {"a": 0.5}).as_dict()["mean_loss"] is None  # JSON has no NaN
    overflowed = Trial(1.0, {"a": 0.5, "b": 0.5}, {"a": math.inf, "b": 0.5})
    stored = overflowed.as_dict()
    assert stored["validation_loss"] == {"a": None, "b": 0.5} and stored["mean_loss"] is None
    assert Trial.from_dict(overflowed.as_dict()) == overflowed
    assert best_trial([overflowed, Trial(0.1, {"a": 0.5, "b": 0.5}, {"a": 9.0, "b": 9.0})]).lam == 0.1


def test_the_validation_loss_is_the_mean_negative_log_likelihood_of_the_labels() -> None:
    net = build_network({"kind": "mlp", "input_shape": [4], "hidden": [3]}, 0)
    net.add_head("t", 3, seed=0)
    inputs, labels = torch.randn(7, 4, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    measured_accuracy, loss = accuracy_and_loss(net, "t", inputs, labels)
    net.eval()
    with torch.no_grad():  # row by row, from the softmax's definition
        rows = [net(inputs[i : i + 1], "t")[0].double() for i in range(7)]
    expected = sum(math.log(row.exp().sum()) - row[int(y)] for row, y in zip(rows, labels, strict=True)) / 7
    assert loss == pytest.approx(float(expected), rel=1e-5)
    assert measured_accuracy == accuracy(net, "t", inputs, labels)
    assert all(math.isnan(v) for v in accuracy_and_loss(net, "t", inputs[:0], labels[:0]))


def _two_tasks():
    tasks = split_digits(5, seed=0)
    return tasks[2], tasks[4]


def test_the_chosen_run_is_bit_for_bit_a_run_at_that_lambda() -> None:
    first, second = _two_tasks()
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=0)
    architecture = {"kind": "mlp", "input_shape": [64], "hidden": [32]}

    def after_first():
        net = build_network(architecture, 0)
        learned = learn_task(net, first.name, 2, first.x_train, first.y_train, method=MethodChoice(),
                             theta_star={}, omega={}, config=config)
        return net, learned.estimate.mean()

    held = [ValidationSet(first.name, first.x_test[:40], first.y_test[:40]),
            ValidationSet(second.name, second.x_test[:40], second.y_test[:40])]
    net, omega = after_first()
    searched = learn_task(net, second.name, 2, second.x_train, second.y_train, method=MethodChoice(),
                          theta_star=network_state(net), omega=omega, config=config,
                          lambda_grid=[0.01, 1.0, 100.0], validation=held)
    assert [t.lam for t in searched.trials] == [0.01, 1.0, 100.0]
    assert searched.lam == best_trial(searched.trials).lam
    for trial in searched.trials:  # every trial was scored on both tasks' held-out rows
        assert set(trial.scores) == set(trial.losses) == {first.name, second.name}
    chosen = next(t for t in searched.trials if t.lam == searched.lam)
    for v in held:  # the network handed back is the chosen trial's
        assert accuracy(searched.net, v.task, v.inputs, v.labels) == chosen.scores[v.task]

    net, omega = after_first()  # the same start, trained once at the chosen λ
    single = learn_task(net, second.name, 2, second.x_train, second.y_train,
                        method=MethodChoice(lam=searched.lam), theta_star=network_state(net), omega=omega,
                        config=config)
    assert single.trials == []
    for name, value in network_state(single.net).items():
        assert torch.equal(value, network_state(searched.net)[name]), name
    for name, value in single.estimate.sums.items():
        assert torch.equal(value, searched.estimate.sums[name]), name


def test_nothing_to_protect_or_nothing_to_validate_trains_once() -> None:
    first, second = _two_tasks()
    config = TrainConfig(epochs=1, batch_size=32, seed=0)
    held = [ValidationSet(first.name, first.x_test, first.y_test)]
    net = build_network({"kind": "mlp", "input_shape": [64], "hidden": [16]}, 0)
    alone = learn_task(net, first.name, 2, first.x_train, first.y_train, method=MethodChoice(), theta_star={},
                       omega={}, config=config, lambda_grid=[0.1, 10.0], validation=held)
    assert alone.trials == [] and alone.net is net  # no Ω yet: λ cannot change anything
    omega = alone.estimate.mean()
    finetune = learn_task(net, second.name, 2, second.x_train, second.y_train, method=MethodChoice("finetune"),
                          theta_star=network_state(net), omega=omega, config=config, lambda_grid=[0.1, 10.0],
                          validation=held)
    assert finetune.trials == []
    unvalidated = learn_task(build_network({"kind": "mlp", "input_shape": [64], "hidden": [16]}, 0), second.name,
                             2, second.x_train, second.y_train, method=MethodChoice(), theta_star=network_state(net),
                             omega=omega, config=config, lambda_grid=[0.1, 10.0],
                             validation=[ValidationSet(second.name, second.x_test, second.y_test)])
    assert unvalidated.trials == []  # no earlier task's rows to say what a λ forgets


def test_auto_forgets_as_little_as_a_good_fixed_lambda_on_digits() -> None:
    first, second = _two_tasks()
    config = TrainConfig(epochs=10, batch_size=32, lr=0.05, momentum=0.9, seed=0)
    finetune = run_sequence([first, second], method="finetune", config=config)
    auto = run_sequence([first, second], method="mas", lam="auto", config=config)
    drop = {name: r.matrix[0][first.name] - r.matrix[1][first.name] for name, r in (("ft", finetune), ("auto", auto))}
    print(f"λ chosen {auto.lambdas}, drop finetune {drop['ft']:.3f}, auto {drop['auto']:.3f}")
    assert len(auto.lambdas) == 2 and auto.lambdas[1] in DEFAULT_GRID
    assert drop["ft"] > 0.1 and drop["auto"] < drop["ft"] / 3
    assert auto.matrix[1][second.name] > finetune.matrix[1][second.name] - 0.05
