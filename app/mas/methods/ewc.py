"""Elastic Weight Consolidation (Kirkpatrick et al. 2017): Ω is the diagonal empirical Fisher.

The Fisher is measured on the task's *labelled* training data, (∂ log p(y|x)/∂θ)² averaged over
samples, exactly per sample by the same outer-product factorisation as MAS's Ω. Per-task Fishers
are summed across tasks (the accumulation rule the service uses for every method, MAS.md §4).
"""

from __future__ import annotations

from torch import Tensor

from app.mas.importance import ImportanceSum, squared_gradient_sums
from app.mas.methods.anchored import Anchored
from app.mas.networks import MultiHeadNet


class EWC(Anchored):
    name = "ewc"

    def task_importance(
        self, net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, options: dict | None = None
    ) -> ImportanceSum:
        return squared_gradient_sums(net, task, inputs, labels)
