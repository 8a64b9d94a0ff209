"""Importance Ω of every parameter (MAS.md §1–2): how much the output moves when the parameter moves.

Everything here returns *sums* of |g| over samples with their count (an `ImportanceSum`), so that
accumulation across requests is an exact streaming mean (see accumulation.py).

The exact per-sample estimate costs about one batched backward pass (MAS.md §6): one forward pass
records every layer call on a measured parameter (layer_calls.py), one backward pass of the summed
objective gives each call's output gradient, which holds every sample's own δ_k, and the per-sample
gradients of linear (also on sequences), convolution (also grouped and depthwise), embedding, layer
norm and eval-mode batch norm parameters follow from each call's input and δ alone, a block of samples
at a time (per_sample_layers.py). Parameters with no such rule (a raw parameter used in forward, a
weight used by an operation that has none) fall back to torch.func's vmap over grad, which is exact
but materialises N gradient copies; their names come back in `ImportanceSum.fallback` so that a job
can log a slow layer. vmap is also kept callable as the reference (`estimate_importance_vmap`).

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

from app.mas.devices import activation_budget, device_of
from app.mas.layer_calls import Recording, record_calls
from app.mas.networks import MultiHeadNet
from app.mas.passes import leaf_output_bytes
from app.mas.per_sample_layers import Use, parameter_sums

VARIANTS = ("global", "local")
OUTPUTS = ("l2", "vector")
REDUCTIONS = ("per_sample", "batch")


@dataclass(frozen=True)
class ImportanceSum:
    """Σ_k |g(x_k)| for each parameter, and the number of samples k it sums over.

    `fallback` names the parameters that had no per-sample rule and went through vmap over grad.
    """

    sums: dict[str, Tensor]
    n: int
    fallback: tuple[str, ...] = ()


BATCH_CHUNK_ROWS = 256  # the reference libraries' batch: what `batch` reduction sums over by default
# Rows one chunk may hold at most, per device type, when the caller names no chunk size; fewer when the
# device's activation budget (devices.activation_budget) says so. A GPU needs large chunks to be busy.
MAX_CHUNK_ROWS = {"cpu": 256, "cuda": 4096}
Measured = tuple[dict[str, Tensor], list[str]]  # one chunk's sums, and the parameters measured by vmap


def estimate_importance(
    net: MultiHeadNet,
    task: str,
    inputs: Tensor,
    *,
    variant: str = "global",
    output: str = "l2",
    reduction: str = "per_sample",
    chunk_size: int | None = None,
) -> ImportanceSum:
    """Importance sums over `inputs` for the trunk and the named task's head, in bounded chunks.

    `chunk_size` caps the rows of one chunk (default: the device's MAX_CHUNK_ROWS, fewer where the
    activations would pass the device's budget; per-sample sums do not depend on it). With reduction
    `batch`, each chunk is one batch of the reference implementations: |∇ Σ_k ‖F(x_k)‖²|, so the result
    depends on `chunk_size` (default BATCH_CHUNK_ROWS), as theirs depends on their batch size.
    """
    fixed = reduction == "batch"  # the reference estimate depends on its batch: its chunks are never resized
    if chunk_size is None:
        chunk_size = BATCH_CHUNK_ROWS if fixed else _max_chunk_rows(net)
    _check_options(net, task, variant, output, reduction, chunk_size)
    if variant == "local":
        return _over_chunks(net, task, inputs, chunk_size, lambda x, _: _local_chunk(net, task, x, reduction),
                            fixed_chunks=fixed)
    measure = _batch_chunk if reduction == "batch" else _per_sample_chunk
    return _over_chunks(net, task, inputs, chunk_size, lambda x, _: measure(net, task, x, output),
                        fixed_chunks=fixed)


def squared_gradient_sums(
    net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, chunk_size: int | None = None
) -> ImportanceSum:
    """Σ_k (∂ log p(y_k | x_k) / ∂θ)²: the diagonal of the empirical Fisher (EWC), exact per sample.

    The same per-sample layer gradients as MAS's Ω, squared instead of |·| (for one position,
    (δ aᵀ)² = δ² (a²)ᵀ, so Σ_k g_k² = (Δ²)ᵀ(A²)).
    """
    chunk_size = chunk_size or _max_chunk_rows(net)
    _check_options(net, task, "global", "l2", "per_sample", chunk_size)
    labels = labels.to(torch.int64)

    def measure(x: Tensor, rows: slice) -> Measured:
        y = labels[rows]
        objective = lambda logits: [functional.cross_entropy(logits, y, reduction="sum")]  # noqa: E731
        sums, others = _exact_sums(net, task, x, objective, "square")
        if others:
            grads = _vmap_per_sample_grads(net, task, x, others, "cross_entropy", y)
            sums.update({name: g.square().sum(0) for name, g in grads.items()})
        return sums, others

    return _over_chunks(net, task, inputs, chunk_size, measure)


def estimate_importance_vmap(
    net: MultiHeadNet, task: str, inputs: Tensor, *, output: str = "l2", chunk_size: int = BATCH_CHUNK_ROWS
) -> ImportanceSum:
    """Exact per-sample importance by vmap over grad for every parameter: slow, general, the reference."""
    _check_options(net, task, "global", output, "per_sample", chunk_size)

    def measure(x: Tensor, _: slice) -> Measured:
        names = [name for name, _ in _measured_parameters(net, task)]
        return _reduce_per_sample(_vmap_per_sample_grads(net, task, x, names, output), output), []

    return _over_chunks(net, task, inputs, chunk_size, measure)


def fallback_parameters(net: MultiHeadNet, task: str, inputs: Tensor | None = None) -> list[str]:
    """The measured parameters that exact per-sample Ω sends to vmap over grad (slow), for a job's log.

    Found from one forward pass on `inputs` (by default two all-zero samples of the network's input).
    """
    if inputs is None:
        device = next(net.parameters()).device
        inputs = torch.zeros(2, *net.input_shape, dtype=net.input_spec.dtype, device=device)
    with _eval_mode(net):
        return _record(net, task, net.input_spec.cast(inputs)).fallback


def _max_chunk_rows(net: MultiHeadNet) -> int:
    return MAX_CHUNK_ROWS.get(device_of(net).type, MAX_CHUNK_ROWS["cpu"])


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
    net: MultiHeadNet, task: str, inputs: Tensor, chunk_size: int, measure: Callable[[Tensor, slice], Measured],
    *, fixed_chunks: bool = False,
) -> ImportanceSum:
    inputs = net.input_spec.cast(inputs)
    if inputs.shape[1:] != net.input_shape:
        raise ValueError(f"inputs have shape {tuple(inputs.shape[1:])}, the network takes {net.input_shape}")
    totals = {name: torch.zeros_like(p) for name, p in _measured_parameters(net, task)}
    fallback: dict[str, None] = {}
    with _eval_mode(net), full_float32():
        if not fixed_chunks:
            chunk_size = _rows_within_budget(net, task, inputs, chunk_size)
        for start in range(0, inputs.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            sums, others = measure(inputs[rows], rows)
            fallback.update(dict.fromkeys(others))
            for name, value in sums.items():
                totals[name] += value
    return ImportanceSum(sums=totals, n=int(inputs.shape[0]), fallback=tuple(fallback))


def _rows_within_budget(net: MultiHeadNet, task: str, inputs: Tensor, chunk_size: int) -> int:
    """At most `chunk_size` rows, and few enough that a chunk's activations, kept for the backward pass
    and the per-sample rules (about 3× the forward's outputs), stay within the device's activation
    budget (2 GiB on a CPU, a share of the free memory on a GPU). Per-sample sums do not depend on the
    chunking, so this changes nothing but memory and speed: 256 images of EfficientNet at 224 px, or
    256 texts of MiniLM at 128 tokens, would hold several GiB at once."""
    probe = inputs[: min(2, inputs.shape[0])]
    if probe.shape[0] == 0:
        return chunk_size
    with torch.no_grad():
        total = sum(leaf_output_bytes(net, lambda: net(probe, task)))
    per_row = max(1, 3 * total // probe.shape[0])
    return max(1, min(chunk_size, activation_budget(device_of(net)) // per_row))


@contextmanager
def full_float32() -> Iterator[None]:
    """No TF32 while measuring: on Ampere and later GPUs cuDNN convolutions use it by default, which
    would make Ω on a GPU differ from the CPU's by about 1e-3 relative. Ω is always exact fp32."""
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


@contextmanager
def _eval_mode(net: nn.Module) -> Iterator[None]:
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


# --- the exact per-sample path (MAS.md §6) ---------------------------------------------------------


def _is_factored(module: nn.Module) -> bool:
    """Linear and convolution layers: where the local variant's Hebbian rule and the ReLU shortcut apply."""
    return isinstance(module, nn.Linear | nn.Conv2d)


def _record(net: MultiHeadNet, task: str, x: Tensor) -> Recording:
    return record_calls(lambda: net(x, task), net.task_parameters(task), x.shape[0])


def _layer_uses(recording: Recording, deltas: list[list[Tensor]]) -> dict[str, list[Use]]:
    """For each exactly measured parameter, its calls with the output gradients there (one per model output)."""
    return {
        name: [(recording.calls[i], role, [d[i] for d in deltas]) for i, role in uses]
        for name, uses in recording.uses.items()
    }


def _output_gradients(objective: Tensor, recording: Recording, retain_graph: bool = False) -> list[Tensor]:
    """δ at every recorded call's output: samples do not mix in eval mode, so one backward of the summed
    objective holds every sample's own δ_k, and it stops at the first trainable call (no weight gradients)."""
    outputs = [call.output for call in recording.calls]
    if not outputs:
        return []
    grads = torch.autograd.grad(objective, outputs, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(o) if g is None else g for o, g in zip(outputs, grads, strict=True)]


def _exact_sums(
    net: MultiHeadNet, task: str, x: Tensor, objectives: Callable[[Tensor], list[Tensor]], mode: str
) -> tuple[dict[str, Tensor], list[str]]:
    """Σ_k f(g_k) for every parameter with a per-sample rule, and the names of those without one."""
    recording = _record(net, task, x)
    targets = objectives(recording.logits)
    deltas = [_output_gradients(t, recording, retain_graph=i + 1 < len(targets)) for i, t in enumerate(targets)]
    nonnegative = _nonnegative_inputs(net, task)
    sums = {
        name: parameter_sums(uses, mode, name.rsplit(".", 1)[0] in nonnegative).detach()
        for name, uses in _layer_uses(recording, deltas).items()
    }
    return sums, recording.fallback


def _per_sample_chunk(net: MultiHeadNet, task: str, x: Tensor, output: str) -> Measured:
    if output == "l2":
        sums, others = _exact_sums(net, task, x, lambda logits: [logits.square().sum()], "abs")
    else:
        columns = lambda logits: [logits[:, c].sum() for c in range(logits.shape[1])]  # noqa: E731
        sums, others = _exact_sums(net, task, x, columns, "norm")
    if others:
        sums.update(_reduce_per_sample(_vmap_per_sample_grads(net, task, x, others, output), output))
    return sums, others


# --- the reference-library estimate ---------------------------------------------------------------


def _batch_chunk(net: MultiHeadNet, task: str, x: Tensor, output: str) -> Measured:
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
    return {name: v.detach() for (name, _), v in zip(named, values, strict=True)}, []


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


def _local_chunk(net: MultiHeadNet, task: str, x: Tensor, reduction: str) -> Measured:
    """Each layer's |∂‖z‖²/∂θ| with its input held fixed, z its output after its activation.

    ∂‖z‖²/∂y = 2 z ⊙ act'(y): for ReLU that is 2·relu(y), for no activation 2y, so the weight's
    importance is the Hebbian product 2 |z|ᵀ|a| of post- and pre-synaptic activity (MAS.md §2).
    """
    with torch.no_grad():
        recording = _record(net, task, x)
    kinds = {name: {recording.calls[i].kind for i, _ in uses} for name, uses in recording.uses.items()}
    missing = [name for name in net.task_parameters(task) if not kinds.get(name, {"none"}) <= {"linear", "conv"}]
    if missing:
        raise ValueError(f"the local variant covers linear and convolution layers only, not {missing}")
    layer_of = {i: name.rsplit(".", 1)[0] for name, uses in recording.uses.items() for i, r in uses if r == "weight"}
    relu_after = _activations_after(net, task)
    deltas = [
        2 * (call.output.clamp_min(0) if relu_after.get(layer_of.get(i, ""), False) else call.output)
        for i, call in enumerate(recording.calls)
    ]
    mode = "abs" if reduction == "per_sample" else "sum"
    sums = {name: parameter_sums(uses, mode) for name, uses in _layer_uses(recording, [deltas]).items()}
    return ({name: v if mode == "abs" else v.abs() for name, v in sums.items()}), []


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

        with _parameters_restored(net):
            return vmap(grad(log_loss), in_dims=(None, 0, 0))(chosen, x, labels)
    if output == "l2":
        per_sample = vmap(grad(lambda params, sample: logits_of(params, sample).square().sum()), in_dims=(None, 0))
    else:
        per_sample = vmap(jacrev(logits_of), in_dims=(None, 0))
    with _parameters_restored(net):
        return per_sample(chosen, x)


@contextmanager
def _parameters_restored(net: nn.Module) -> Iterator[None]:
    """functional_call (torch 2.13) leaves a weight shared by two modules as the plain tensor it was given,
    not the network's Parameter: put every module's own parameters back."""
    saved = [(module, dict(module._parameters)) for module in net.modules()]
    try:
        yield
    finally:
        for module, parameters in saved:
            module._parameters.update(parameters)


def _reduce_per_sample(grads: dict[str, Tensor], output: str) -> dict[str, Tensor]:
    if output == "l2":
        return {name: g.abs().sum(0) for name, g in grads.items()}
    return {name: g.flatten(2).norm(dim=1).sum(0).reshape(g.shape[2:]) for name, g in grads.items()}
