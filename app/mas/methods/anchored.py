"""Methods whose penalty is λ Σ Ω (θ − θ*)²: MAS, L2, EWC and SI differ only in how Ω is measured.

Only parameters that carry importance are anchored: the trunk, which every task shares. The new
task's head has no Ω and moves freely; earlier heads are not trained at all.
"""

from __future__ import annotations

from torch import Tensor, nn, optim

from app.mas.methods.base import Method
from app.mas.networks import MultiHeadNet
from app.mas.penalty import QuadraticAnchor, effective_step_size

PENALTY_FORMS = ("proximal", "gradient")


class Anchored(Method):
    uses_importance = True
    def __init__(self, lam: float, theta_star: dict[str, Tensor], omega: dict[str, Tensor], form: str = "proximal"):
        if form not in PENALTY_FORMS:
            raise ValueError(f"penalty form must be one of {PENALTY_FORMS}")
        self.lam, self.theta_star, self.omega, self.form = lam, theta_star, omega, form
        self.anchor: QuadraticAnchor | None = None

    def begin_task(
        self, net: MultiHeadNet, task: str, trainable: dict[str, nn.Parameter], lr: float, inputs: Tensor
    ) -> None:
        anchored = [name for name in trainable if name in self.omega and name in self.theta_star]
        self.anchor = QuadraticAnchor(
            [trainable[n] for n in anchored], [self.theta_star[n] for n in anchored],
            [self.omega[n] for n in anchored], self.lam,
        )

    def before_step(self) -> None:
        if self.form == "gradient" and self.anchor is not None:
            self.anchor.add_gradient()

    def after_step(self, optimizer: optim.Optimizer) -> None:
        # The prox's η is the step the optimizer really took, not the configured lr: with momentum or
        # Adam, lr would make the stationary θ minimise a different penalty (penalty.py, MAS.md §3).
        if self.form == "proximal" and self.anchor is not None and self.anchor.active:
            self.anchor.proximal_step(effective_step_size(optimizer, self.anchor.params))

    def extra_state(self) -> dict[str, Tensor]:
        omega = {f"omega.{k}": v for k, v in self.omega.items()}
        return omega | {f"theta_star.{k}": v for k, v in self.theta_star.items()}
