"""The hooks the training loop calls; a method overrides the ones it needs (all are no-ops here)."""

from __future__ import annotations

from torch import Tensor, nn


class Method:
    name = "base"

    def begin_task(self, trainable: dict[str, nn.Parameter], lr: float) -> None:
        """Called once before the first step with the parameters the optimizer will move."""

    def before_step(self) -> None:
        """After backward, before the optimizer's step: add penalty gradients to .grad here."""

    def after_step(self) -> None:
        """After the optimizer's step: proximal updates go here."""

    def penalty_value(self) -> float:
        return 0.0

    def extra_state(self) -> dict[str, Tensor]:
        """Tensors this method keeps between tasks besides θ (for memory accounting)."""
        return {}
