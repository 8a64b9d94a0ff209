"""Σ_k f(g_k) over samples for the parameters of common layers, from their calls alone (MAS.md §6).

The per-sample gradient of a layer's weight has the arithmetic of the batch weight gradient without
its sum over samples: for a linear layer on a sequence g_k = Σ_t δ_{k,t} a_{k,t}ᵀ (a batched matmul),
for a convolution the weight gradient of each sample (one grouped convolution backward, with the
samples as groups), for an embedding Σ of δ over each token's positions per sample, for layer and
eval-mode batch norm Σ_positions δ ⊙ x̂ and Σ_positions δ. f is |·| (MAS), ·² (the Fisher of EWC),
the norm over outputs (MAS's vector variant) or the identity (a batch gradient, for local MAS).

Memory stays bounded: dense per-sample gradients are built a block of samples at a time (at most
`block_elements` of the device, which on a CPU also keeps a block in cache), an embedding never holds
more than one row per (sample, distinct token) of the chunk, and norm parameters hold one [samples, features] tensor.
The rank-1 shortcut Σ_k |δ_k a_kᵀ| = |Δ|ᵀ|A| is used only where it holds: one call, one position.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as functional
from torch import Tensor

from app.mas.devices import activation_budget
from app.mas.layer_calls import LayerCall

MODES = ("abs", "square", "norm", "sum")
_CPU_BLOCK = 1 << 23  # elements of one block of per-sample gradients on a CPU (32 MiB in float32): 12 samples
# of a 384×1536 weight; 3 samples a block (8 MiB) made the matmuls 2.5× slower on a 2-core CPU

# How a depthwise convolution's per-sample weight gradients are computed, per device type: one grouped
# convolution backward ("grouped") or a multiply-and-sum per kernel tap ("shifted"). Both are exact; on a
# 2-core CPU the grouped form was 1.2–5× faster on EfficientNet-Lite0's depthwise layers (benchmarks/gpu_speed.py
# measures both on the device it runs on).
DEPTHWISE_FORM: dict[str, str] = {"cpu": "grouped", "cuda": "grouped", "mps": "grouped"}


def block_elements(device: torch.device) -> int:
    """Elements of one block of per-sample gradients: on a CPU what stays near the caches, on a GPU a
    share of its free memory (an eighth of the activation budget), so that a block is a whole chunk and
    a layer costs a few large kernels rather than one small matmul per dozen samples."""
    return _CPU_BLOCK if device.type != "cuda" else max(_CPU_BLOCK, activation_budget(device) // 32)

Use = tuple[LayerCall, str, list[Tensor]]  # a call, the parameter's role in it, δ at its output per model output


def elementwise(grads: Iterable[Tensor], mode: str) -> Tensor:
    """f of per-sample gradients, given one gradient per model output (one for every mode but `norm`).

    The gradients are this module's own fresh tensors, so they are overwritten in place.
    """
    grads = iter(grads)
    if mode == "norm":
        squares = next(grads).square_()
        for g in grads:
            squares.addcmul_(g, g)
        return squares.sqrt_()
    first = next(grads)
    return {"abs": Tensor.abs_, "square": Tensor.square_, "sum": lambda g: g}[mode](first)


def parameter_sums(uses: list[Use], mode: str, nonnegative_input: bool = False) -> Tensor:
    """Σ_k f(g_k) for one parameter, over every call that used it (a shared weight sums its calls per sample)."""
    call, role, _ = uses[0]
    if call.kind == "embedding":
        return _embedding_sums(uses, mode)
    if role == "bias" or call.kind in ("layer_norm", "batch_norm"):
        return elementwise(_summed_over_uses(uses, _small_grads), mode).sum(0)
    positions = call.inputs[0].numel() // call.inputs.shape[-1]
    if call.kind == "linear" and len(uses) == 1 and positions == 1:
        return _rank_one_sums(call, uses[0][2], mode, nonnegative_input)
    return _dense_sums(uses, mode)


def _summed_over_uses(uses: list[Use], grads_of: Callable[[LayerCall, str, Tensor], Tensor]) -> Iterable[Tensor]:
    """Per model output c, Σ over calls of the per-sample gradient that `grads_of` gives for one call."""
    for c in range(len(uses[0][2])):
        grads = [grads_of(call, role, deltas[c]) for call, role, deltas in uses]
        for g in grads[1:]:
            grads[0] += g  # each is a fresh tensor: no copy for the usual single call
        yield grads[0]


def _small_grads(call: LayerCall, role: str, delta: Tensor) -> Tensor:
    """[N, *shape] per-sample gradients of biases and norm affine parameters (one row per sample is cheap)."""
    n, x = delta.shape[0], call.inputs
    if call.kind == "layer_norm":
        shape = tuple(call.options["normalized_shape"])
        dims = tuple(range(x.dim() - len(shape), x.dim()))
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        product = delta if role == "bias" else delta * (x - mean) * torch.rsqrt(var + call.options["eps"])
        return product.reshape(n, -1, *shape).sum(1)
    if call.kind == "linear":
        return delta.reshape(n, -1, delta.shape[-1]).sum(1)
    if call.kind == "conv" or role == "bias":
        return delta.reshape(n, delta.shape[1], -1).sum(2)
    channel = (1, -1) + (1,) * (x.dim() - 2)  # batch norm in eval mode: x̂ from the running statistics
    mean, var = call.options["running_mean"].view(channel), call.options["running_var"].view(channel)
    return (delta * (x - mean) * torch.rsqrt(var + call.options["eps"])).reshape(n, delta.shape[1], -1).sum(2)


def _rank_one_sums(call: LayerCall, deltas: list[Tensor], mode: str, nonnegative_input: bool) -> Tensor:
    """One position per sample: g_k = δ_k a_kᵀ, so f(g_k) = f(δ_k) f(a_k)ᵀ and the sum is one matmul."""
    a = call.inputs.reshape(call.inputs.shape[0], -1)
    rows = elementwise((d.reshape(a.shape[0], -1).clone() for d in deltas), mode)
    if mode == "square":
        a = a.square()
    elif mode != "sum" and not nonnegative_input:  # an input out of a ReLU is its own |a|
        a = a.abs()
    return rows.T @ a


def _dense_sums(uses: list[Use], mode: str) -> Tensor:
    """Linear weights on sequences and convolution weights: per-sample gradients a block of samples at a time."""
    call, role, _ = uses[0]
    weight = call.options[role]
    n = call.inputs.shape[0]
    block = max(1, block_elements(weight.device) // weight.numel())
    total = torch.zeros_like(weight, memory_format=torch.contiguous_format)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        grads = _summed_over_uses(uses, lambda c, _, delta, rows=rows: _weight_grads(c, delta, rows))
        total += elementwise(grads, mode).sum(0)
    return total


def _weight_grads(call: LayerCall, delta: Tensor, rows: slice) -> Tensor:
    """[b, *weight.shape]: each sample's own weight gradient for the samples in `rows`."""
    weight = call.options["weight"]
    if call.kind == "linear":
        a = call.inputs[rows].reshape(-1, math.prod(call.inputs.shape[1:-1]), weight.shape[1])
        d = delta[rows].reshape(a.shape[0], a.shape[1], -1)
        return torch.bmm(d.transpose(1, 2), a)
    return _conv_weight_grads(call, delta[rows], call.inputs[rows])


def _conv_weight_grads(call: LayerCall, delta: Tensor, x: Tensor) -> Tensor:
    """The samples become groups of one convolution backward: b·groups groups give b weight gradients.
    A depthwise convolution (one input channel per group) may take the shifted-product form instead
    (DEPTHWISE_FORM)."""
    weight, options = call.options["weight"], call.options
    spatial = weight.dim() - 2
    stride, padding, dilation = (_tuple(options[k], spatial) for k in ("stride", "padding", "dilation"))
    if isinstance(options["padding"], str):
        x, padding = _padded(x, weight.shape[2:], dilation, options["padding"]), (0,) * spatial
    b, groups = x.shape[0], options["groups"]
    if weight.shape[1] == 1 and groups == x.shape[1] and spatial == 2 and DEPTHWISE_FORM[x.device.type] == "shifted":
        return _depthwise_weight_grads(weight, delta, x, stride, padding, dilation)
    shape = (b * weight.shape[0], *weight.shape[1:])
    grads = torch.ops.aten.convolution_backward(
        delta.reshape(1, -1, *delta.shape[2:]), x.reshape(1, -1, *x.shape[2:]), delta.new_empty(1).expand(shape),
        None, stride, padding, dilation, False, (0,) * spatial, b * groups, (False, True, False),
    )[1]
    return grads.view(b, *weight.shape)


def _depthwise_weight_grads(weight: Tensor, delta: Tensor, x: Tensor, stride: tuple, padding: tuple,
                            dilation: tuple) -> Tensor:
    """[b, C_out, 1, kh, kw] for a depthwise 2-d convolution: g[n, o, 0, i, j] = Σ_{h,w} δ[n, o, h, w] ·
    x_pad[n, o // m, h·s + i·d, w·s + j·d] (m output channels per input channel). One multiply-and-sum per
    kernel tap over the whole block: kh·kw large kernels, where a convolution backward with b·C groups of
    one channel each runs b·C tiny convolutions (on a GPU, thousands of launches' worth of work per layer)."""
    x = functional.pad(x, (padding[1], padding[1], padding[0], padding[0])) if any(padding) else x
    multiplier = weight.shape[0] // x.shape[1]
    if multiplier > 1:
        x = x.repeat_interleave(multiplier, dim=1)
    (kh, kw), (h_out, w_out) = weight.shape[2:], delta.shape[2:]
    grads = delta.new_empty(delta.shape[0], weight.shape[0], kh * kw)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            window = x[:, :, top : top + stride[0] * (h_out - 1) + 1 : stride[0],
                       left : left + stride[1] * (w_out - 1) + 1 : stride[1]]
            torch.sum(window * delta, dim=(2, 3), out=grads[:, :, i * kw + j])
    return grads.view(delta.shape[0], weight.shape[0], 1, kh, kw)


def _tuple(value: int | tuple | str, spatial: int) -> tuple:
    return (value,) * spatial if isinstance(value, int) else tuple(value) if not isinstance(value, str) else ()


def _padded(x: Tensor, kernel: tuple[int, ...], dilation: tuple[int, ...], mode: str) -> Tensor:
    """padding='same' as torch does it: total d·(k−1) per dimension, the odd one on the right."""
    if mode == "valid":
        return x
    pads: list[int] = []
    for k, d in zip(reversed(kernel), reversed(dilation), strict=True):
        total = d * (k - 1)
        pads += [total // 2, total - total // 2]
    return functional.pad(x, pads)


def _embedding_sums(uses: list[Use], mode: str) -> Tensor:
    """Per (sample, token): Σ of δ over the positions of that token in that sample, f, then Σ over samples.

    Rows are keyed by sample·vocab + token, so the largest tensor is one row per distinct (sample, token)
    pair of the chunk, never [batch, vocab, dim]; padding_idx rows get no gradient, as in autograd.
    """
    weight = uses[0][0].options["weight"]
    vocab, dim = weight.shape
    keys, deltas = [], [[] for _ in uses[0][2]]
    for call, _, call_deltas in uses:
        ids = call.inputs.reshape(call.inputs.shape[0], -1)
        key = (torch.arange(ids.shape[0], device=ids.device)[:, None] * vocab + ids).reshape(-1)
        padding = call.options["padding_idx"]
        keep = slice(None) if padding is None else ids.reshape(-1) != padding % vocab
        keys.append(key[keep])
        for c, delta in enumerate(call_deltas):
            deltas[c].append(delta.reshape(-1, dim)[keep])
    unique, inverse = torch.unique(torch.cat(keys), return_inverse=True)
    per_pair = (
        torch.zeros(len(unique), dim, dtype=weight.dtype, device=weight.device).index_add_(0, inverse, torch.cat(d))
        for d in deltas
    )
    total = torch.zeros(vocab, dim, dtype=weight.dtype, device=weight.device)
    return total.index_add_(0, unique % vocab, elementwise(per_pair, mode))
