"""Validation data held back from a task's training set, and choosing λ on it ("lambda": "auto").

A slice of each task's training data is held back when the task is learned (a seeded permutation, so
the same rows are held back whenever the task's data is read again). When a later task is learned with
λ "auto", each λ of a grid spanning decades is trained from the same start, and the one with the best
mean accuracy over every task's validation slice wins: the new task's slice says how well it learned,
the earlier tasks' slices how much it forgot. Eval sets are never used to choose anything; they only
report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from app.mas.samples import LazySamples

Inputs = Tensor | LazySamples
# Six decades: the small MLPs of the benchmarks want λ 0.001–1, the pretrained trunks 3–100 (their Ω is
# larger); benchmarks/results/defaults.md shows this grid meeting the "defaults that protect" targets.
DEFAULT_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
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

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {"lambda": self.lam, "validation": dict(self.scores), "mean": self.mean}


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The best mean validation accuracy; on a tie the larger λ, which keeps the model nearer the one
    users already trust."""
    return max(trials, key=lambda trial: (round(trial.mean, 12), trial.lam))
