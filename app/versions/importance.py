"""A version's importance as stored: one content-addressed estimate per task (MAS.md §4).

`versions.importance_parts` lists, in the order the tasks were learned, {"task", "blob", "n",
"measure", "layers"}: the blob holds S_t = Σ|g| (safetensors), n_t its sample count. A new version
names again every estimate it did not change, so versions share them and only the changed task's
estimate is ever written. The total Σ_t S_t/n_t is summed one blob at a time: a job never holds
more than one task's estimate besides the total.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from app.mas.accumulation import TaskImportance, total_importance
from app.mas.tensors_io import tensors_from_bytes, tensors_to_bytes
from app.store import BlobStore

Parts = list[dict[str, Any]]


def _estimate(store: BlobStore, part: dict[str, Any]) -> TaskImportance:
    return TaskImportance(tensors_from_bytes(store.get(part["blob"])), part["n"])


def load_total(store: BlobStore, parts: Parts) -> dict[str, Tensor]:
    """Ω for the next task's penalty: Σ_t S_t/n_t over every estimate of the version."""
    return total_importance(_estimate(store, part) for part in parts)


def load_task(store: BlobStore, parts: Parts, task: str) -> TaskImportance:
    """One task's estimate; an empty one if the version has none for it."""
    part = next((p for p in parts if p["task"] == task), None)
    return _estimate(store, part) if part is not None else TaskImportance()


def with_task(store: BlobStore, parts: Parts, task: str, estimate: TaskImportance, measure: str) -> Parts:
    """The parts with `task`'s estimate stored and put in its place (appended if the task had none)."""
    part = {"task": task, "blob": store.put(tensors_to_bytes(estimate.sums)), "n": estimate.n,
            "measure": measure, "layers": layer_stats(estimate.mean())}
    if any(p["task"] == task for p in parts):
        return [part if p["task"] == task else p for p in parts]
    return [*parts, part]


def layer_stats(omega: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Mean and max of Ω per parameter tensor (those it has)."""
    return {name: {"mean": float(value.double().mean()), "max": float(value.max())}
            for name, value in sorted(omega.items()) if value.numel()}


def importance_stats(theta: dict[str, Tensor], omega: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """Mean and max of the total Ω for every floating parameter of θ; one without Ω has Ω = 0."""
    measured = layer_stats(omega)
    return {name: measured.get(name, {"mean": 0.0, "max": 0.0})
            for name in sorted(theta) if torch.is_floating_point(theta[name])}


def importance_download(store: BlobStore, parts: Parts, task: str | None,
                        part: str) -> tuple[dict[str, Tensor] | None, dict[str, str]]:
    """What `GET …/importance` sends: one task's mean, the total, or the first API's frozen/open parts;
    None when the named task has no estimate."""
    if task is not None:
        found = next((p for p in parts if p["task"] == task), None)
        if found is None:
            return None, {}
        return _estimate(store, found).mean(), {"X-Lifelong-N": str(found["n"])}
    if part == "frozen":
        return load_total(store, parts[:-1]), {}
    if part == "open":
        last = _estimate(store, parts[-1]) if parts else TaskImportance()
        return last.sums, {"X-Lifelong-N-Open": str(last.n)}
    return load_total(store, parts), {}
