"""Training one task: the loop that every method plugs into through its hooks.

Old heads are left out of the optimizer (and out of the forward pass), so no momentum, weight
decay or penalty can move them: they stay bit for bit as they were. Shuffling and the new head's
initialisation use generators seeded from the config, so a run is deterministic on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as functional
from torch import Tensor

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
) -> TrainResult:
    """Learn `task` on (inputs, labels), adding its head if the network lacks it.

    `inputs` may be LazySamples (images decoded a batch at a time): batches are then loaded ahead in a
    thread, in the same shuffled order, so a run is the same whichever form its inputs take."""
    inputs, labels = net.input_spec.cast(inputs), labels.to(torch.int64)
    if inputs.shape[0] == 0 or inputs.shape[0] != labels.shape[0]:
        raise ValueError("training needs as many labels as inputs, and at least one of each")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    if task not in net.heads:
        net.add_head(task, num_classes, seed=config.seed)
        net.heads[task].to(inputs.device)  # initialised on the CPU from its seed, trained where the data is
    trainable = net.task_parameters(task)
    optimizer = _make_optimizer(list(trainable.values()), config)
    method.begin_task(net, task, trainable, config.lr, inputs)
    generator = torch.Generator().manual_seed(config.seed)
    n = inputs.shape[0]
    total = config.epochs * math.ceil(n / config.batch_size)
    step, loss_value, loss_per_epoch = 0, float("nan"), []
    net.train()
    # Dropout and drop-connect in trained blocks draw from torch's global RNG: seeded from the config
    # (and restored afterwards), so that a job run again makes the same version.
    with torch.random.fork_rng(devices=[inputs.device] if inputs.device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        for _ in range(config.epochs):
            epoch_loss, epoch_steps = 0.0, 0
            order = torch.randperm(n, generator=generator)
            index_batches = [order[start : start + config.batch_size] for start in range(0, n, config.batch_size)]
            for batch, batch_inputs in zip(index_batches, batches_of(inputs, index_batches), strict=True):
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
            loss_per_epoch.append(epoch_loss / epoch_steps)
    net.eval()
    return TrainResult(steps=step, loss=loss_value, loss_per_epoch=loss_per_epoch)
