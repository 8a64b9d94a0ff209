"""The hooks the training loop calls. A method overrides the ones it needs; here they do nothing.

The loop calls, for one task: `begin_task` once; per step `extra_loss` (added to the task's loss),
then backward, `before_step`, the optimizer's step, `after_step`; and after training the service or
the sequence runner asks `task_importance` for the Ω this task adds for later tasks (MAS.md §4).
"""

from __future__ import annotations

from torch import Tensor, nn, optim

from app.mas.importance import ImportanceSum, estimate_importance
from app.mas.networks import MultiHeadNet


class Method:
    name = "base"
    uses_importance = False  # whether the method's training reads Ω (the anchored ones do)

    def begin_task(
        self, net: MultiHeadNet, task: str, trainable: dict[str, nn.Parameter], lr: float, inputs: Tensor
    ) -> None:
        """Called once before the first step with the parameters the optimizer will move."""

    def extra_loss(self, features: Tensor, batch: Tensor) -> Tensor | None:
        """A term added to the task loss; `features` is the trunk's output for the rows `batch` of the inputs."""
        return None

    def before_step(self) -> None:
        """After backward, before the optimizer's step: add penalty gradients to .grad here."""

    def after_step(self, optimizer: optim.Optimizer) -> None:
        """After `optimizer`'s step: proximal updates go here, with the step size it took (MAS.md §3)."""

    def task_importance(
        self, net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, options: dict | None = None
    ) -> ImportanceSum:
        """Ω that this task contributes for later ones: MAS's estimate unless the method has its own."""
        return estimate_importance(net, task, inputs, **(options or {}))

    def state(self) -> dict[str, Tensor]:
        """What the method has gathered during training so far that `begin_task` does not make again
        (a checkpoint keeps it, so that a resumed run continues exactly)."""
        return {}

    def load_state(self, state: dict[str, Tensor]) -> None:
        """Put back what `state` returned, after `begin_task` on the network as the run began."""

    def extra_state(self) -> dict[str, Tensor]:
        """Tensors this method keeps between tasks besides θ (for memory accounting)."""
        return {}
