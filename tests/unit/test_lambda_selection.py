"""Choosing λ among "auto"'s trials: the constrained rule (least forgetting within a tolerance of the best
new-task accuracy), the mean rule it replaced as default, and the loss basis on slices too small for accuracy.

Every expectation is worked out by hand from the trial records written here."""

from __future__ import annotations

import math

import pytest

from app.mas.data import split_digits
from app.mas.evaluation import accuracy_and_loss
from app.mas.learn import MethodChoice, learn_task
from app.mas.networks import build_network, network_state
from app.mas.sequence import run_sequence
from app.mas.training import TrainConfig
from app.mas.validation import (
    Selection,
    Trial,
    ValidationSet,
    best_trial,
    choose_trial,
    contenders,
    selection_basis,
)

# New task "new", earlier task "a"; accuracy on plenty of rows (the accuracy basis).
TRADE_OFF = [
    Trial(0.01, {"a": 0.70, "new": 0.95}, {"a": 0.9, "new": 0.15}),
    Trial(0.1, {"a": 0.80, "new": 0.94}, {"a": 0.6, "new": 0.16}),
    Trial(1.0, {"a": 0.90, "new": 0.92}, {"a": 0.4, "new": 0.20}),
    Trial(10.0, {"a": 0.99, "new": 0.80}, {"a": 0.1, "new": 0.50}),
]


def test_the_constrained_rule_keeps_the_new_task_where_the_mean_rule_trades_it_away() -> None:
    # Best new-task accuracy 0.95: within 0.02 are λ 0.01 (0.95) and 0.1 (0.94); of those λ 0.1 forgets less
    # (a: 0.80 against 0.70). The means are 0.825, 0.87, 0.91 and 0.895: the mean rule takes λ 1, 3 points
    # below the best new-task accuracy.
    choice = choose_trial(TRADE_OFF, "new")
    assert choice.trial.lam == 0.1 and choice.admissible == (0.01, 0.1)
    assert choice.rule == "constrained" and choice.basis == "accuracy"
    mean = choose_trial(TRADE_OFF, "new", Selection("mean"))
    assert mean.trial.lam == 1.0 and mean.trial is best_trial(TRADE_OFF) and mean.rule == "mean"
    # A wider tolerance admits λ 1 (0.92 ≥ 0.95 − 0.05) and then it forgets least; 0.93 sits exactly on 0.02.
    assert choose_trial(TRADE_OFF, "new", Selection(tolerance=0.05)).trial.lam == 1.0
    edge = [*TRADE_OFF[:1], Trial(1.0, {"a": 0.90, "new": 0.93})]
    assert choose_trial(edge, "new").trial.lam == 1.0
    # Tolerance 1 admits every trial: the least forgetting overall, λ 10.
    assert choose_trial(TRADE_OFF, "new", Selection(tolerance=1.0)).trial.lam == 10.0


def test_ties_in_forgetting_go_to_the_lower_earlier_loss_then_the_larger_lambda() -> None:
    tied = [Trial(0.1, {"a": 0.9, "new": 0.95}, {"a": 0.30, "new": 0.01}),
            Trial(1.0, {"a": 0.9, "new": 0.95}, {"a": 0.20, "new": 9.00}),
            Trial(10.0, {"a": 0.9, "new": 0.94}, {"a": 0.25, "new": 0.01})]
    # Equal earlier accuracy: λ 1's earlier loss 0.20 wins; its new-task loss 9 plays no part in forgetting.
    assert choose_trial(tied, "new").trial.lam == 1.0
    same = [Trial(0.1, {"a": 0.9, "new": 0.95}, {"a": 0.2}), Trial(1.0, {"a": 0.9, "new": 0.95}, {"a": 0.2})]
    assert choose_trial(same, "new").trial.lam == 1.0
    # A trial without losses loses the loss comparison.
    assert choose_trial([Trial(1.0, {"a": 0.9, "new": 0.9}), Trial(0.1, {"a": 0.9, "new": 0.9}, {"a": 5.0})],
                        "new").trial.lam == 0.1


def test_every_earlier_task_weighs_the_same_in_forgetting() -> None:
    # λ 0.1 keeps a at 1.0 and b at 0.5 (mean 0.75); λ 1 keeps both at 0.8 (mean 0.8): λ 1 forgets less.
    trials = [Trial(0.1, {"a": 1.0, "b": 0.5, "new": 0.9}), Trial(1.0, {"a": 0.8, "b": 0.8, "new": 0.9})]
    assert choose_trial(trials, "new").trial.lam == 1.0


def test_on_tiny_slices_the_rule_compares_losses_and_says_so() -> None:
    rows = {"a": 20, "new": 20}
    basis, why = selection_basis(rows, Selection())
    assert basis == "loss" and "20 rows" in why and "0.05" in why  # one row of 20 is 5 points > 2
    # exp(−0.10) = 0.9048, exp(−0.115) = 0.8914 (0.0135 below: admissible), exp(−0.20) = 0.8187 (out).
    trials = [Trial(0.1, {"a": 0.80, "new": 0.95}, {"a": 0.5, "new": 0.10}),
              Trial(1.0, {"a": 0.90, "new": 0.90}, {"a": 0.3, "new": 0.115}),
              Trial(10.0, {"a": 1.00, "new": 0.95}, {"a": 0.1, "new": 0.20})]
    on_loss = choose_trial(trials, "new", basis="loss", reason=why)
    assert on_loss.trial.lam == 1.0 and on_loss.admissible == (0.1, 1.0) and on_loss.basis == "loss"
    assert on_loss.as_dict() == {"rule": "constrained", "new_task_tolerance": 0.02, "basis": "loss",
                                 "admissible": [0.1, 1.0], "lambda": 1.0, "reason": why}
    # On accuracy, one row apart is out of tolerance: λ 1 (one row fewer) drops, λ 10 ties λ 0.1 and wins on
    # forgetting although its loss says it learned the new task worse.
    assert choose_trial(trials, "new", basis="accuracy").trial.lam == 10.0
    # On the loss basis forgetting is ranked by the earlier loss first: λ 0.1 (loss 0.3) beats λ 1 (0.4) though
    # its accuracy there is lower.
    by_loss = [Trial(0.1, {"a": 0.80, "new": 0.9}, {"a": 0.3, "new": 0.1}),
               Trial(1.0, {"a": 0.85, "new": 0.9}, {"a": 0.4, "new": 0.1})]
    assert choose_trial(by_loss, "new", basis="loss").trial.lam == 0.1
    assert choose_trial(by_loss, "new", basis="accuracy").trial.lam == 1.0


def test_the_basis_follows_the_smallest_slice_and_the_tolerance() -> None:
    assert selection_basis({"a": 100, "new": 50}, Selection())[0] == "accuracy"  # 1/50 = 0.02: resolves it
    basis, why = selection_basis({"a": 49, "new": 500}, Selection())
    assert basis == "loss" and "'a'" in why and "49 rows" in why
    assert selection_basis({"a": 20, "new": 20}, Selection(tolerance=0.05))[0] == "accuracy"
    assert selection_basis({"a": 10_000}, Selection(tolerance=0.0))[0] == "loss"  # no step is finer than 0
    assert selection_basis({"a": 5, "new": 5}, Selection("mean"))[0] == "accuracy"
    assert selection_basis({"new": 0}, Selection())[0] == "accuracy"


def test_a_diverged_new_task_loss_is_out_and_a_new_task_without_rows_admits_every_trial() -> None:
    trials = [Trial(0.1, {"a": 0.5, "new": 0.9}, {"a": 1.0, "new": 0.2}),
              Trial(10.0, {"a": 0.9, "new": 0.9}, {"a": 0.1, "new": math.inf})]
    assert choose_trial(trials, "new", basis="loss").trial.lam == 0.1
    no_new = [Trial(0.1, {"a": 0.5}), Trial(10.0, {"a": 0.9})]
    assert choose_trial(no_new, "new").admissible == (0.1, 10.0) and choose_trial(no_new, "new").trial.lam == 10.0


def test_contenders_are_the_trials_more_trials_could_still_make_the_choice() -> None:
    first = TRADE_OFF[:1]
    assert contenders(first, "new") == first
    assert contenders(TRADE_OFF[3:], "new") == TRADE_OFF[3:]
    # Once λ 0.01 reaches 0.95, λ 10 (0.80) is out for good, whatever comes after.
    assert contenders([TRADE_OFF[3], TRADE_OFF[0]], "new") == [TRADE_OFF[0]]
    assert contenders(TRADE_OFF, "new") == TRADE_OFF[:2]
    assert contenders(TRADE_OFF, "new", Selection("mean")) == [TRADE_OFF[2]]
    for count in range(1, len(TRADE_OFF) + 1):  # each prefix's choice is one of its contenders
        assert choose_trial(TRADE_OFF[:count], "new").trial in contenders(TRADE_OFF[:count], "new")


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="lambda_selection"):
        Selection("best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="new_task_tolerance"):
        Selection(tolerance=-0.1)
    with pytest.raises(ValueError, match="no trials"):
        choose_trial([], "new")


def _after_first_task():
    tasks = split_digits(5, seed=0)
    first, second = tasks[2], tasks[4]
    net = build_network({"kind": "mlp", "input_shape": [64], "hidden": [32]}, 0)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=0)
    mas = learn_task(net, first.name, 2, first.x_train[:150], first.y_train[:150], method=MethodChoice("mas"),
                     theta_star=network_state(net), omega={}, config=config)
    validation = [ValidationSet(first.name, first.x_train[150:], first.y_train[150:]),
                  ValidationSet(second.name, second.x_train[150:], second.y_train[150:])]
    return mas, second, config, validation


@pytest.mark.parametrize("rule", ["constrained", "mean"])
def test_a_search_chooses_by_its_rule_and_keeps_the_chosen_network(rule: str) -> None:
    mas, second, config, validation = _after_first_task()
    grid = (0.001, 1.0, 1000.0)
    learned = learn_task(mas.net, second.name, 2, second.x_train[:150], second.y_train[:150],
                         method=MethodChoice("mas"), theta_star=network_state(mas.net),
                         omega=mas.estimate.mean(), config=config, lambda_grid=grid, validation=validation,
                         selection=Selection(rule))
    rows = {v.task: len(v.labels) for v in validation}
    basis, why = selection_basis(rows, Selection(rule))
    expected = choose_trial(learned.trials, second.name, Selection(rule), basis, why)
    assert learned.choice == expected and learned.lam == expected.trial.lam
    assert [t.lam for t in learned.trials] == list(grid)
    # The network returned is the chosen trial's: its validation figures are the trial's.
    for v in validation:
        assert accuracy_and_loss(learned.net, v.task, v.inputs, v.labels)[0] == expected.trial.scores[v.task]


def test_run_sequence_passes_the_rule_through() -> None:
    tasks = [split_digits(5, seed=0)[i] for i in (0, 1)]
    tasks = [type(t)(t.name, t.x_train[:120], t.y_train[:120], t.x_test[:60], t.y_test[:60]) for t in tasks]
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=0)
    result = run_sequence(tasks, method="mas", lam="auto", config=config, lambda_grid=(0.01, 100.0),
                          selection=Selection("constrained", 0.02))
    assert len(result.choices) == 2 and result.choices[0] is None
    assert result.choices[1].basis == "loss" and result.choices[1].trial.lam == result.lambdas[1]


def test_on_trial_sees_every_trial_with_the_network_it_trained() -> None:
    mas, second, config, validation = _after_first_task()
    seen = []

    def observe(task, trial, network) -> None:
        # The network handed over is the one the trial's figures were measured on.
        measured = {v.task: accuracy_and_loss(network, v.task, v.inputs, v.labels)[0] for v in validation}
        seen.append((task, trial, measured))

    learned = learn_task(mas.net, second.name, 2, second.x_train[:150], second.y_train[:150],
                         method=MethodChoice("mas"), theta_star=network_state(mas.net),
                         omega=mas.estimate.mean(), config=config, lambda_grid=(0.001, 1.0, 1000.0),
                         validation=validation, on_trial=observe)
    assert [trial for _, trial, _ in seen] == learned.trials and {task for task, _, _ in seen} == {second.name}
    assert all(measured == trial.scores for _, trial, measured in seen)
