"""Learning without Forgetting (Li & Hoiem 2016): distil the old heads' answers on the new data.

Before training, the old heads' softened outputs (temperature T) on the new task's inputs are
recorded; while training, λ·T²·KL(recorded ‖ current) per old head is added to the loss. The old
heads' weights enter detached, so, as in every method here, they stay bit for bit. LwF keeps no
state between tasks: only θ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from app.mas.methods.base import Method
from app.mas.networks import MultiHeadNet
from app.mas.passes import rows_per_pass
from app.mas.task_statistics import for_task


class LwF(Method):
    name = "lwf"

    def __init__(self, lam: float = 1.0, temperature: float = 2.0):
        self.lam, self.temperature = lam, temperature
        self.old_heads: list[tuple[Tensor, Tensor]] = []
        self.targets: list[Tensor] = []

    def begin_task(
        self, net: MultiHeadNet, task: str, trainable: dict[str, nn.Parameter], lr: float, inputs: Tensor
    ) -> None:
        old = {name: head for name, head in net.heads.items() if name != task}
        self.old_heads = [(h.weight.detach().clone(), h.bias.detach().clone()) for h in old.values()]
        was_training = net.training
        net.eval()
        chunk = rows_per_pass(net, inputs)

        def features() -> Tensor:
            return torch.cat([net.trunk(inputs[i : i + chunk]) for i in range(0, inputs.shape[0], chunk)])

        with torch.no_grad():
            # Each old task's recorded outputs with its own batch-norm statistics; computed once when the
            # network keeps none per task (they would all be the same).
            shared = None if net.has_task_statistics() else features()
            self.targets = []
            for name, (w, b) in zip(old, self.old_heads, strict=True):
                with for_task(name):
                    old_features = shared if shared is not None else features()
                self.targets.append(functional.log_softmax(functional.linear(old_features, w, b) / self.temperature,
                                                           dim=1))
        net.train(was_training)

    def extra_state(self) -> dict[str, Tensor]:
        heads = {f"old_head.{i}.weight": w for i, (w, _) in enumerate(self.old_heads)}
        heads |= {f"old_head.{i}.bias": b for i, (_, b) in enumerate(self.old_heads)}
        return heads | {f"targets.{i}": t for i, t in enumerate(self.targets)}

    def extra_loss(self, features: Tensor, batch: Tensor) -> Tensor | None:
        if not self.old_heads or self.lam == 0:
            return None
        total = features.new_zeros(())
        for (w, b), target in zip(self.old_heads, self.targets, strict=True):
            current = functional.log_softmax(functional.linear(features, w, b) / self.temperature, dim=1)
            total = total + functional.kl_div(current, target[batch], log_target=True, reduction="batchmean")
        return self.lam * self.temperature**2 * total
