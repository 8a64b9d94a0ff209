"""Training one task: the loop that every method plugs into through its hooks.

Old heads are left out of the optimizer (and out of the forward pass), so no momentum, weight
decay or penalty can move them: they stay bit for bit as they were. Shuffling and the new head's
initialisation use generators seeded from the config, so a run is deterministic on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypedDict

import torch
import torch.nn.functional as functional
from torch import Tensor

from app.mas import task_statistics
from app.mas.methods.base import Method
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples, batches_of

OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("fp32", "bf16")


def precision_for(device: torch.device) -> str:
    """bf16 autocast on CUDA (tensor cores, fp32 master weights), plain fp32 elsewhere: a CPU run stays
    bit-for-bit deterministic and as exact as the tests check it."""
    return "bf16" if device.type == "cuda" else "fp32"


class TrainingCancelled(Exception):
    """The stop check answered yes between two steps; nothing of this run should be kept."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite: the run diverged and its parameters are meaningless."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    seed: int = 0
    # "bf16": the forward pass and the loss under bfloat16 autocast; parameters, optimiser state, Ω and
    # the penalty stay fp32 (the penalty acts on the parameters after the step, outside autocast).
    precision: str = "fp32"
    # Passes a new task's head trains alone on the frozen trunk's features before the task trains
    # (app/mas/head_warmup.py); 0: none, the head starts from its seeded random values.
    head_warmup: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 <= self.momentum < 1:
            raise ValueError("epochs and batch_size must be positive, lr > 0 and 0 <= momentum < 1")
        if self.head_warmup < 0:
            raise ValueError("head_warmup must be 0 or more passes")


@dataclass
class TrainResult:
    steps: int
    loss: float  # of the last step
    loss_per_epoch: list[float] = field(default_factory=list)  # the mean loss of each epoch's steps


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, foreach=True)
    return torch.optim.Adam(params, lr=config.lr, foreach=True)


class RunPosition(TypedDict):
    """Where a run stands in its epochs, and the losses it has summed so far."""

    step: int  # steps done
    epoch: int
    batch: int  # batches of `epoch` done
    epoch_generator: Tensor  # the shuffle generator's state at the start of `epoch`: its order is drawn again
    loss: float  # of the last step
    loss_per_epoch: list[float]
    epoch_loss: float
    epoch_steps: int


class RunSnapshot(RunPosition):
    """A run's position and state, enough to continue it bit for bit. A plain dict at run time, as a
    checkpoint must be (stored by torch.save, read with weights_only=True: tensors and containers only)."""

    rng: Tensor
    cuda_rng: Tensor | None
    network: dict[str, Tensor]  # what training can change (`network_snapshot`)
    optimizer: dict[str, Any]  # the optimizer's state_dict
    method: dict[str, Any]  # the method's `state()`



def begin_training(net: MultiHeadNet, task: str, num_classes: int, inputs: Tensor | LazySamples, method: Method,
                   config: TrainConfig) -> tuple[dict[str, torch.nn.Parameter], torch.optim.Optimizer]:
    """Everything before the first step: the task's head (added if missing, from its seed), the
    optimizer over what trains, and the method's `begin_task` on the network as it starts."""
    if task not in net.heads:
        net.add_head(task, num_classes, seed=config.seed)
        net.heads[task].to(inputs.device)  # initialised on the CPU from its seed, trained where the data is
    trainable = net.task_parameters(task)
    optimizer = make_optimizer(list(trainable.values()), config)
    method.begin_task(net, task, trainable, config.lr, inputs)
    return trainable, optimizer


def network_snapshot(net: MultiHeadNet, trainable: dict[str, torch.nn.Parameter]) -> dict[str, Tensor]:
    """What training can change: the trained parameters and every buffer (batch-norm statistics)."""
    return {name: p.detach() for name, p in trainable.items()} | {name: b for name, b in net.named_buffers()}


def restore_network(net: MultiHeadNet, state: dict[str, Tensor]) -> None:
    task_statistics.restore_copies(net, state)  # the per-task batch-norm statistics it had made by then
    unexpected = net.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"the checkpoint names parameters this network lacks: {unexpected[:5]}")


def _snapshot(net: MultiHeadNet, trainable: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer,
              method: Method, cuda: torch.device | None, position: RunPosition) -> RunSnapshot:
    return RunSnapshot(
        **position, rng=torch.get_rng_state(), cuda_rng=torch.cuda.get_rng_state(cuda) if cuda is not None else None,
        network=network_snapshot(net, trainable), optimizer=optimizer.state_dict(), method=method.state(),
    )


def train_task(
    net: MultiHeadNet,
    task: str,
    num_classes: int,
    inputs: Tensor | LazySamples,
    labels: Tensor,
    method: Method,
    config: TrainConfig,
    progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: RunSnapshot | None = None,
    checkpoint: Callable[[Callable[[], RunSnapshot]], None] | None = None,
) -> TrainResult:
    """Learn `task` on (inputs, labels), adding its head if the network lacks it.

    `inputs` may be LazySamples (images decoded a batch at a time): batches are then loaded ahead in a
    thread, in the same shuffled order, so a run is the same whichever form its inputs take.

    After every step `checkpoint` (if given) is handed a function that makes a snapshot of the run; it
    decides whether to take one (it is called often: the caller keeps to its own interval). A run
    given such a snapshot as `resume`, on the network as it was when the run began, continues from
    that step and ends bit for bit where the uninterrupted run ends (on the CPU): the optimizer's and
    the method's state, the epoch's shuffle and the dropout RNG are all part of the snapshot."""
    inputs, labels = net.input_spec.cast(inputs), labels.to(torch.int64)
    _check_labels(inputs, labels, num_classes)
    trainable, optimizer = begin_training(net, task, num_classes, inputs, method, config)
    norms = net.trained_norms()
    task_statistics.keep_for_earlier_tasks(norms, task, net.heads)  # before a resumed run's buffers load
    generator = torch.Generator().manual_seed(config.seed)
    n = inputs.shape[0]
    total = config.epochs * math.ceil(n / config.batch_size)
    run = _Run() if resume is None else _restored(net, optimizer, method, generator, resume)
    first_epoch = run.epoch
    net.train()
    cuda = [inputs.device] if inputs.device.type == "cuda" else []
    with _seeded_rng(config.seed, inputs.device, resume):
        for epoch in range(first_epoch, config.epochs):
            epoch_start = generator.get_state()
            order = torch.randperm(n, generator=generator)
            index_batches = [order[start : start + config.batch_size] for start in range(0, n, config.batch_size)]
            skip = run.batch if epoch == first_epoch else 0
            if epoch != first_epoch:
                run.epoch_loss, run.epoch_steps = 0.0, 0
            remaining = index_batches[skip:]
            for position, (batch, batch_inputs) in enumerate(zip(remaining, batches_of(inputs, remaining),
                                                                 strict=True), start=skip + 1):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled(f"stopped after {run.step} of {total} steps")
                loss = _step(net, task, batch_inputs, labels[batch], batch, method, optimizer, config,
                             device_type=inputs.device.type, where=f"step {run.step + 1} of {total}")
                run.step, run.loss = run.step + 1, loss
                run.epoch_loss, run.epoch_steps = run.epoch_loss + loss, run.epoch_steps + 1
                if progress is not None:
                    progress(run.step, total, loss)
                if checkpoint is not None:
                    checkpoint(partial(_snapshot, net, trainable, optimizer, method, inputs.device if cuda else None,
                                       run.position(epoch, position, epoch_start)))
            run.loss_per_epoch.append(run.epoch_loss / run.epoch_steps)
    task_statistics.keep_for_task(norms, task)
    net.eval()
    return TrainResult(steps=run.step, loss=run.loss, loss_per_epoch=run.loss_per_epoch)


def _restored(net: MultiHeadNet, optimizer: torch.optim.Optimizer, method: Method, generator: torch.Generator,
              resume: RunSnapshot) -> _Run:
    """The network, optimizer, method and shuffle as the snapshot left them, and its counters."""
    restore_network(net, resume["network"])
    optimizer.load_state_dict(resume["optimizer"])
    method.load_state(resume["method"])
    generator.set_state(resume["epoch_generator"])
    return _Run.resumed(resume)


@contextmanager
def _seeded_rng(seed: int, device: torch.device, resume: RunSnapshot | None) -> Iterator[None]:
    """Dropout and drop-connect in trained blocks draw from torch's global RNG: seeded from the config, or
    set as the snapshot left it (and restored afterwards), so that a job run again makes the same version."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        if resume is not None:
            torch.set_rng_state(resume["rng"])
            if cuda and resume.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(resume["cuda_rng"], device)
        yield


def _check_labels(inputs: Tensor | LazySamples, labels: Tensor, num_classes: int) -> None:
    if inputs.shape[0] == 0 or inputs.shape[0] != labels.shape[0]:
        raise ValueError("training needs as many labels as inputs, and at least one of each")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")


@dataclass
class _Run:
    """A run's counters as the loop advances them: from zero, or from a snapshot."""

    step: int = 0
    loss: float = float("nan")
    loss_per_epoch: list[float] = field(default_factory=list)
    epoch_loss: float = 0.0
    epoch_steps: int = 0
    epoch: int = 0  # where a resumed run starts: this epoch, after `batch` of its batches
    batch: int = 0

    @classmethod
    def resumed(cls, snapshot: RunSnapshot) -> _Run:
        return cls(snapshot["step"], snapshot["loss"], list(snapshot["loss_per_epoch"]), snapshot["epoch_loss"],
                   snapshot["epoch_steps"], snapshot["epoch"], snapshot["batch"])

    def position(self, epoch: int, batch: int, epoch_generator: Tensor) -> RunPosition:
        return RunPosition(step=self.step, epoch=epoch, batch=batch, epoch_generator=epoch_generator, loss=self.loss,
                           loss_per_epoch=list(self.loss_per_epoch), epoch_loss=self.epoch_loss,
                           epoch_steps=self.epoch_steps)


def _step(net: MultiHeadNet, task: str, inputs: Tensor, labels: Tensor, batch: Tensor, method: Method,
          optimizer: torch.optim.Optimizer, config: TrainConfig, *, device_type: str, where: str) -> float:
    """One optimizer step on a batch, with the method's hooks; returns its loss (`where`: for its error)."""
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        features = net.trunk(inputs)
        loss = functional.cross_entropy(net.heads[task](features).float(), labels)
        extra = method.extra_loss(features, batch)
        if extra is not None:
            loss = loss + extra
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise NonFiniteLoss(f"the loss became {loss_value} at {where}: lower lr or lambda, "
                            "or use the proximal penalty form")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    method.before_step()
    optimizer.step()
    method.after_step(optimizer)
    return loss_value
