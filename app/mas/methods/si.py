"""Synaptic Intelligence (Zenke et al. 2017): Ω is each parameter's share of the loss decrease.

Along the training path, ω accumulates −g·Δθ per step (g: the task loss's gradient, before any
penalty; Δθ: the whole step, penalty included). At the end of the task,
Ω_task = max(ω, 0) / ((θ_end − θ_start)² + ξ), with ξ the damping that keeps Ω finite for
parameters that barely moved. All per-step bookkeeping is fused foreach work.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from app.mas.importance import ImportanceSum
from app.mas.methods.anchored import Anchored
from app.mas.networks import MultiHeadNet


class SI(Anchored):
    name = "si"

    def __init__(self, *args, damping: float = 0.1, **kwargs):
        super().__init__(*args, **kwargs)
        self.damping = damping
        self.names: list[str] = []
        self.params: list[nn.Parameter] = []
        self.start: list[Tensor] = []
        self.previous: list[Tensor] = []
        self.path: list[Tensor] = []
        self.task_grads: list[Tensor] = []

    def begin_task(
        self, net: MultiHeadNet, task: str, trainable: dict[str, nn.Parameter], lr: float, inputs: Tensor
    ) -> None:
        super().begin_task(net, task, trainable, lr, inputs)
        self.names, self.params = list(trainable), list(trainable.values())
        with torch.no_grad():
            self.start = torch._foreach_mul(self.params, 1.0)  # copies
            self.previous = torch._foreach_mul(self.params, 1.0)
        self.path = [torch.zeros_like(p) for p in self.params]
        self.task_grads: list[Tensor] = []

    def before_step(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.task_grads = torch._foreach_mul(grads, 1.0)  # the task loss's gradient, before the penalty
        super().before_step()

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().after_step(optimizer)
        with torch.no_grad():
            step = torch._foreach_sub(self.params, self.previous)
            torch._foreach_sub_(self.path, torch._foreach_mul(self.task_grads, step))
            torch._foreach_copy_(self.previous, self.params)

    def state(self) -> dict[str, Tensor]:
        """The path integral and the last step's parameters: the start θ comes again from begin_task."""
        return ({f"previous.{n}": t for n, t in zip(self.names, self.previous, strict=True)}
                | {f"path.{n}": t for n, t in zip(self.names, self.path, strict=True)})

    def load_state(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.previous, [state[f"previous.{n}"] for n in self.names])
            torch._foreach_copy_(self.path, [state[f"path.{n}"] for n in self.names])

    def extra_state(self) -> dict[str, Tensor]:
        held = {"path": self.path, "start": self.start, "previous": self.previous, "task_grads": self.task_grads}
        tensors = {f"{kind}.{name}": t for kind, ts in held.items() for name, t in zip(self.names, ts, strict=False)}
        return super().extra_state() | tensors

    def task_importance(
        self, net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, options: dict | None = None
    ) -> ImportanceSum:
        if not self.names:
            raise RuntimeError("SI measures importance along a training run: train the task with this method first")
        with torch.no_grad():
            moved = torch._foreach_sub(self.params, self.start)
            denominator = torch._foreach_add(torch._foreach_mul(moved, moved), self.damping)
            omega = torch._foreach_div(torch._foreach_clamp_min(self.path, 0.0), denominator)
        return ImportanceSum(dict(zip(self.names, omega, strict=True)), n=1)
