"""The three networks of the paper benchmark and the data they train on, prepared once per run.

- `cnn`: the built-in `cnn` kind from scratch (3×3 convolutions 16 and 32 with max-pooling, a 128-wide
  layer), on Fashion-MNIST's 28×28 pixels scaled to [0, 1];
- `efficientnet`: the `image-backbone` kind (EfficientNet-Lite0, ImageNet weights) at a small image size,
  its last blocks trainable, on Fashion-MNIST preprocessed as the service does (grey → RGB, bicubic
  resize, (x − 127) / 128);
- `minilm`: the `text-encoder` kind (all-MiniLM-L6-v2), its last 2 encoder layers trainable, on WordNet
  definitions tokenised as the service does.
For the pretrained two the frozen blocks are run once over every task's rows (tails.py) and only the
tail trains; the seconds that takes are reported as the backbone's feature time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from app.mas.data import TaskData
from app.mas.networks import MultiHeadNet, build_network
from benchmarks.paper.data import check_pretrained, load_fashion_mnist, load_wordnet_definitions
from benchmarks.paper.sequences import IMAGE_TASKS, TEXT_TASKS, TaskRows, image_tasks, sequences_of, text_tasks
from benchmarks.paper.tails import SplitNetwork, split_network

MODALITY = {"cnn": "image", "efficientnet": "image", "minilm": "text"}
CNN = {"kind": "cnn", "input_shape": [1, 28, 28], "channels": [16, 32], "hidden": [128]}


@dataclass
class Prepared:
    """A backbone's tasks as tensors (cached activations for the tails), its network factory and sequences."""

    name: str
    modality: str
    architecture: dict
    tasks: dict[str, TaskData]
    rows: dict[str, TaskRows]  # the raw rows, for the service run
    make_net: Callable[[int], MultiHeadNet]
    sequences: dict[str, list[str]]
    feature_seconds: float = 0.0
    feature_cpu_seconds: float = 0.0
    trainable_parameters: int = 0
    split: SplitNetwork | None = field(default=None, repr=False)


def load_rows(modality: str, sizes: dict) -> dict[str, TaskRows]:
    """Every task of a modality, raw; MissingData when the Debian package is not installed."""
    if modality == "image":
        return image_tasks(load_fashion_mnist(), sizes["n_train"], sizes["n_eval"])
    return text_tasks(load_wordnet_definitions(), sizes["n_train"], sizes["n_eval"])


def check_data(backbones: list[str]) -> None:
    """Fail early, before any network is built, when data or weights are missing."""
    if any(MODALITY[b] == "image" for b in backbones):
        load_fashion_mnist()
    if "minilm" in backbones:
        load_wordnet_definitions()
    if any(b != "cnn" for b in backbones):
        check_pretrained()


def _tensors(name: str, x_train: torch.Tensor, rows: TaskRows, x_eval: torch.Tensor) -> TaskData:
    return TaskData(name, x_train, torch.from_numpy(rows.y_train), x_eval, torch.from_numpy(rows.y_eval))


def prepare(name: str, rows: dict[str, TaskRows], profile: dict) -> Prepared:
    modality = MODALITY[name]
    sequences = sequences_of(IMAGE_TASKS if modality == "image" else TEXT_TASKS)
    kept = list(sequences.items())[: profile.get("sequences")]
    sequences = {key: seq[: profile.get("max_tasks")] for key, seq in kept}
    used = {task for seq in sequences.values() for task in seq}
    if name == "cnn":
        def pixels(images: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        tasks = {t: _tensors(t, pixels(rows[t].train), rows[t], pixels(rows[t].eval)) for t in used}
        count = sum(p.numel() for p in build_network(CNN, 0).trunk.parameters())
        return Prepared(name, modality, CNN, tasks, rows, lambda seed: build_network(CNN, seed), sequences,
                        trainable_parameters=count)
    spec = ({"kind": "image-backbone", "image_size": profile["image_size"]} if modality == "image"
            else {"kind": "text-encoder", "max_length": profile["max_length"]}) | {"trainable": {"last": 2}}
    split = split_network(spec)
    started, cpu = time.perf_counter(), time.process_time()
    tasks = {}
    for t in sorted(used):
        train, held = split.preprocess(list(rows[t].train)), split.preprocess(list(rows[t].eval))
        device = profile.get("device", "cpu")
        tasks[t] = _tensors(t, split.features(train, device=device), rows[t], split.features(held, device=device))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    count = sum(p.numel() for p in split.tail.trunk.parameters())
    return Prepared(name, modality, split.spec, tasks, rows, lambda seed: split.fresh_tail(), sequences,
                    feature_seconds=seconds, feature_cpu_seconds=cpu, trainable_parameters=count, split=split)
