"""The MAS penalty λ Σ Ω (θ − θ*)², as a proximal step (default) or as a gradient term.

Added to the gradient, the penalty is an explicit step of size 2·η·λ·Ω per parameter, which
oscillates and diverges wherever that exceeds 2, and Ω is largest exactly where it matters (MAS.md
§3, "Stability"). Applied after the optimizer's step as its exact proximal map,

    θ ← argmin_θ  λΩ(θ − θ*)² + (θ − θ')² / (2·η)  =  (θ' + c θ*) / (1 + c),   c = 2·η·λ·Ω,

it is a contraction towards θ* for every λ, Ω and η, at the cost of the gradient form. Both forms
work on whole lists of tensors with torch._foreach_* kernels: no Python loop per parameter.

η must be the step the optimizer really takes per unit of gradient, or λ silently changes meaning
(MAS.md §3). At a fixed point the loss gradient g is constant and the optimizer moves θ' = θ − η·g;
the prox then gives c(θ − θ*) = −η·g, that is g + 2λΩ(θ − θ*) = 0, the minimiser of
L + λΣΩ(θ − θ*)², only if the prox's η is that same η. Plain SGD: η = lr. With momentum β the
buffer settles at g/(1 − β), so η = lr/(1 − β); a prox with η = lr would stop at the minimiser for
λ(1 − β). Adam moves lr·m̂/(√v̂ + ε) with m̂ → g, so η_i = lr/(√v̂_i + ε), read from its state after
its step; a prox with η = lr would stop at |θ − θ*| ≈ 1/(2λΩ) whatever the loss. `effective_step_size`
reads η from the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

StepSize = float | Sequence[float] | list[Tensor]  # one η, one per parameter, or one per element


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
        self._lerp_weights: tuple[float | tuple[float, ...], list[Tensor]] | None = None

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

    def proximal_step(self, step_size: StepSize) -> None:
        """θ ← lerp(θ, θ*, c/(1+c)) with c = 2·η·λ·Ω: exact, and θ is untouched where c = 0.

        η (`step_size`) is a number, one number per parameter, or one tensor per parameter (Adam's
        η_i): see `effective_step_size`. The weights are cached while η stays the same numbers (SGD)."""
        if not self.active:
            return
        if not isinstance(step_size, int | float) and isinstance(step_size[0], Tensor):
            weights = self._weights(list(step_size))
        else:
            key = float(step_size) if isinstance(step_size, int | float) else tuple(map(float, step_size))
            if self._lerp_weights is None or self._lerp_weights[0] != key:
                self._lerp_weights = (key, self._weights(list(key) if isinstance(key, tuple) else key))
            weights = self._lerp_weights[1]
        with torch.no_grad():
            torch._foreach_lerp_(self.params, self.theta_star, weights)

    def _weights(self, step_size: float | list[float] | list[Tensor]) -> list[Tensor]:
        # c/(1+c) written as 1/(1 + 1/c): exactly 0 where c = 0 and exactly 1 where c overflows to
        # inf (λΩη beyond the float range), where c/(1+c) would give inf/inf = NaN.
        with torch.no_grad():
            c = torch._foreach_mul(self._grad_scale, step_size)  # 2λΩ · η
            torch._foreach_reciprocal_(c)
            torch._foreach_add_(c, 1.0)
            torch._foreach_reciprocal_(c)
        return list(c)


def effective_step_size(optimizer: torch.optim.Optimizer, params: list[Tensor]) -> StepSize:
    """η with which `optimizer`'s last step moved each of `params` per unit of loss gradient, at its
    fixed point (module docstring): a number for SGD with one parameter group, one number per
    parameter with several, and for Adam and AdamW one tensor per parameter. Call it after the step."""
    groups = optimizer.param_groups
    if isinstance(optimizer, torch.optim.SGD):
        if len(groups) == 1:
            return _sgd_step_size(groups[0])
        group_of = {id(p): group for group in groups for p in group["params"]}
        return [_sgd_step_size(group_of[id(p)]) for p in params]
    if isinstance(optimizer, torch.optim.Adam):  # AdamW too: its decay is decoupled, its step is Adam's
        return _adam_step_size(optimizer, params)
    raise TypeError(
        f"the proximal penalty knows the step size of SGD and Adam, not {type(optimizer).__name__}: "
        "use the gradient form"
    )


def _sgd_step_size(group: dict) -> float:
    # torch's SGD: buf ← β·buf + (1 − dampening)·g, settling at (1 − dampening)·g/(1 − β); Nesterov
    # steps g + β·buf (dampening must be 0 there), which settles at g/(1 − β) too.
    lr, beta = float(group["lr"]), float(group["momentum"])
    if beta == 0:
        return lr
    return lr / (1 - beta) if group["nesterov"] else lr * (1 - float(group["dampening"])) / (1 - beta)


def _adam_step_size(optimizer: torch.optim.Optimizer, params: list[Tensor]) -> list[Tensor]:
    groups = optimizer.param_groups
    group_of = {id(p): group for group in groups for p in group["params"]} if len(groups) > 1 else None
    second_moments, root_corrections, eps, lr = [], [], [], []
    for p in params:  # gathering Adam's state; the arithmetic below is fused
        group = groups[0] if group_of is None else group_of[id(p)]
        state = optimizer.state.get(p)
        if state:
            second_moments.append(state["max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"])
            root_corrections.append(math.sqrt(1 - float(group["betas"][1]) ** float(state["step"])))
        else:  # never stepped (no gradient yet): v̂ = 0, as for a gradient that is exactly zero.
            # Where v̂ = 0, η = lr/ε is large and the prox puts θ at θ*: the minimiser, as L does not
            # depend on θ there (so far).
            second_moments.append(torch.zeros_like(p))
            root_corrections.append(1.0)
        # ε = 0 is allowed: the smallest normal number keeps η finite where v̂ = 0 too
        eps.append(max(float(group["eps"]), torch.finfo(p.dtype).tiny))
        lr.append(float(group["lr"]))
    with torch.no_grad():
        step_size = torch._foreach_sqrt(second_moments)
        torch._foreach_div_(step_size, root_corrections)
        torch._foreach_add_(step_size, eps)
        torch._foreach_reciprocal_(step_size)
        torch._foreach_mul_(step_size, lr)
    return list(step_size)
