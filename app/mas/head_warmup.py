"""A new task's head learns alone on the frozen trunk's features before the trunk trains (linear probing,
then fine-tuning: Kumar et al., ICLR 2022).

A new head starts random, so the first steps of a task send large, arbitrary errors (p − y) back into the
trunk, and on a pretrained trunk those steps move the features that every earlier task's head reads. A
head that already separates the new classes sends back only what the trunk must still learn. So before
the task trains with its method (every λ trial from the same warmed head), the head alone trains for
`epochs` passes over the trunk's features of the training rows: computed once, in eval mode (no dropout),
with the task's own optimiser settings and batch size. Nothing but the head changes, and the run is
deterministic: the shuffle has its own generator, seeded from the config's seed.

The batch norms that will train normalise those features by the new rows' own statistics, measured in one
pass of training-sized batches, not by their running statistics, which hold the previous task's data. The
trunk then trains on batch statistics of the new rows; a head warmed on features normalised for other
data fits features the trunk never shows it, and its first steps send large errors back into the trunk.
On EfficientNet-Lite0 (the paper benchmark's 8 Fashion-MNIST tasks, fine-tuning, seeds 0 and 1) the
warm-up on running statistics raised fine-tuning's forgetting from 0.014 and 0.008 (no warm-up) to 0.276
and 0.314; on the new rows' statistics it is 0.022 and 0.053 (MAS at λ 0.1 forgets at most 0.004 in all
three). The running statistics, and every task's copy of them, are put back as they were: the warm-up
changes nothing but the head.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as functional
from torch import Tensor, nn

from app.mas.class_statistics import features as trunk_features
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples, batches_of
from app.mas.training import TrainConfig, make_optimizer

# "auto": the passes a new head gets on a trunk with pretrained weights, and none on a trunk that starts
# from random values (its features mean nothing before the first task trains it).
PRETRAINED_WARMUP_EPOCHS = 200
# A warm-up never takes more optimiser steps than this, whatever the epochs and rows: on large tasks it
# stops after fewer passes (each pass is cheap, but 200 passes over 100,000 rows would not be).
MAX_WARMUP_STEPS = 20_000
MAX_WARMUP_EPOCHS = 10_000  # the most a request may ask for


def warmup_epochs(requested: int | str, pretrained: bool) -> int:
    """The passes a request's `head_warmup` means: its number, or for "auto" the pretrained trunk's default."""
    if requested == "auto":
        return PRETRAINED_WARMUP_EPOCHS if pretrained else 0
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise ValueError("head_warmup is 'auto' or a number of passes ≥ 0")
    return requested


def warm_up_head(net: MultiHeadNet, task: str, inputs: Tensor | LazySamples, labels: Tensor, config: TrainConfig,
                 epochs: int) -> list[float]:
    """Train `task`'s head alone for `epochs` passes over the trunk's features of `inputs` (at most
    MAX_WARMUP_STEPS steps); returns the mean loss of each pass done. The trunk is not touched. Where none
    of the trunk trains there is nothing to warm up for: no pass is done."""
    if epochs <= 0 or not any(name.startswith("trunk.") for name in net.task_parameters(task)):
        return []  # a frozen trunk (heads only): nothing for a random head to disturb, its epochs do the rest
    # The trunk's eval-mode features, computed once; cloned out of inference mode so the head can train on them.
    with _normalised_by_own_statistics(net, inputs, config):
        features = trunk_features(net, inputs).clone()
    labels = labels.to(torch.int64)
    head = net.heads[task]
    optimizer = make_optimizer(list(head.parameters()), config)
    generator = torch.Generator().manual_seed(config.seed)
    n = features.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    losses = []
    for _ in range(min(epochs, max(1, MAX_WARMUP_STEPS // steps_per_epoch))):
        order = torch.randperm(n, generator=generator).to(features.device)
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = functional.cross_entropy(head(features[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        losses.append(total / steps_per_epoch)
    return losses


@contextmanager
def _normalised_by_own_statistics(net: MultiHeadNet, inputs: Tensor | LazySamples,
                                  config: TrainConfig) -> Iterator[None]:
    """Inside, the batch norms that train for the task hold the statistics of `inputs` as their running ones:
    the average of the batch statistics of one pass in batches of `config.batch_size` (shuffled, as training
    draws them; a last batch of one row, which has no variance, is left out). Afterwards every buffer and
    setting of theirs is as before."""
    norms = net.trained_norms()
    if not norms:
        yield
        return
    saved = [({name: value.clone() for name, value in norm.named_buffers(recurse=False)}, norm.momentum)
             for norm in norms]
    was_training = net.training
    try:
        _measure_statistics(net, norms, inputs, config)
        yield
    finally:
        for norm, (buffers, momentum) in zip(norms, saved, strict=True):
            for name, value in buffers.items():
                getattr(norm, name).copy_(value)
            norm.momentum = momentum
        net.train(was_training)


def _measure_statistics(net: MultiHeadNet, norms: list[nn.Module], inputs: Tensor | LazySamples,
                        config: TrainConfig) -> None:
    """Set `norms`' running statistics to the cumulative average of their batch statistics over `inputs`."""
    order = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(config.seed))
    batches = [order[start : start + config.batch_size] for start in range(0, len(order), config.batch_size)]
    batches = [batch for batch in batches if len(batch) > 1]
    if not batches:
        return  # one row: no statistics to measure, the running ones stay
    net.eval()  # no dropout; only the norms below take batch statistics
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the pass
        norm.train()
    with torch.no_grad():
        for rows in batches_of(inputs, batches):
            net.trunk(net.input_spec.cast(rows))
