"""Which layer operation used which parameter during one ordinary forward pass (MAS.md §6).

Exact per-sample Ω needs, for every parameter, the calls that used it with their inputs and outputs:
the per-sample gradient of a linear, convolution, embedding or normalisation weight is built from
those alone (per_sample_layers.py). Calls are seen at the level of torch functions (a
TorchFunctionMode), not of modules, because a module may pad or reshape before its call
(EfficientNet's same-padding convolutions pad inside forward, so a forward hook sees the unpadded
input), because a weight may be used by several calls or outside its module (shared or tied
weights), and because a use with no rule (`x * self.scale`, `weight.t()`) must be seen to be sent,
by name, to the vmap fallback rather than silently missed.

A parameter is measured exactly when every differentiable use of it is a call with a rule, always in
the same role, on an input whose leading dimension is the sample. An input shared by all samples
(leading dimension 1, e.g. BERT's position ids) has its output expanded to the batch, so that each
sample's output gradient stays its own; its consumer broadcast it against the batch anyway.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as functional
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

_CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_BUILTINS: dict[Callable, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    functional.linear: ("linear", ("input", "weight", "bias"), {"bias": None}),
    functional.conv1d: ("conv", _CONV, {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}),
    functional.conv2d: ("conv", _CONV, {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}),
}
_PYTHON = {functional.embedding: "embedding", functional.layer_norm: "layer_norm", functional.batch_norm: "batch_norm"}
_SIGNATURES = {func: inspect.signature(func) for func in _PYTHON}


@dataclass
class LayerCall:
    """One call of a layer operation on watched parameters, as the per-sample rules need it."""

    kind: str  # linear | conv | embedding | layer_norm | batch_norm
    inputs: Tensor  # detached (values only), samples in the leading dimension
    output: Tensor  # what is differentiated: the gradient there is each sample's own δ
    options: dict[str, Any]  # the call's other arguments (weight, bias, stride, eps, running stats, ...)
    versions: tuple[int, int] = (0, 0)  # of inputs and output when recorded, to detect a later in-place change


@dataclass
class Recording:
    logits: Tensor
    calls: list[LayerCall] = field(default_factory=list)
    uses: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # name → (call index, "weight" | "bias")
    fallback: list[str] = field(default_factory=list)  # parameters with a use that has no rule, or never seen


def _arguments(func: Callable, args: tuple, kwargs: dict) -> tuple[str, dict[str, Any]] | None:
    """The kind of layer call and its arguments by name, or None where there is no per-sample rule."""
    if func in _BUILTINS:
        kind, names, defaults = _BUILTINS[func]
        values = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
    elif func in _PYTHON:
        kind = _PYTHON[func]
        bound = _SIGNATURES[func].bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
    else:
        return None
    if kind == "embedding" and values["scale_grad_by_freq"]:
        return None  # scaled by each sample's own token counts: left to the fallback
    if kind == "batch_norm" and (values["training"] or values["running_mean"] is None):
        return None  # batch statistics mix the samples
    return kind, values


def _is_batched(kind: str, x: Tensor, values: dict[str, Any]) -> bool:
    if kind == "conv":
        return x.dim() == values["weight"].dim()
    if kind == "layer_norm":
        return x.dim() > len(values["normalized_shape"])
    return x.dim() >= (1 if kind == "embedding" else 2)


class _Recorder(TorchFunctionMode):
    def __init__(self, watched: dict[int, str], n: int, copy: bool):
        super().__init__()
        self.watched, self.n, self.copy = watched, n, copy
        self.calls: list[LayerCall] = []
        self.uses: dict[str, list[tuple[int, str]]] = {}
        self.other: set[str] = set()

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        names = {self.watched[id(t)] for t in tree_leaves((args, kwargs)) if id(t) in self.watched}
        if not names or not any(isinstance(t, Tensor) and (t.requires_grad or not torch.is_grad_enabled())
                                for t in tree_leaves(out)):
            return out  # metadata (shape, dtype) or a detached use: no gradient flows through it
        parsed = _arguments(func, args, kwargs)
        roles = {} if parsed is None else {
            self.watched[id(v)]: role for role in ("weight", "bias")
            if id(v := parsed[1].get(role)) in self.watched
        }
        x = None if parsed is None else parsed[1]["input"]
        if roles.keys() != names or not _is_batched(parsed[0], x, parsed[1]) or x.shape[0] not in (1, self.n):
            self.other |= names
            return out
        return self._record(parsed[0], x, out, parsed[1], roles)

    def _record(self, kind: str, x: Tensor, out: Tensor, values: dict[str, Any], roles: dict[str, str]) -> Tensor:
        if x.shape[0] == 1 and self.n > 1:  # shared by every sample: give each its own copy of the output
            x, out = x.expand(self.n, *x.shape[1:]), out.expand(self.n, *out.shape[1:])
        inputs = x.detach().clone() if self.copy else x.detach()
        values = {k: v for k, v in values.items() if k != "input"}
        self.calls.append(LayerCall(kind, inputs, out, values, (inputs._version, out._version)))
        for name, role in roles.items():
            self.uses.setdefault(name, []).append((len(self.calls) - 1, role))
        return out.clone() if self.copy else out  # a clone takes the caller's in-place changes


def _changed_in_place(calls: list[LayerCall]) -> bool:
    return any((c.inputs._version, c.output._version) != c.versions for c in calls)


def record_calls(forward: Callable[[], Tensor], parameters: dict[str, Tensor], n: int) -> Recording:
    """Run `forward` once and return its output with every layer call on `parameters`.

    If the network changes a recorded input or output in place (ReLU(inplace=True) after a conv),
    the pass is repeated with copies, so that the gradient at each output is the call's own.
    """
    watched = {id(p): name for name, p in parameters.items()}
    for copy in (False, True):
        with _Recorder(watched, n, copy) as recorder:
            logits = forward()
        if copy or not _changed_in_place(recorder.calls):
            break
    uses = {name: u for name, u in recorder.uses.items() if name not in recorder.other}
    same_role = {name for name, u in uses.items()
                 if len({(recorder.calls[i].kind, role) for i, role in u}) == 1}
    exact = {name: uses[name] for name in same_role}
    fallback = [name for name in parameters if name not in exact]
    return Recording(logits, recorder.calls, exact, fallback)
