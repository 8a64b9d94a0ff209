"""L2 transfer: the anchored penalty with uniform Ω = 1, the baseline that knows no importance."""

from __future__ import annotations

import torch
from torch import Tensor

from app.mas.importance import ImportanceSum
from app.mas.methods.anchored import Anchored
from app.mas.networks import MultiHeadNet


class L2(Anchored):
    name = "l2"

    def task_importance(
        self, net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, options: dict | None = None
    ) -> ImportanceSum:
        return ImportanceSum({n: torch.ones_like(p) for n, p in net.task_parameters(task).items()}, n=1)
