"""Per-class statistics of trunk features: what a task-free answer is fitted from (MAS.md §7).

For one task, on its training rows, with the trunk of the version that answers: per class c the count
n_c and the feature sum Σ f, and the second moment G = Σ f fᵀ over all its rows; the same for the
random projection h = ReLU(R f) (RanPAC) when one is used. All are sums, so tasks combine by adding
(or stacking their classes), and no earlier task's rows are needed when a task is added: a task's
statistics are measured once, when it is learned, and again only when a later task moves the trunk.
Sums are accumulated in float64: a Gram of thousands of rows loses digits in float32.

Features are the trunk's output in eval mode outside any task (`features`): a trunk with batch norms
kept per task (app/mas/task_statistics.py) normalises with its shared running statistics, the only
ones a request that names no task can use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from app.mas.evaluation import task_logits
from app.mas.networks import MultiHeadNet
from app.mas.passes import rows_per_pass
from app.mas.samples import LazySamples

Inputs = Tensor | LazySamples


def feature_chunks(net: MultiHeadNet, inputs: Inputs) -> Iterator[Tensor]:
    """The trunk's features [rows, d] of `inputs`, a bounded chunk at a time (eval mode, no graph)."""
    chunk = rows_per_pass(net, inputs)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for start in range(0, inputs.shape[0], chunk):
                yield net.trunk(net.input_spec.cast(inputs[start : start + chunk])).float()
    finally:
        net.train(was_training)


def features(net: MultiHeadNet, inputs: Inputs) -> Tensor:
    """All the trunk's features [n, d] of `inputs` (see `feature_chunks`)."""
    parts = list(feature_chunks(net, inputs))
    return torch.cat(parts) if parts else torch.zeros(0, net.feature_dim)


@dataclass(frozen=True)
class Projection:
    """RanPAC's fixed random projection h = ReLU(R f): R [width, d] drawn N(0, 1) from a seed."""

    weight: Tensor

    @classmethod
    def draw(cls, feature_dim: int, width: int, seed: int) -> Projection:
        generator = torch.Generator().manual_seed(seed)
        return cls(torch.randn(width, feature_dim, generator=generator))

    @property
    def width(self) -> int:
        return self.weight.shape[0]

    def __call__(self, f: Tensor) -> Tensor:
        return torch.relu(f @ self.weight.to(device=f.device, dtype=f.dtype).T)


@dataclass
class ClassStatistics:
    """One task's sums over its training rows; `projected_*` only when a projection was given."""

    counts: Tensor  # [C] float64
    sums: Tensor  # [C, d] float64
    gram: Tensor  # [d, d] float64
    projected_sums: Tensor | None = None  # [C, M]
    projected_gram: Tensor | None = None  # [M, M]
    reference: Tensor | None = None  # [k, d] features of a reservoir of the rows: drift tests' reference (§8)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def num_classes(self) -> int:
        return self.counts.shape[0]

    def as_tensors(self) -> dict[str, Tensor]:
        """A flat name→tensor mapping, as a safetensors blob stores it."""
        tensors = {"counts": self.counts, "sums": self.sums, "gram": self.gram}
        if self.projected_sums is not None and self.projected_gram is not None:
            tensors |= {"projected_sums": self.projected_sums, "projected_gram": self.projected_gram}
        if self.reference is not None:
            tensors["reference"] = self.reference
        return {name: t.contiguous() for name, t in tensors.items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> ClassStatistics:
        return cls(tensors["counts"], tensors["sums"], tensors["gram"], tensors.get("projected_sums"),
                   tensors.get("projected_gram"), tensors.get("reference"))


def measure(net: MultiHeadNet, inputs: Inputs, labels: Tensor, num_classes: int,
            projection: Projection | None = None, reference_rows: Tensor | None = None) -> ClassStatistics:
    """A task's statistics on (inputs, labels), one pass of the trunk over the rows; with `reference_rows`
    (sorted row indices) the features of those rows are kept as well."""
    d = net.feature_dim
    counts = torch.zeros(num_classes, dtype=torch.float64)
    sums, gram = torch.zeros(num_classes, d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    width = projection.width if projection is not None else 0
    p_sums = torch.zeros(num_classes, width, dtype=torch.float64)
    p_gram = torch.zeros(width, width, dtype=torch.float64)
    labels = labels.cpu().long()
    start, kept = 0, []
    for chunk in feature_chunks(net, inputs):
        y = labels[start : start + chunk.shape[0]]
        if reference_rows is not None:
            inside = reference_rows[(reference_rows >= start) & (reference_rows < start + chunk.shape[0])]
            kept.append(chunk[(inside - start).to(chunk.device)].cpu())
        start += chunk.shape[0]
        f = chunk.cpu().double()
        onehot = torch.nn.functional.one_hot(y, num_classes).double()
        counts += onehot.sum(0)
        sums += onehot.T @ f
        gram += f.T @ f
        if projection is not None:
            h = projection(f)
            p_sums += onehot.T @ h
            p_gram += h.T @ h
    reference = torch.cat(kept) if kept else (torch.zeros(0, d) if reference_rows is not None else None)
    if projection is None:
        return ClassStatistics(counts, sums, gram, reference=reference)
    return ClassStatistics(counts, sums, gram, p_sums, p_gram, reference)


def head_logits(net: MultiHeadNet, tasks: list[str], inputs: Inputs, f: Tensor) -> list[Tensor]:
    """Each task head's logits on `inputs`, whose trunk features are `f`: the heads applied to `f`, unless
    some task keeps batch norms of its own (then its features differ, and each task takes a pass)."""
    if not net.has_task_statistics():
        with torch.inference_mode():
            return [net.heads[task](f.to(net.heads[task].weight.dtype)).float() for task in tasks]
    return [task_logits(net, task, inputs).float() for task in tasks]
