"""Frozen layers computed once per job: a trunk's frozen prefix run once over the job's rows.

With `trainable: {"last": 2}` a pretrained trunk's first blocks never change within a job, and in eval
mode (MultiHeadNet.train keeps frozen layers there; the service has no augmentation) they compute the
same function every time. A default MiniLM task (20 epochs × 6 λ trials) would otherwise recompute
them in every step. So a job asks the trunk's kind for a `TrunkSplit` at its first trainable block:
`prefix(trunk, raw)` maps a batch of raw inputs to the features the rest of the trunk takes (the
features of one row must not depend on which rows share its batch), and `suffix(trunk)` is a module
over those features made of the trunk's own submodules *under the same names* (`layers.4…`,
`blocks.15…`, `head…`). `view(net)` is then a MultiHeadNet over that suffix sharing the network's
modules and heads: training, Ω, validation and LwF's targets run on the view with the cached features,
move the full network's parameters in place, and every name (θ, Ω, the penalty's θ*, snapshots) is the
full network's. On CPU in fp32 the run is the uncached one up to summation order.

The cache is used only when it holds: every parameter outside the suffix frozen, no batch norm
outside it with a task's own statistics (a prefix that differs per task), and the features of every
row set within `budget` bytes; otherwise the job runs uncached.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from app.mas import task_statistics
from app.mas.networks import InputSpec, MultiHeadNet
from app.mas.passes import rows_per_pass
from app.mas.samples import LazySamples


class TrunkSplit(Protocol):
    """Where a trunk splits into a frozen prefix and the part that trains (from `Architecture.trunk_split`)."""

    def prefix(self, trunk: nn.Module, raw: Tensor) -> Tensor:
        """Raw batch → the suffix's input features, a row's independent of its batch (eval mode, no grad)."""

    def suffix(self, trunk: nn.Module) -> nn.Module:
        """The rest of `trunk` over those features, its submodules shared and named as in the trunk."""


@dataclass(frozen=True)
class CachedPrefix:
    split: TrunkSplit
    feature_spec: InputSpec

    def view(self, net: MultiHeadNet) -> MultiHeadNet:
        """`net` from the split on, taking cached features; its parameters are `net`'s, under `net`'s names."""
        return suffix_network(net, self.split.suffix(net.trunk), self.feature_spec)

    def features(self, net: MultiHeadNet, inputs: Tensor | LazySamples) -> Tensor:
        """The prefix's output for every row of `inputs`, computed once, in passes of as many raw rows as a
        pass of the whole trunk may take (app/mas/passes.py: more than the prefix holds), each written into
        the one output tensor (a list joined at the end would hold the features twice)."""
        rows = rows_per_pass(net, inputs)
        out: Tensor | None = None
        with torch.no_grad(), eval_mode(net.trunk):
            for start in range(0, inputs.shape[0], rows):
                part = self.split.prefix(net.trunk, net.input_spec.cast(inputs[start : start + rows]))
                if out is None:
                    out = torch.empty((inputs.shape[0], *part.shape[1:]), dtype=part.dtype, device=part.device)
                out[start : start + part.shape[0]] = part
        return out if out is not None else torch.zeros(0, *self.feature_spec.shape, device=inputs.device)


def suffix_network(net: MultiHeadNet, suffix: nn.Module, feature_spec: InputSpec) -> MultiHeadNet:
    view = MultiHeadNet(suffix, net.feature_dim, feature_spec)
    view.heads = net.heads  # the same ModuleDict: a head added or trained through the view is the network's
    view.architecture = net.architecture
    names = {name for name, _ in view.trunk.named_parameters(prefix="trunk")}
    view.freeze(net.frozen & names)
    view.train(net.training)
    return view


def cache_prefix(net: MultiHeadNet, split: TrunkSplit | None, row_sets: Sequence[Tensor | LazySamples],
                 budget: int) -> CachedPrefix | None:
    """A cache of `net`'s frozen prefix for these row sets, or None where the uncached path must run."""
    if split is None or budget <= 0 or not _prefix_is_fixed(net, split.suffix(net.trunk)):
        return None
    rows = sum(int(inputs.shape[0]) for inputs in _distinct(row_sets))
    probe_rows = next((inputs for inputs in row_sets if inputs.shape[0]), None)
    if probe_rows is None:
        return None
    with torch.no_grad(), eval_mode(net.trunk):
        probe = split.prefix(net.trunk, net.input_spec.cast(probe_rows[:1]))
    if rows * probe[0].numel() * probe.element_size() > budget:
        return None
    return CachedPrefix(split, InputSpec(tuple(probe.shape[1:]), probe.dtype))


def _prefix_is_fixed(net: MultiHeadNet, suffix: nn.Module) -> bool:
    """Every trunk parameter outside the suffix frozen, and no batch norm outside it with per-task statistics."""
    inside = {id(module) for module in suffix.modules()}
    shared = {id(p) for p in suffix.parameters()}
    for name, parameter in net.trunk.named_parameters(prefix="trunk"):
        if id(parameter) not in shared and name not in net.frozen:
            return False
    return not any(isinstance(module, task_statistics.PerTask) and len(module.task_statistics)
                   for module in net.trunk.modules() if id(module) not in inside)


def _distinct(row_sets: Sequence[Tensor | LazySamples]) -> list[Tensor | LazySamples]:
    return list({id(inputs): inputs for inputs in row_sets}.values())


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode for a while, each submodule's own flag restored afterwards (frozen layers stay in eval)."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training
