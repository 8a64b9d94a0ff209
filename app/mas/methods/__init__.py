"""Continual-learning methods, one file each, selectable by name (the API's `method`).

MAS, L2, EWC and SI share the anchored penalty λ Σ Ω (θ − θ*)² and differ in how Ω is measured;
fine-tune has no penalty; LwF distils the old heads instead of anchoring parameters.

`METHODS` says, once, what each method takes: whether λ and the penalty form mean anything to it,
and its own options with their bounds (SI's damping, LwF's temperature). The service validates a
request against it, so an option a method does not use is refused rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import Tensor

from app.mas.methods.anchored import PENALTY_FORMS, Anchored
from app.mas.methods.base import Method
from app.mas.methods.ewc import EWC
from app.mas.methods.finetune import Finetune
from app.mas.methods.l2 import L2
from app.mas.methods.lwf import LwF
from app.mas.methods.mas import MAS
from app.mas.methods.si import SI


@dataclass(frozen=True)
class MethodOption:
    """A method's own numeric option: its default and the open interval (low, high) it must lie in."""

    default: float
    low: float
    high: float
    description: str

    def check(self, name: str, value: float) -> float:
        if not self.low < value < self.high:
            raise ValueError(f"{name} must lie strictly between {self.low} and {self.high}, not {value}")
        return float(value)


@dataclass(frozen=True)
class MethodSpec:
    build: Callable[..., Method]
    uses_lambda: bool  # λ weighs its penalty (anchored) or its distillation (LwF)
    anchored: bool  # λ Σ Ω (θ − θ*)²: the penalty form and Ω mean something to it
    options: Mapping[str, MethodOption] = field(default_factory=dict)

    def checked_options(self, method: str, given: Mapping[str, float] | None) -> dict[str, float]:
        """The method's options with defaults filled in; ValueError for one it does not take."""
        unknown = sorted(set(given or {}) - set(self.options))
        if unknown:
            takes = sorted(self.options) or "none"
            raise ValueError(f"method {method!r} takes no option {unknown[0]!r} (its options: {takes})")
        return {name: spec.check(name, (given or {}).get(name, spec.default)) for name, spec in self.options.items()}


METHODS: dict[str, MethodSpec] = {
    "mas": MethodSpec(MAS, uses_lambda=True, anchored=True),
    "finetune": MethodSpec(lambda **_: Finetune(), uses_lambda=False, anchored=False),
    "l2": MethodSpec(L2, uses_lambda=True, anchored=True),
    "ewc": MethodSpec(EWC, uses_lambda=True, anchored=True),
    "si": MethodSpec(SI, uses_lambda=True, anchored=True, options={
        "damping": MethodOption(0.1, 0.0, 1e6, "ξ, added to the squared distance moved (Zenke et al.)")}),
    "lwf": MethodSpec(LwF, uses_lambda=True, anchored=False, options={
        "temperature": MethodOption(2.0, 0.0, 1e3, "the distillation temperature (Li & Hoiem)")}),
}

__all__ = ["EWC", "L2", "MAS", "METHODS", "PENALTY_FORMS", "SI", "Anchored", "Finetune", "LwF", "Method",
           "MethodOption", "MethodSpec", "make_method"]


def make_method(
    name: str, *, lam: float = 1.0, theta_star: dict[str, Tensor] | None = None,
    omega: dict[str, Tensor] | None = None, form: str = "proximal", options: Mapping[str, float] | None = None,
) -> Method:
    """The method the training loop calls, built from the parent version's θ* and total Ω."""
    spec = METHODS.get(name)
    if spec is None:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}")
    chosen = spec.checked_options(name, options)
    if spec.anchored:
        return spec.build(lam=lam, theta_star=theta_star or {}, omega=omega or {}, form=form, **chosen)
    return spec.build(lam=lam, **chosen)
