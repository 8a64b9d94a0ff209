"""How importance accumulates across versions (MAS.md §4): one estimate per task, summed as means.

Each task t keeps its own estimate as a running *sum* S_t with its sample count n_t, so that adding
data in any number of requests gives exactly the streaming mean, and a refresh that names t changes
t's estimate and nothing else. The penalty uses Ω = Σ_t S_t / n_t: every task weighs the same,
whatever its size. (The first design kept one frozen sum plus one open estimate for the last task; a
refresh that named an earlier task then added its samples to the *last* task's estimate.)
Estimates are values: every change makes a new one, as every change to a model makes a new version.

`blended_importance` is the other rule in use (Avalanche's and FACIL's MAS): a running blend in which
each new task halves the weight of every older one. The service sums; the blend is measured beside it
(benchmarks/paper: `mas_blend`, `ewc_blend`), because a sum that grows with every task holds a long
sequence's later tasks harder and harder at one λ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import Tensor

from app.mas.importance import ImportanceSum


def _add(a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, Tensor]:
    """Elementwise sum over the union of names (a parameter one side lacks counts as zero there)."""
    out = dict(a)
    for name, value in b.items():
        out[name] = out[name] + value if name in out else value.clone()
    return out


@dataclass(frozen=True)
class TaskImportance:
    """One task's estimate: S_t = Σ_k |g(x_k)| through its head, over the n_t samples measured."""

    sums: dict[str, Tensor] = field(default_factory=dict)
    n: int = 0

    def __post_init__(self) -> None:
        if self.n < 0 or (self.n == 0 and self.sums):
            raise ValueError("an importance estimate with tensors needs a positive sample count")

    def accumulate(self, new: ImportanceSum) -> TaskImportance:
        """Add samples: the running sum and count, not a blend of means."""
        return TaskImportance(_add(self.sums, new.sums), self.n + new.n)

    def mean(self) -> dict[str, Tensor]:
        """S_t / n_t: this task's Ω."""
        return {name: value / self.n for name, value in self.sums.items()} if self.n else {}

    @classmethod
    def of(cls, measured: ImportanceSum) -> TaskImportance:
        """A fresh estimate from these samples alone (`replace`, or a task just learned)."""
        return cls().accumulate(measured)


def total_importance(estimates: Iterable[TaskImportance]) -> dict[str, Tensor]:
    """Ω for the penalty: Σ_t S_t / n_t. Takes an iterable so a caller can load one estimate at a time
    (an estimate is as large as the trained part of θ)."""
    total: dict[str, Tensor] = {}
    for estimate in estimates:
        total = _add(total, estimate.mean())
    return total


BLEND_KEEP = 0.5  # Avalanche's and FACIL's α: the share of the blend so far that a new task keeps


def blended_importance(estimates: Iterable[TaskImportance], keep: float = BLEND_KEEP) -> dict[str, Tensor]:
    """Ω blended in task order: the first task's S_t / n_t whole, then Ω ← keep · Ω + (1 − keep) · S_t / n_t
    for each later one (a parameter one side lacks counts as zero there). With n tasks the last has weight
    1 − keep, the first keep^(n−1): the penalty's scale stays that of one task however long the sequence."""
    if not 0 <= keep < 1:
        raise ValueError("keep must lie in [0, 1)")
    total: dict[str, Tensor] | None = None
    for estimate in estimates:
        mean = estimate.mean()
        if total is None:
            total = mean
            continue
        total = _add({name: keep * value for name, value in total.items()},
                     {name: (1 - keep) * value for name, value in mean.items()})
    return total or {}
