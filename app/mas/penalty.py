"""The MAS penalty λ Σ Ω (θ − θ*)², as a proximal step (default) or as a gradient term.

Added to the gradient, the penalty is an explicit step of size 2·lr·λ·Ω per parameter, which
oscillates and diverges wherever that exceeds 2, and Ω is largest exactly where it matters (MAS.md
§3, "Stability"). Applied after the optimizer's step as its exact proximal map,

    θ ← argmin_θ  λΩ(θ − θ*)² + (θ − θ')² / (2·lr)  =  (θ' + c θ*) / (1 + c),   c = 2·lr·λ·Ω,

it is a contraction towards θ* for every λ, Ω and lr, at the cost of the gradient form. Both forms
work on whole lists of tensors with torch._foreach_* kernels: no Python loop per parameter.
"""

from __future__ import annotations

import torch
from torch import Tensor


class QuadraticAnchor:
    """Holds the anchored parameters with their θ* and Ω, and applies the penalty to them in place."""

    def __init__(self, params: list[Tensor], theta_star: list[Tensor], omega: list[Tensor], lam: float):
        if lam < 0:
            raise ValueError("lambda must be non-negative")
        self.params = params
        self.theta_star = [t.detach().to(p.dtype).clone() for t, p in zip(theta_star, params, strict=True)]
        self.omega = [o.detach().to(p.dtype) for o, p in zip(omega, params, strict=True)]
        self.lam = lam
        self._grad_scale = torch._foreach_mul(self.omega, 2.0 * lam) if params else []
        self._lerp_weights: tuple[float, list[Tensor]] | None = None

    @property
    def active(self) -> bool:
        return bool(self.params) and self.lam > 0

    def value(self) -> float:
        """λ Σ Ω (θ − θ*)², for reporting."""
        if not self.active:
            return 0.0
        with torch.no_grad():
            diff = torch._foreach_sub(self.params, self.theta_star)
            weighted = torch._foreach_mul(torch._foreach_mul(diff, diff), self.omega)
            return self.lam * float(torch.stack([t.sum() for t in weighted]).sum())

    def add_gradient(self) -> None:
        """grad += 2λΩ(θ − θ*): the gradient form, the authors' (unstable at large 2·lr·λ·Ω)."""
        if not self.active:
            return
        with torch.no_grad():
            diff = torch._foreach_sub(self.params, self.theta_star)
            torch._foreach_mul_(diff, self._grad_scale)
            torch._foreach_add_([p.grad for p in self.params], diff)

    def proximal_step(self, lr: float) -> None:
        """θ ← lerp(θ, θ*, c/(1+c)) with c = 2·lr·λ·Ω: exact, and θ is untouched where c = 0."""
        if not self.active:
            return
        if self._lerp_weights is None or self._lerp_weights[0] != lr:
            c = torch._foreach_mul(self.omega, 2.0 * lr * self.lam)
            denominator = torch._foreach_add(c, 1.0)
            self._lerp_weights = (lr, torch._foreach_div(c, denominator))
        with torch.no_grad():
            torch._foreach_lerp_(self.params, self.theta_star, self._lerp_weights[1])
