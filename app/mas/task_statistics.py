"""Batch-norm statistics kept per task: each task's head sees the normalisation it was learned with.

Running statistics are averages, not parameters: no penalty can hold them, and a task whose training
moves them changes what every earlier task's head sees. EfficientNet-Lite0 learning 8 Fashion-MNIST
tasks forgot 0.014 under MAS at λ 10⁴ and 10⁶ alike, every parameter held. Holding them fixed in
training instead (eval-mode batch norm) left it unable to learn at the service's default lr (chance
accuracy on every task). So training normalises with batch statistics and updates the running ones as
usual, and each task keeps a copy of its own:
- when a batch norm is about to train for task T, every earlier task without a copy in it gets the
  statistics it has relied on so far (`keep_for_earlier_tasks`); after training, T gets those it ended
  with (`keep_for_task`);
- in eval mode, a pass for task T (`MultiHeadNet.forward(x, T)`, or any pass inside `for_task(T)`:
  predictions, evaluation, Ω, LwF's targets, export) normalises with T's copy where it has one, with
  the shared running statistics otherwise (a network that has no batch norm, or never trained one, is
  unchanged).
The copies are buffers (`<batch norm>.task_statistics.<task>.mean|var`), so θ carries them, and a
version's block stores the copies of its own batch norms.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from torch import Tensor, nn
from torch.nn import functional

_CURRENT_TASK: ContextVar[str | None] = ContextVar("lifelong_task", default=None)
KEY_PART = ".task_statistics."


@contextmanager
def for_task(task: str) -> Iterator[None]:
    """Passes inside normalise with `task`'s statistics (per thread and per asyncio task)."""
    token = _CURRENT_TASK.set(task)
    try:
        yield
    finally:
        _CURRENT_TASK.reset(token)


class Statistics(nn.Module):
    """One task's copy of a batch norm's running mean and variance."""

    def __init__(self, mean: Tensor, var: Tensor):
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("var", var.detach().clone())


class PerTask:
    """Mixed into a batch-norm class: in eval mode, the current task's statistics where it has a copy."""

    task_statistics: nn.ModuleDict

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - nn.BatchNorm's own name
        entry = None if self.training else self.task_statistics._modules.get(_CURRENT_TASK.get() or "")
        if entry is None:
            return super().forward(input)  # type: ignore[misc]
        self._check_input_dim(input)  # type: ignore[attr-defined]
        return functional.batch_norm(input, entry.mean, entry.var, self.weight, self.bias,  # type: ignore[attr-defined]
                                     False, 0.0, self.eps)  # type: ignore[attr-defined]


class TaskBatchNorm1d(PerTask, nn.BatchNorm1d):
    pass


class TaskBatchNorm2d(PerTask, nn.BatchNorm2d):
    pass


class TaskBatchNorm3d(PerTask, nn.BatchNorm3d):
    pass


_PER_TASK = {nn.BatchNorm1d: TaskBatchNorm1d, nn.BatchNorm2d: TaskBatchNorm2d, nn.BatchNorm3d: TaskBatchNorm3d}


def adopt(module: nn.Module) -> None:
    """Give every batch norm in `module` per-task statistics. Its class changes in place, so its parameters,
    its buffers and their names stay as they were (pretrained weights load as before)."""
    for child in module.modules():
        per_task = _PER_TASK.get(type(child))
        if per_task is not None and child.track_running_stats:
            child.__class__ = per_task
            child.task_statistics = nn.ModuleDict()


def keep_for_earlier_tasks(norms: Iterable[nn.Module], task: str, tasks: Iterable[str]) -> None:
    """Before `norms` train for `task`: each other task without a copy keeps the statistics it relied on."""
    earlier = [name for name in tasks if name != task]
    for norm in norms:
        for name in earlier:
            if name not in norm.task_statistics:
                norm.task_statistics[name] = Statistics(norm.running_mean, norm.running_var)


def keep_for_task(norms: Iterable[nn.Module], task: str) -> None:
    """After `norms` trained for `task`: it keeps the statistics they ended with."""
    for norm in norms:
        norm.task_statistics[task] = Statistics(norm.running_mean, norm.running_var)


def restore_copies(net: nn.Module, state: dict[str, Tensor]) -> None:
    """Create the copies that `state` names (as zeros of their shape), so that loading it finds them."""
    for key, tensor in state.items():
        if KEY_PART not in key:
            continue
        owner, rest = key.split(KEY_PART, 1)
        task = rest.split(".", 1)[0]
        norm = net.get_submodule(owner)
        if task not in norm.task_statistics:
            norm.task_statistics[task] = Statistics(tensor.new_zeros(tensor.shape), tensor.new_ones(tensor.shape))
