"""Training one task: the loop that every method plugs into through its hooks.

Old heads are left out of the optimizer (and out of the forward pass), so no momentum, weight
decay or penalty can move them: they stay bit for bit as they were. Shuffling and the new head's
initialisation use generators seeded from the config, so a run is deterministic on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

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

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 <= self.momentum < 1:
            raise ValueError("epochs and batch_size must be positive, lr > 0 and 0 <= momentum < 1")


@dataclass
class TrainResult:
    steps: int
    loss: float  # of the last step
    loss_per_epoch: list[float] = field(default_factory=list)  # the mean loss of each epoch's steps


def _make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, foreach=True)
    return torch.optim.Adam(params, lr=config.lr, foreach=True)


Snapshot = dict[str, Any]  # where a run stands, enough to continue it bit for bit (torch.save-able)


def begin_training(net: MultiHeadNet, task: str, num_classes: int, inputs: Tensor | LazySamples, method: Method,
                   config: TrainConfig) -> tuple[dict[str, torch.nn.Parameter], torch.optim.Optimizer]:
    """Everything before the first step: the task's head (added if missing, from its seed), the
    optimizer over what trains, and the method's `begin_task` on the network as it starts."""
    if task not in net.heads:
        net.add_head(task, num_classes, seed=config.seed)
        net.heads[task].to(inputs.device)  # initialised on the CPU from its seed, trained where the data is
    trainable = net.task_parameters(task)
    optimizer = _make_optimizer(list(trainable.values()), config)
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
              method: Method, cuda: torch.device | None, position: Snapshot) -> Snapshot:
    return position | {
        "rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(cuda) if cuda is not None else None,
        "network": network_snapshot(net, trainable), "optimizer": optimizer.state_dict(), "method": method.state(),
    }


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
    resume: Snapshot | None = None,
    checkpoint: Callable[[Callable[[], Snapshot]], None] | None = None,
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
    if inputs.shape[0] == 0 or inputs.shape[0] != labels.shape[0]:
        raise ValueError("training needs as many labels as inputs, and at least one of each")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    trainable, optimizer = begin_training(net, task, num_classes, inputs, method, config)
    norms = net.trained_norms()
    task_statistics.keep_for_earlier_tasks(norms, task, net.heads)  # before a resumed run's buffers load
    generator = torch.Generator().manual_seed(config.seed)
    n = inputs.shape[0]
    total = config.epochs * math.ceil(n / config.batch_size)
    step, loss_value, loss_per_epoch, epoch_loss, epoch_steps = 0, float("nan"), [], 0.0, 0
    first_epoch, done_in_epoch = 0, 0
    if resume is not None:
        restore_network(net, resume["network"])
        optimizer.load_state_dict(resume["optimizer"])
        method.load_state(resume["method"])
        generator.set_state(resume["epoch_generator"])
        first_epoch, done_in_epoch, step, loss_value = resume["epoch"], resume["batch"], resume["step"], resume["loss"]
        loss_per_epoch = list(resume["loss_per_epoch"])
        epoch_loss, epoch_steps = resume["epoch_loss"], resume["epoch_steps"]
    net.train()
    cuda = [inputs.device] if inputs.device.type == "cuda" else []
    # Dropout and drop-connect in trained blocks draw from torch's global RNG: seeded from the config
    # (and restored afterwards), so that a job run again makes the same version.
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)
        if resume is not None:
            torch.set_rng_state(resume["rng"])
            if cuda and resume.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(resume["cuda_rng"], inputs.device)
        for epoch in range(first_epoch, config.epochs):
            epoch_start = generator.get_state()
            order = torch.randperm(n, generator=generator)
            index_batches = [order[start : start + config.batch_size] for start in range(0, n, config.batch_size)]
            skip = done_in_epoch if epoch == first_epoch else 0
            if epoch != first_epoch:
                epoch_loss, epoch_steps = 0.0, 0
            remaining = index_batches[skip:]
            for position, (batch, batch_inputs) in enumerate(zip(remaining, batches_of(inputs, remaining),
                                                                 strict=True), start=skip + 1):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled(f"stopped after {step} of {total} steps")
                with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                    features = net.trunk(batch_inputs)
                    loss = functional.cross_entropy(net.heads[task](features).float(), labels[batch])
                    extra = method.extra_loss(features, batch)
                    if extra is not None:
                        loss = loss + extra
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise NonFiniteLoss(
                        f"the loss became {loss_value} at step {step + 1} of {total}: lower lr or lambda, "
                        "or use the proximal penalty form"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                method.before_step()
                optimizer.step()
                method.after_step(optimizer)
                step += 1
                epoch_loss, epoch_steps = epoch_loss + loss_value, epoch_steps + 1
                if progress is not None:
                    progress(step, total, loss_value)
                if checkpoint is not None:
                    checkpoint(partial(
                        _snapshot, net, trainable, optimizer, method, inputs.device if cuda else None,
                        {"step": step, "epoch": epoch, "batch": position, "epoch_generator": epoch_start,
                         "loss": loss_value, "loss_per_epoch": list(loss_per_epoch), "epoch_loss": epoch_loss,
                         "epoch_steps": epoch_steps},
                    ))
            loss_per_epoch.append(epoch_loss / epoch_steps)
    task_statistics.keep_for_task(norms, task)
    net.eval()
    return TrainResult(steps=step, loss=loss_value, loss_per_epoch=loss_per_epoch)
