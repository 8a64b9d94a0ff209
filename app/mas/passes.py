"""How many rows one inference pass may take: bounded by the activations the pass holds, not by its inputs.

Every forward pass without a graph (evaluation, predictions on a CPU, a task-free answer's features, LwF's
recorded outputs, the frozen prefix a job computes once) goes through the rows a chunk at a time. Sizing
the chunk by its inputs alone (64 MiB of them) let a 224-px EfficientNet pass take 111 images, and such a
pass holds about 29× its input at its peak (its widest layer, 96 channels at 112×112, and the tensors
around it): about 1.8 GiB, where a train job otherwise holds a batch of 32. So each network is probed once
per input shape with one row: the bytes of the largest output any of its layers gives. An eval-mode pass
holds a few such tensors at once (a layer's input and output, a residual branch; measured: about 3.5× the
largest on EfficientNet-Lite0, under 2× on MiniLM), so a row is counted at `PEAK_PER_WIDEST` times it,
and a pass takes as many rows as fit in the budget: 512 MiB on a CPU (27 images of EfficientNet-Lite0 at
224 px, 170 texts of MiniLM at 128 tokens), the device's activation budget on a GPU. Rows of one pass are
independent in eval mode, so the chunking changes memory and speed, not what is computed (up to the
summation order of a matrix product over a different number of rows).

The probe's hooks are on the network itself: a pass of the same network in another thread while it is
probed (the API's network cache serves requests from a thread pool) is seen by them too, and its larger
outputs make the remembered size too large, so that network's passes of that shape are smaller than they
need to be. That costs speed, never memory or answers, and only happens on a shape's first request.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from app.mas.devices import activation_budget, device_of
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples

MAX_ROWS = 4096  # rows per pass at most, whatever the network
MAX_INPUT_BYTES = 1 << 26  # and at most 64 MiB of inputs in one pass
CPU_PASS_BUDGET = 1 << 29  # bytes of activations one inference pass may hold on a CPU
PEAK_PER_WIDEST = 4  # a pass's peak per row, in multiples of its widest layer output

_widest: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], int]] = weakref.WeakKeyDictionary()


def widest_output_bytes(net: MultiHeadNet, inputs: Tensor | LazySamples) -> int:
    """The bytes of the largest tensor one of `net.trunk`'s layers outputs for one row of `inputs`: measured
    once per network and input shape (a one-row forward pass in eval mode), then remembered."""
    shape = tuple(int(size) for size in inputs.shape[1:])
    known = _widest.setdefault(net.trunk, {})
    if shape not in known:
        known[shape] = _measure_widest(net, inputs[:1])
    return known[shape]


def _measure_widest(net: MultiHeadNet, row: Tensor) -> int:
    was_training = net.trunk.training
    net.trunk.eval()
    try:
        with torch.inference_mode():
            sizes = leaf_output_bytes(net.trunk, lambda: net.trunk(net.input_spec.cast(row).to(device_of(net))))
    finally:
        net.trunk.train(was_training)
    return max(sizes, default=0)


def leaf_output_bytes(module: nn.Module, forward: Callable[[], object]) -> list[int]:
    """The bytes of every tensor a leaf module of `module` outputs while `forward()` runs, in call order:
    what sizes a pass (its widest output here, their sum for a pass that keeps them for a backward)."""
    sizes: list[int] = []

    def note(_: nn.Module, __: tuple, output: object) -> None:
        if isinstance(output, Tensor):
            sizes.append(output.numel() * output.element_size())

    handles = [leaf.register_forward_hook(note) for leaf in module.modules() if next(leaf.children(), None) is None]
    try:
        forward()
    finally:
        for handle in handles:
            handle.remove()
    return sizes


def rows_per_pass(net: MultiHeadNet, inputs: Tensor | LazySamples) -> int:
    """Rows of `inputs` that one inference pass of `net` takes (see the module's docstring)."""
    if inputs.shape[0] == 0:
        return MAX_ROWS
    input_bytes = max(1, math.prod(inputs.shape[1:]) * 4)
    device = device_of(net)
    budget = CPU_PASS_BUDGET if device.type == "cpu" else activation_budget(device)
    per_row = max(1, PEAK_PER_WIDEST * widest_output_bytes(net, inputs))
    return max(1, min(MAX_ROWS, MAX_INPUT_BYTES // input_bytes, budget // per_row))
