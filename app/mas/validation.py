"""Validation data held back from a task's training set, and choosing λ on it ("lambda": "auto").

A slice of each task's training data is held back when the task is learned (a seeded permutation, so
the same rows are held back whenever the task's data is read again). When a later task is learned with
λ "auto", each λ of a grid spanning decades is trained from the same start and scored on every task's
validation slice: the new task's slice says how well it learned, the earlier tasks' slices how much it
forgot. Eval sets are never used to choose anything; they only report.

Two rules choose among the trials (`lambda_selection`):
- `constrained` (the default, the paper's priority): the trials whose new-task validation accuracy is
  within `new_task_tolerance` of the best any trial reached are admissible; of those, the one that
  forgets least on the earlier tasks' slices wins. Every trial starts from the same version, so the
  earlier tasks' accuracy before the task is the same for all, and least forgetting is the highest mean
  accuracy over the earlier tasks' slices (each task weighing the same). Ties: the lower mean loss on
  those slices, then the larger λ.
- `mean` (the rule before issue 27): the best mean accuracy over every task's slice, the new one
  included. It weighs n − 1 earlier tasks against one new task, so it bought little forgetting with a lot
  of new-task accuracy on sequences nobody tuned it on (three digits tasks: 5.3 points below fine-tuning).

Accuracy on a slice of a few dozen rows moves in steps of 1/rows. Where a step is coarser than the
tolerance (fewer than 1/tolerance rows in a slice the rule compares: 50 at 0.02), "within 2 points"
would mean "equal", and one row decides; the constrained rule then compares validation losses instead
(basis `loss`, said in the job's result): the new task's loss as exp(−loss), the geometric mean of the
probability given to the true label, which is in accuracy's units (it is accuracy for a network that is
sure of every answer) and moves continuously, so the tolerance keeps its meaning; forgetting as the mean
loss over the earlier slices, ties to their accuracy, then the larger λ.

The mean rule's ties go to the lower mean validation cross-entropy, measured on the same rows, which
still tells apart what accuracy rounds together. (On benchmarks/defaults_pretrained.py's CNN transfer to
four kinds of top, seed 4, λ 0.01 and λ 1 tied at 0.828; the larger λ, the old tie-break's choice,
learned the new task 6.7 points worse on the eval set, and the loss had preferred λ 0.01.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from app.mas.samples import LazySamples

Inputs = Tensor | LazySamples
# Six decades: the small MLPs of the benchmarks want λ 0.001–1, the pretrained trunks 3–100 (their Ω is
# larger); benchmarks/results/defaults.md shows this grid meeting the "defaults that protect" targets.
DEFAULT_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
TIE_BREAK = "lower mean validation loss, then larger λ"  # how best_trial orders trials of equal mean accuracy
SELECTION_RULES = ("constrained", "mean")
SelectionRule = Literal["constrained", "mean"]
BASES = ("accuracy", "loss")
DEFAULT_SELECTION: SelectionRule = "constrained"
DEFAULT_NEW_TASK_TOLERANCE = 0.02
_SPLIT_SALT = 0x5A17  # the split's permutation differs from the first epoch's shuffle of the same seed


def split_validation(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(training rows, validation rows) of n: ⌈fraction·n⌉ rows held back, at least one and at most n − 1
    when fraction > 0; none when it is 0."""
    if not 0 <= fraction < 1:
        raise ValueError("validation_fraction must lie in [0, 1)")
    held = 0 if fraction == 0 or n < 2 else min(n - 1, max(1, math.ceil(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed ^ _SPLIT_SALT))
    return order[held:].sort().values, order[:held].sort().values


@dataclass(frozen=True)
class ValidationSet:
    """One task's held-back rows, with labels in its own class indices."""

    task: str
    inputs: Inputs
    labels: Tensor


@dataclass(frozen=True)
class Trial:
    lam: float
    scores: dict[str, float]  # validation accuracy per task
    losses: dict[str, float] = field(default_factory=dict)  # validation cross-entropy per task

    @property
    def mean(self) -> float:
        return _mean(self.scores)

    @property
    def mean_loss(self) -> float:
        return _mean(self.losses)

    def as_dict(self) -> dict[str, object]:
        """For JSON: a loss that is not finite (logits that overflowed) or not measured is None."""
        return {"lambda": self.lam, "validation": dict(self.scores), "mean": self.mean,
                "validation_loss": {task: _finite(loss) for task, loss in self.losses.items()},
                "mean_loss": _finite(self.mean_loss)}

    @classmethod
    def from_dict(cls, stored: dict) -> Trial:
        """A trial as `as_dict` wrote it; a checkpoint from before losses were kept has none."""
        kept = stored.get("validation_loss") or {}
        losses = {task: math.inf if loss is None else loss for task, loss in kept.items()}
        return cls(stored["lambda"], dict(stored["validation"]), losses)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values) if values else float("nan")


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The best mean validation accuracy; on a tie the lower mean validation loss, and then the larger λ
    (the model nearer the one users already trust). A trial without losses loses a loss comparison."""
    def rank(trial: Trial) -> tuple[float, float, float]:
        loss = trial.mean_loss
        return round(trial.mean, 12), -round(loss, 12) if math.isfinite(loss) else -math.inf, trial.lam
    return max(trials, key=rank)


@dataclass(frozen=True)
class Selection:
    """How "auto" chooses among its trials: the rule, and for `constrained` how far below the best new-task
    validation accuracy a trial may fall and stay admissible."""

    rule: SelectionRule = DEFAULT_SELECTION
    tolerance: float = DEFAULT_NEW_TASK_TOLERANCE

    def __post_init__(self) -> None:
        if self.rule not in SELECTION_RULES:
            raise ValueError(f"lambda_selection must be one of {list(SELECTION_RULES)}")
        if not 0 <= self.tolerance <= 1:
            raise ValueError("new_task_tolerance must lie in [0, 1]")


@dataclass(frozen=True)
class Choice:
    """The trial a search chose and on what: the rule, the basis it compared, and which λ were admissible
    (within the tolerance of the best new-task figure; every λ under the mean rule)."""

    trial: Trial
    rule: SelectionRule
    tolerance: float
    basis: str
    admissible: tuple[float, ...]
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "new_task_tolerance": self.tolerance, "basis": self.basis,
                "admissible": list(self.admissible), "lambda": self.trial.lam, "reason": self.reason}


def selection_basis(rows: Mapping[str, int], selection: Selection) -> tuple[str, str]:
    """("accuracy" | "loss", why): accuracy where every slice compared resolves the tolerance (one row is
    at most `tolerance` of it), the loss otherwise. The mean rule always ranks by accuracy."""
    if selection.rule == "mean":
        return "accuracy", "the mean rule ranks by mean accuracy, ties to the lower loss"
    counted = {task: n for task, n in rows.items() if n > 0}
    if not counted:
        return "accuracy", "no validation rows"
    task, fewest = min(counted.items(), key=lambda item: item[1])
    if fewest * selection.tolerance >= 1 - 1e-9:
        return "accuracy", f"every slice has at least {math.ceil(1 / selection.tolerance - 1e-9)} rows" \
            if selection.tolerance > 0 else "accuracy"
    return "loss", (f"task {task!r}'s slice has {fewest} rows: an accuracy step of {1 / fewest:.3g} is coarser "
                    f"than the tolerance {selection.tolerance:g}")


def choose_trial(trials: Sequence[Trial], task: str, selection: Selection = Selection(),
                 basis: str = "accuracy", reason: str = "") -> Choice:
    """The trial `selection` picks for new task `task` on `basis` (module docstring)."""
    if not trials:
        raise ValueError("no trials to choose from")
    if basis not in BASES:
        raise ValueError(f"basis must be one of {list(BASES)}")
    if selection.rule == "mean":
        return Choice(best_trial(trials), "mean", selection.tolerance, "accuracy",
                      tuple(t.lam for t in trials), reason)
    admissible = contenders(trials, task, selection, basis)
    chosen = max(admissible, key=lambda trial: _retention(trial, task, basis))
    return Choice(chosen, "constrained", selection.tolerance, basis, tuple(t.lam for t in admissible), reason)


def contenders(trials: Sequence[Trial], task: str, selection: Selection = Selection(),
               basis: str = "accuracy") -> list[Trial]:
    """The trials that more trials could still make the choice: under `constrained` the admissible ones (the
    best new-task figure only rises, so a trial out of the tolerance stays out), under `mean` the best."""
    if selection.rule == "mean":
        return [best_trial(trials)]
    figures = [_new_task_figure(trial, task, basis) for trial in trials]
    if all(figure is None for figure in figures):  # the new task holds nothing back: every trial is admissible
        return list(trials)
    best = max(figure for figure in figures if figure is not None)
    return [trial for trial, figure in zip(trials, figures, strict=True)
            if figure is not None and figure >= best - selection.tolerance - 1e-12]


def _new_task_figure(trial: Trial, task: str, basis: str) -> float | None:
    """The new task's validation accuracy, or exp(−loss) on the loss basis (0 for a loss that is not finite)."""
    if task not in trial.scores:
        return None
    if basis == "accuracy":
        return trial.scores[task]
    loss = trial.losses.get(task, math.inf)
    return math.exp(-loss) if math.isfinite(loss) else 0.0


def _retention(trial: Trial, task: str, basis: str) -> tuple[float, float, float]:
    """How well a trial kept the earlier tasks, larger is better: their mean accuracy then mean loss
    (the loss first on the loss basis), then λ. A trial with no earlier slice ranks by the new task's."""
    earlier = {t: s for t, s in trial.scores.items() if t != task} or trial.scores
    losses = {t: trial.losses.get(t, math.inf) for t in earlier}
    accuracy = round(_mean(earlier), 12)
    loss = _mean(losses)
    negative_loss = -round(loss, 12) if math.isfinite(loss) else -math.inf
    first, second = (accuracy, negative_loss) if basis == "accuracy" else (negative_loss, accuracy)
    return first, second, trial.lam
