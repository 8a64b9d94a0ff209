"""Validation data held back from a task's training set, and choosing λ on it ("lambda": "auto").

A slice of each task's training data is held back when the task is learned (a seeded permutation, so
the same rows are held back whenever the task's data is read again). When a later task is learned with
λ "auto", each λ of a grid spanning decades is trained from the same start, and the one with the best
mean accuracy over every task's validation slice wins: the new task's slice says how well it learned,
the earlier tasks' slices how much it forgot. Eval sets are never used to choose anything; they only
report.

Accuracy on a slice of a few dozen rows moves in steps of 1/rows, so two λ often tie on it; the tie
goes to the lower mean validation cross-entropy, measured on the same rows, which still tells apart
what accuracy rounds together. (On benchmarks/defaults_pretrained.py's CNN transfer to four kinds of
top, seed 4, λ 0.01 and λ 1 tied at 0.828; the larger λ, the old tie-break's choice, learned the new
task 6.7 points worse on the eval set, and the loss had preferred λ 0.01.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from app.mas.samples import LazySamples

Inputs = Tensor | LazySamples
# Six decades: the small MLPs of the benchmarks want λ 0.001–1, the pretrained trunks 3–100 (their Ω is
# larger); benchmarks/results/defaults.md shows this grid meeting the "defaults that protect" targets.
DEFAULT_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
TIE_BREAK = "lower mean validation loss, then larger λ"  # how best_trial orders trials of equal mean accuracy
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
