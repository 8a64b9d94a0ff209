"""How importance accumulates across versions (MAS.md §4).

A version keeps Ω_frozen (the sum of the per-task means of every task before the latest one) and
the open estimate of the latest task as a running *sum* with its sample count, so that adding data
in any number of requests gives exactly the streaming mean. The penalty uses
Ω = Ω_frozen + Ω_open / n_open. States are immutable: every change makes a new one, as every
change to a model makes a new version.
"""

from __future__ import annotations

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
class ImportanceState:
    omega_frozen: dict[str, Tensor] = field(default_factory=dict)
    omega_open: dict[str, Tensor] = field(default_factory=dict)
    n_open: int = 0

    @classmethod
    def empty(cls) -> ImportanceState:
        return cls()

    @classmethod
    def from_tensors(cls, frozen: dict[str, Tensor], open: dict[str, Tensor], n_open: int) -> ImportanceState:
        if n_open < 0 or (n_open == 0 and open):
            raise ValueError("an open importance estimate needs a positive sample count")
        return cls(dict(frozen), dict(open), n_open)

    def accumulate(self, new: ImportanceSum) -> ImportanceState:
        """Add samples to the open estimate: the running sum and count, not a blend of means."""
        return ImportanceState(self.omega_frozen, _add(self.omega_open, new.sums), self.n_open + new.n)

    def replace(self, new: ImportanceSum) -> ImportanceState:
        """Restart the open estimate from these samples alone."""
        return ImportanceState(self.omega_frozen, {k: v.clone() for k, v in new.sums.items()}, new.n)

    def close_task(self) -> ImportanceState:
        """Before a new task: what was open becomes part of the frozen sum (the authors' rule)."""
        return ImportanceState(self.total(), {}, 0)

    def total(self) -> dict[str, Tensor]:
        """Ω for the penalty: Ω_frozen + Ω_open / n_open."""
        if self.n_open == 0:
            return dict(self.omega_frozen)
        return _add(self.omega_frozen, {k: v / self.n_open for k, v in self.omega_open.items()})

    def frozen_tensors(self) -> dict[str, Tensor]:
        return dict(self.omega_frozen)

    def open_tensors(self) -> dict[str, Tensor]:
        return dict(self.omega_open)
