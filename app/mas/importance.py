"""Importance Ω of every parameter (MAS.md §1–2): how much the output moves when the parameter moves.

Everything here returns *sums* of |g| over samples with their count (an `ImportanceSum`), so that
accumulation across requests is an exact streaming mean (see accumulation.py).

The exact per-sample estimate costs about one batched backward pass: for a linear layer the
per-sample gradient is the outer product δ_k a_kᵀ, so Σ_k |δ_k a_kᵀ| = |Δ|ᵀ|A| (one matmul, no
per-sample tensors). Convolutions sum over positions before |·| and do not factor: their per-sample
gradients come from the unfolded input, one einsum per chunk. Parameters of any other layer type
fall back to torch.func's vmap over grad, which is exact but materialises N gradient copies; that
path is also kept callable as the reference (`estimate_importance_vmap`).

The network is put in eval mode while measuring (dropout off, batch-norm statistics untouched) and
only torch.autograd.grad is used, so θ, its buffers and its .grad are left exactly as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as functional
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap

from app.mas.networks import MultiHeadNet

VARIANTS = ("global", "local")
OUTPUTS = ("l2", "vector")
REDUCTIONS = ("per_sample", "batch")


@dataclass(frozen=True)
class ImportanceSum:
    """Σ_k |g(x_k)| for each parameter, and the number of samples k it sums over."""

    sums: dict[str, Tensor]
    n: int


def estimate_importance(
    net: MultiHeadNet,
    task: str,
    inputs: Tensor,
    *,
    variant: str = "global",
    output: str = "l2",
    reduction: str = "per_sample",
    chunk_size: int = 256,
) -> ImportanceSum:
    """Importance sums over `inputs` for the trunk and the named task's head, in bounded chunks.

    With reduction `batch`, each chunk is one batch of the reference implementations: |∇ Σ_k ‖F(x_k)‖²|,
    so the result depends on `chunk_size`, as theirs depends on their batch size.
    """
    _check_options(net, task, variant, output, reduction, chunk_size)
    if variant == "local":
        return _over_chunks(net, task, inputs, chunk_size, lambda x, _: _local_chunk(net, task, x, reduction))
    measure = _batch_chunk if reduction == "batch" else _per_sample_chunk
    return _over_chunks(net, task, inputs, chunk_size, lambda x, _: measure(net, task, x, output))


def squared_gradient_sums(
    net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, chunk_size: int = 256
) -> ImportanceSum:
    """Σ_k (∂ log p(y_k | x_k) / ∂θ)²: the diagonal of the empirical Fisher (EWC), exact per sample.

    The same factorisation as |g| holds for squares: (δ aᵀ)² = δ² (a²)ᵀ, so Σ_k g_k² = (Δ²)ᵀ(A²).
    """
    _check_options(net, task, "global", "l2", "per_sample", chunk_size)
    labels = labels.to(torch.int64)

    def measure(x: Tensor, rows: slice) -> dict[str, Tensor]:
        y = labels[rows]
        objective = lambda logits: functional.cross_entropy(logits, y, reduction="sum")  # noqa: E731
        sums = _factored_sums(net, task, x, objective, _square_sums)
        others = [name for name, _ in _measured_parameters(net, task) if name not in sums]
        if others:
            grads = _vmap_per_sample_grads(net, task, x, others, "cross_entropy", y)
            sums.update({name: g.square().sum(0) for name, g in grads.items()})
        return sums

    return _over_chunks(net, task, inputs, chunk_size, measure)


def estimate_importance_vmap(
    net: MultiHeadNet, task: str, inputs: Tensor, *, output: str = "l2", chunk_size: int = 256
) -> ImportanceSum:
    """Exact per-sample importance by vmap over grad for every parameter: slow, general, the reference."""
    _check_options(net, task, "global", output, "per_sample", chunk_size)

    def measure(x: Tensor, _: slice) -> dict[str, Tensor]:
        names = [name for name, _ in _measured_parameters(net, task)]
        return _reduce_per_sample(_vmap_per_sample_grads(net, task, x, names, output), output)

    return _over_chunks(net, task, inputs, chunk_size, measure)


def _check_options(net: MultiHeadNet, task: str, variant: str, output: str, reduction: str, chunk: int) -> None:
    if task not in net.heads:
        raise ValueError(f"the network has no head for task {task!r}")
    if variant not in VARIANTS or output not in OUTPUTS or reduction not in REDUCTIONS:
        raise ValueError(f"variant in {VARIANTS}, output in {OUTPUTS}, reduction in {REDUCTIONS}")
    if variant == "local" and output != "l2":
        raise ValueError("the local variant measures each layer's own squared output norm: output must be 'l2'")
    if chunk < 1:
        raise ValueError("chunk_size must be positive")


def _measured_parameters(net: MultiHeadNet, task: str) -> list[tuple[str, nn.Parameter]]:
    return list(net.task_parameters(task).items())


def _over_chunks(
    net: MultiHeadNet, task: str, inputs: Tensor, chunk_size: int, measure: Callable[[Tensor, slice], dict[str, Tensor]]
) -> ImportanceSum:
    inputs = net.input_spec.cast(inputs)
    if inputs.shape[1:] != net.input_shape:
        raise ValueError(f"inputs have shape {tuple(inputs.shape[1:])}, the network takes {net.input_shape}")
    totals = {name: torch.zeros_like(p) for name, p in _measured_parameters(net, task)}
    with _eval_mode(net):
        for start in range(0, inputs.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            for name, value in measure(inputs[rows], rows).items():
                totals[name] += value
    return ImportanceSum(sums=totals, n=int(inputs.shape[0]))


@contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


# --- the factorised exact path ------------------------------------------------------------------

def _is_factored(module: nn.Module) -> bool:
    """Linear and plain Conv2d layers: their per-sample |g| needs no per-sample autograd."""
    return isinstance(module, nn.Linear) or (
        isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
    )


def _factored_modules(net: MultiHeadNet, task: str) -> dict[str, nn.Module]:
    """The factored layers of the trunk and this task's head, by parameter prefix."""
    candidates = [*net.trunk.named_modules(prefix="trunk"), (f"heads.{task}", net.heads[task])]
    return {prefix: module for prefix, module in candidates if _is_factored(module)}


LayerRecord = tuple[nn.Module, Tensor, Tensor]  # (layer, its input A, its output Y)


def _record_layers(net: MultiHeadNet, task: str, x: Tensor) -> tuple[Tensor, dict[str, LayerRecord]]:
    """One forward pass that keeps each factored layer's input A and output Y."""
    records: dict[str, LayerRecord] = {}
    handles = []
    for prefix, module in _factored_modules(net, task).items():

        def keep(mod: nn.Module, args: tuple, out: Tensor, prefix: str = prefix) -> None:
            if prefix in records:
                raise RuntimeError(f"layer {prefix} runs twice in one forward pass: its gradient does not factor")
            records[prefix] = (mod, args[0], out)

        handles.append(module.register_forward_hook(keep))
    try:
        logits = net(x, task)
    finally:
        for handle in handles:
            handle.remove()
    return logits, records


def _unfolded(module: nn.Conv2d, a: Tensor) -> Tensor:
    """The conv input as [N, C·kh·kw, positions], so that the weight gradient is Δ · Aᵀ per sample."""
    return functional.unfold(
        a, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride
    )


def _as_positions(module: nn.Module, a: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """Input and output gradient as [N, positions, features]; positions is 1 for a plain linear layer."""
    n = a.shape[0]
    if isinstance(module, nn.Conv2d):
        return _unfolded(module, a).transpose(1, 2), delta.reshape(n, delta.shape[1], -1).transpose(1, 2)
    return a.reshape(n, -1, a.shape[-1]), delta.reshape(n, -1, delta.shape[-1])


def _per_sample_weight_grads(module: nn.Module, a: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample (weight, bias) gradients [N, *shape] for layers whose positions sum before |·|."""
    a_pos, d_pos = _as_positions(module, a, delta)
    g_weight = torch.einsum("npo,npi->noi", d_pos, a_pos).reshape(a.shape[0], *module.weight.shape)
    return g_weight, d_pos.sum(1)


_BLOCK = 128  # samples per block of per-sample gradients: small enough to stay in cache


def _blockwise_sums(
    module: nn.Module, a: Tensor, delta: Tensor, elementwise: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """Σ_k f(g(x_k)) for layers whose positions sum before f: per-sample gradients, a block at a time.

    One [N, out, in] tensor for the whole chunk is memory-bound to build and reduce; blocks of 128
    samples stay in cache, which made the CNN's exact Ω about 3× faster on a 2-core CPU.
    """
    weight_sum = torch.zeros_like(module.weight)
    bias_sum = torch.zeros(module.weight.shape[0], dtype=module.weight.dtype, device=module.weight.device)
    for start in range(0, a.shape[0], _BLOCK):
        rows = slice(start, start + _BLOCK)
        g_weight, g_bias = _per_sample_weight_grads(module, a[rows], delta[rows])
        weight_sum += elementwise(g_weight).sum(0)
        bias_sum += elementwise(g_bias).sum(0)
    return weight_sum, bias_sum


def _abs_sums(module: nn.Module, a: Tensor, delta: Tensor, a_nonnegative: bool = False) -> tuple[Tensor, Tensor]:
    """Σ_k |g_W(x_k)| and Σ_k |g_b(x_k)| for one layer, from its inputs A and output gradients Δ.

    An input that comes out of a ReLU is its own |A|: skipping that pass over the activations is a
    fifth of the exact estimate's time on a small MLP.
    """
    if isinstance(module, nn.Linear) and a.dim() == 2:
        delta_abs = delta.abs_()  # Δ is this call's own (a fresh gradient), so in place
        return delta_abs.T @ (a if a_nonnegative else a.abs()), delta_abs.sum(0)
    return _blockwise_sums(module, a, delta, Tensor.abs_)


def _square_sums(module: nn.Module, a: Tensor, delta: Tensor, _: bool = False) -> tuple[Tensor, Tensor]:
    """Σ_k g_W(x_k)² and Σ_k g_b(x_k)² for one layer."""
    if isinstance(module, nn.Linear) and a.dim() == 2:
        delta_squared = delta.square()
        return delta_squared.T @ a.square(), delta_squared.sum(0)
    return _blockwise_sums(module, a, delta, Tensor.square_)


def _norm_sums(
    module: nn.Module, a: Tensor, deltas: list[Tensor], a_nonnegative: bool = False
) -> tuple[Tensor, Tensor]:
    """Σ_k ‖∂F(x_k)/∂θ‖₂ over the outputs c, given one output gradient Δ^c per output."""
    if isinstance(module, nn.Linear) and a.dim() == 2:
        row_norm = torch.stack(deltas).square().sum(0).sqrt()  # ‖δ^c_{k,i}‖ over c; |a_kj| factors out
        return row_norm.T @ (a if a_nonnegative else a.abs()), row_norm.sum(0)
    sq_weight = sq_bias = None
    for delta in deltas:
        g_weight, g_bias = _per_sample_weight_grads(module, a, delta)
        sq_weight = g_weight.square() if sq_weight is None else sq_weight + g_weight.square()
        sq_bias = g_bias.square() if sq_bias is None else sq_bias + g_bias.square()
    return sq_weight.sqrt().sum(0), sq_bias.sqrt().sum(0)


def _as_parameter_sums(
    records: dict[str, LayerRecord], per_layer: dict[str, tuple[Tensor, Tensor]]
) -> dict[str, Tensor]:
    sums = {}
    for prefix, (weight_sum, bias_sum) in per_layer.items():
        sums[f"{prefix}.weight"] = weight_sum.detach()
        if records[prefix][0].bias is not None:
            sums[f"{prefix}.bias"] = bias_sum.detach()
    return sums


def _factored_sums(
    net: MultiHeadNet, task: str, x: Tensor, objective: Callable[[Tensor], Tensor],
    layer_sums: Callable[[nn.Module, Tensor, Tensor, bool], tuple[Tensor, Tensor]],
) -> dict[str, Tensor]:
    """Per-sample sums for every factored layer from one forward and one backward of Σ_k objective_k.

    Samples do not mix in eval mode, so the gradient of the summed objective at a layer's output holds
    every sample's own δ_k at once.
    """
    logits, records = _record_layers(net, task, x)
    deltas = torch.autograd.grad(objective(logits), [r[2] for r in records.values()])
    nonnegative = _nonnegative_inputs(net, task)
    per_layer = {
        p: layer_sums(r[0], r[1], d, p in nonnegative) for (p, r), d in zip(records.items(), deltas, strict=True)
    }
    return _as_parameter_sums(records, per_layer)


def _per_sample_chunk(net: MultiHeadNet, task: str, x: Tensor, output: str) -> dict[str, Tensor]:
    if output == "l2":
        sums = _factored_sums(net, task, x, lambda logits: logits.square().sum(), _abs_sums)
    else:
        logits, records = _record_layers(net, task, x)
        layer_outputs = [r[2] for r in records.values()]
        per_output = [
            torch.autograd.grad(logits[:, c].sum(), layer_outputs, retain_graph=True) for c in range(logits.shape[1])
        ]
        nonnegative = _nonnegative_inputs(net, task)
        per_layer = {
            p: _norm_sums(r[0], r[1], [grads[i] for grads in per_output], p in nonnegative)
            for i, (p, r) in enumerate(records.items())
        }
        sums = _as_parameter_sums(records, per_layer)
    others = [name for name, _ in _measured_parameters(net, task) if name not in sums]
    if others:
        sums.update(_reduce_per_sample(_vmap_per_sample_grads(net, task, x, others, output), output))
    return sums


# --- the reference-library estimate ---------------------------------------------------------------


def _batch_chunk(net: MultiHeadNet, task: str, x: Tensor, output: str) -> dict[str, Tensor]:
    """|∇ of the batch's summed objective|: what the authors' code, Avalanche and FACIL compute (×N)."""
    named = _measured_parameters(net, task)
    params = [p for _, p in named]
    logits = net(x, task)
    if output == "l2":
        grads = torch.autograd.grad(logits.square().sum(), params)
        values = [g.abs() for g in grads]
    else:
        squares = [torch.zeros_like(p) for p in params]
        for c in range(logits.shape[1]):
            grads = torch.autograd.grad(logits[:, c].sum(), params, retain_graph=True)
            for square, g in zip(squares, grads, strict=True):
                square += g.square()
        values = [s.sqrt() for s in squares]
    return {name: v.detach() for (name, _), v in zip(named, values, strict=True)}


# --- local (Hebbian) MAS ----------------------------------------------------------------------------


def _nonnegative_inputs(net: MultiHeadNet, task: str) -> set[str]:
    """The factored layers whose input is the output of a ReLU (through pooling or flattening only)."""
    found, nonnegative = set(), False
    for name, module in net.trunk.named_children():
        if _is_factored(module):
            if nonnegative:
                found.add(f"trunk.{name}")
            nonnegative = False
        elif isinstance(module, nn.ReLU):
            nonnegative = True
        elif not isinstance(module, nn.MaxPool2d | nn.Flatten):
            nonnegative = False  # any other layer: no longer known
    if nonnegative:
        found.add(f"heads.{task}")
    return found


def _activations_after(net: MultiHeadNet, task: str) -> dict[str, bool]:
    """For each factored layer, whether a ReLU follows it inside the same Sequential."""
    followed = {}
    children = list(net.trunk.named_children())
    for i, (name, module) in enumerate(children):
        if _is_factored(module):
            followed[f"trunk.{name}"] = i + 1 < len(children) and isinstance(children[i + 1][1], nn.ReLU)
    followed[f"heads.{task}"] = False
    return followed


def _local_chunk(net: MultiHeadNet, task: str, x: Tensor, reduction: str) -> dict[str, Tensor]:
    """Each layer's |∂‖z‖²/∂θ| with its input held fixed, z its output after its activation.

    ∂‖z‖²/∂y = 2 z ⊙ act'(y): for ReLU that is 2·relu(y), for no activation 2y, so the weight's
    importance is the Hebbian product 2 |z|ᵀ|a| of post- and pre-synaptic activity (MAS.md §2).
    """
    with torch.no_grad():
        _, records = _record_layers(net, task, x)
        relu_after = _activations_after(net, task)
        sums = {}
        for prefix, (module, a, y) in records.items():
            delta = 2 * (y.clamp_min(0) if relu_after.get(prefix, False) else y)
            if reduction == "per_sample":
                weight_sum, bias_sum = _abs_sums(module, a, delta)
            else:
                g_weight, g_bias = _per_sample_weight_grads(module, a, delta)
                weight_sum, bias_sum = g_weight.sum(0).abs(), g_bias.sum(0).abs()
            sums[f"{prefix}.weight"] = weight_sum
            if module.bias is not None:
                sums[f"{prefix}.bias"] = bias_sum
    missing = [name for name, _ in _measured_parameters(net, task) if name not in sums]
    if missing:
        raise ValueError(f"the local variant covers linear and convolution layers only, not {missing}")
    return sums


# --- vmap over grad: the general fallback and the reference ---------------------------------------


def _vmap_per_sample_grads(
    net: MultiHeadNet, task: str, x: Tensor, names: list[str], output: str, labels: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-sample gradients [N, *shape] of ‖F‖² ("l2") or of the log-loss ("cross_entropy", with labels),
    or Jacobians [N, C, *shape] ("vector"), for the named parameters."""
    state = {name: t.detach() for name, t in net.named_parameters()}
    state.update({name: t.detach() for name, t in net.named_buffers()})
    chosen = {name: state[name] for name in names}

    def logits_of(params: dict[str, Tensor], sample: Tensor) -> Tensor:
        return functional_call(net, {**state, **params}, (sample.unsqueeze(0), task)).squeeze(0)

    if output == "cross_entropy":
        def log_loss(params: dict[str, Tensor], sample: Tensor, label: Tensor) -> Tensor:
            return functional.cross_entropy(logits_of(params, sample).unsqueeze(0), label.unsqueeze(0))

        return vmap(grad(log_loss), in_dims=(None, 0, 0))(chosen, x, labels)
    if output == "l2":
        per_sample = vmap(grad(lambda params, sample: logits_of(params, sample).square().sum()), in_dims=(None, 0))
    else:
        per_sample = vmap(jacrev(logits_of), in_dims=(None, 0))
    return per_sample(chosen, x)


def _reduce_per_sample(grads: dict[str, Tensor], output: str) -> dict[str, Tensor]:
    if output == "l2":
        return {name: g.abs().sum(0) for name, g in grads.items()}
    return {name: g.flatten(2).norm(dim=1).sum(0).reshape(g.shape[2:]) for name, g in grads.items()}
