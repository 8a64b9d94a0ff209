"""Predictions, accuracy, and the continual-learning summary of an accuracy matrix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from app.mas.networks import MultiHeadNet
from app.mas.passes import rows_per_pass
from app.mas.samples import LazySamples


def task_logits(net: MultiHeadNet, task: str, inputs: Tensor | LazySamples) -> Tensor:
    """The task head's logits [n, classes] in eval mode, without building a graph, in passes whose
    activations stay within a budget (app/mas/passes.py)."""
    chunk = rows_per_pass(net, inputs)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            return torch.cat(
                [net(net.input_spec.cast(inputs[i : i + chunk]), task) for i in range(0, inputs.shape[0], chunk)]
            ) if inputs.shape[0] else torch.zeros(0, net.tasks[task], device=inputs.device)
    finally:
        net.train(was_training)


def predict(net: MultiHeadNet, task: str, inputs: Tensor | LazySamples) -> tuple[Tensor, Tensor]:
    """(predicted classes [n], probabilities [n, classes]) in eval mode, without building a graph."""
    logits = task_logits(net, task, inputs)
    return logits.argmax(1), logits.softmax(1)


def accuracy(net: MultiHeadNet, task: str, inputs: Tensor | LazySamples, labels: Tensor) -> float:
    """The fraction of rows whose largest logit is their label (no softmax: it cannot change the argmax)."""
    if not labels.numel():
        return float("nan")
    logits = task_logits(net, task, inputs)
    return _fraction_correct(logits, _targets(labels, logits))


def accuracy_and_loss(net: MultiHeadNet, task: str, inputs: Tensor | LazySamples,
                      labels: Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) from one forward pass; the loss from the logits, so that it stays
    finite where a softmax probability underflows to 0."""
    if not labels.numel():
        return float("nan"), float("nan")
    logits = task_logits(net, task, inputs).float()
    targets = _targets(labels, logits)
    return _fraction_correct(logits, targets), float(torch.nn.functional.cross_entropy(logits, targets))


def _targets(labels: Tensor, logits: Tensor) -> Tensor:
    return labels.to(device=logits.device, dtype=torch.int64)


def _fraction_correct(logits: Tensor, targets: Tensor) -> float:
    return float((logits.argmax(1) == targets).float().mean())


def fraction_correct(predicted: Tensor, labels: Tensor) -> float:
    """Accuracy of predicted classes (NaN for no rows, as `accuracy` answers)."""
    if not labels.numel():
        return float("nan")
    return float((predicted.to(labels.device) == labels.long()).float().mean())


@dataclass(frozen=True)
class Flips:
    """Yan et al. (CVPR 2021): of the rows, the share the parent got right and the new version gets wrong
    (negative), and the reverse (positive). Accuracy can stay equal while both are large."""

    negative: float
    positive: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"negative": self.negative if self.n else None, "positive": self.positive if self.n else None,
                "n": self.n}


def flip_rates(before: Tensor, after: Tensor, labels: Tensor) -> Flips:
    """Flips of `after`'s predicted classes against `before`'s on labelled rows."""
    labels = labels.long().to(before.device)
    was, now = before == labels, after.to(before.device) == labels
    n = labels.numel()
    if not n:
        return Flips(0.0, 0.0, 0)
    return Flips(float((was & ~now).float().mean()), float((~was & now).float().mean()), n)


def continual_metrics(matrix: list[dict[str, float]], tasks: list[str]) -> dict[str, float | None]:
    """Summary of an accuracy matrix whose row i was measured right after learning tasks[i].

    average_accuracy: mean accuracy of the last row over every task learned so far.
    forgetting: mean over earlier tasks of (best accuracy before the last row − last accuracy).
    bwt: mean over earlier tasks of (last accuracy − accuracy just after learning that task).
    None where a quantity is undefined (no rows, or only one task).
    """
    if not matrix:
        return {"average_accuracy": None, "forgetting": None, "bwt": None}
    last = matrix[-1]
    learned = [t for t in tasks[: len(matrix)] if t in last]
    average = sum(last[t] for t in learned) / len(learned) if learned else None
    earlier = [(i, t) for i, t in enumerate(tasks[: len(matrix) - 1]) if t in last]
    if not earlier:
        return {"average_accuracy": average, "forgetting": None, "bwt": None}
    forgetting = [max(row[t] for row in matrix[i:-1] if t in row) - last[t] for i, t in earlier]
    bwt = [last[t] - matrix[i][t] for i, t in earlier if t in matrix[i]]
    return {
        "average_accuracy": average,
        "forgetting": sum(forgetting) / len(forgetting),
        "bwt": sum(bwt) / len(bwt) if bwt else None,
    }
