"""Answering a prediction that names no task: every class the version learned, a confidence, and "unknown".

The version's fitted predictors (app/task_free/stored.py) are read once and kept, by blob and unknown
rate, next to the network cache; the network's trunk gives the features, and the routed predictors
also run each task's head (app/mas/task_free.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import torch

from app.errors import Conflict
from app.mas import task_free
from app.mas.class_statistics import features, head_logits
from app.mas.devices import device_of
from app.mas.networks import MultiHeadNet
from app.store import BlobStore
from app.task_free.options import TaskFreeOptions
from app.task_free.stored import load_head

HEADS_KEPT = 32


class HeadCache:
    """A small LRU of fitted task-free heads, by (blob, unknown rate): a head is a few MB at most."""

    def __init__(self, size: int = HEADS_KEPT):
        self.size = size
        self._entries: OrderedDict[tuple[str, float], task_free.TaskFreeHead] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, float], load: Callable[[], task_free.TaskFreeHead]) -> task_free.TaskFreeHead:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        head = load()
        with self._lock:
            self._entries[key] = head
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return head


HEADS = HeadCache()


def check_answerable(model: str, number: int, tasks: list[dict[str, Any]], fitted: dict[str, Any] | None) -> None:
    """409 when the version cannot answer without a task, with what to do instead."""
    if not tasks:
        raise Conflict(f"version {number} of model {model!r} has learned no task yet: there is nothing to answer with")
    if not fitted:
        raise Conflict(f"version {number} of model {model!r} has no class statistics for every task (it was made "
                       "before task-free answers, or a task's training data is gone): name a task, or learn a new "
                       "task, whose job measures them")


def head_of(store: BlobStore, fitted: dict[str, Any], options: TaskFreeOptions) -> task_free.TaskFreeHead:
    return HEADS.get((fitted["blob"], options.unknown_rate), lambda: load_head(store, fitted, options.unknown_rate))


def answer_rows(net: MultiHeadNet, head: task_free.TaskFreeHead, predictor: str, x: torch.Tensor) -> task_free.Answer:
    """The task-free answer for preprocessed inputs `x` (on the network's device; the head's math on the CPU)."""
    x = x.to(device_of(net))
    f = features(net, x)
    logits = head_logits(net, list(head.catalog.tasks), x, f) if predictor in task_free.ROUTED else None
    with torch.inference_mode():
        return task_free.answer(head, predictor, f.cpu(), [t.cpu() for t in logits] if logits else None)


def concatenated(answers: list[task_free.Answer]) -> task_free.Answer:
    """One answer of the rows of several, in order."""
    return task_free.Answer(*(torch.cat([getattr(a, f.name) for a in answers]) for f in fields(task_free.Answer)))


def class_labels(head: task_free.TaskFreeHead, tasks: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every class in global order as {"task", "label"}: its name, or `task/index` for numeric labels."""
    entries = {entry["name"]: entry for entry in tasks}
    labelled = []
    for task, size in zip(head.catalog.tasks, head.catalog.sizes, strict=True):
        names = entries.get(task, {}).get("classes")
        labelled += [{"task": task, "label": names[i] if names else f"{task}/{i}"} for i in range(size)]
    return labelled
