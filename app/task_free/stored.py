"""How a version keeps what task-free answers need, and how it reads back.

Two kinds of blob, both content-addressed (so shared between versions whenever the bytes are equal):
- one per task: its class statistics (app/mas/class_statistics.py), named in `versions.class_statistics`
  with whether they were measured with this version's trunk;
- one per version: the fitted predictors (class means, precision, ridge head) with the held-back rows'
  unknown scores, so that the threshold follows the model's `unknown_rate` without re-fitting; and the
  projection R, the same bytes for every version of a model (stored once).
`versions.task_free` names them and keeps every predictor's held-back and eval scores.
"""

from __future__ import annotations

import json
import math
from typing import Any

from torch import Tensor

from app.mas.class_statistics import ClassStatistics, Projection
from app.mas.task_free import Fitted, Scores, TaskFreeHead, unknown_threshold
from app.mas.tensors_io import tensors_from_bytes, tensors_to_bytes
from app.store import BlobStore
from app.task_free.options import TaskFreeOptions


def save_statistics(store: BlobStore, statistics: ClassStatistics) -> str:
    """Stored in float32: sums are accumulated in float64, but a task's Gram matrices are its largest blob
    (M² + d² numbers) and a moving trunk writes them again for every task; 7 digits are plenty to fit on."""
    return store.put(tensors_to_bytes({name: t.float() for name, t in statistics.as_tensors().items()}))


def load_statistics(store: BlobStore, blob: str) -> ClassStatistics:
    """A task's statistics, back in float64 for fitting."""
    return ClassStatistics.from_tensors({name: t.double() for name, t in tensors_from_bytes(store.get(blob)).items()})


def finite_scores(scores: Scores) -> dict[str, float | None]:
    """Scores as JSON keeps them: NaN (no rows) as null."""
    return {name: value if math.isfinite(value) else None for name, value in scores.as_dict().items()}


def save_fitted(store: BlobStore, fitted: Fitted, held_back_scores: Tensor, *, unknown_rate: float,
                held_back_from: str, eval_scores: dict[str, Scores], eval_rows: int) -> dict[str, Any]:
    """The fitted predictors stored; what `versions.task_free` keeps of them."""
    head = fitted.head
    tensors = head.as_tensors() | {"held_back_scores": held_back_scores.float().contiguous()}
    projection = head.projection
    return {
        "blob": store.put(tensors_to_bytes(tensors)),
        "projection_blob": store.put(tensors_to_bytes({"weight": projection.weight})) if projection else None,
        "projection": projection.width if projection else 0,
        "meta": head.as_meta(),
        "unknown_rate": unknown_rate,
        "held_back": {name: finite_scores(s) for name, s in fitted.held_back.items()},
        "held_back_rows": len(held_back_scores),
        "held_back_from": held_back_from,
        "eval": {name: finite_scores(s) for name, s in eval_scores.items()},
        "eval_rows": eval_rows,
    }


def load_head(store: BlobStore, task_free: dict[str, Any], unknown_rate: float) -> TaskFreeHead:
    """The fitted predictors of a version, with the unknown threshold at `unknown_rate`."""
    tensors = tensors_from_bytes(store.get(task_free["blob"]))
    projection = None
    if task_free.get("projection_blob"):
        projection = Projection(tensors_from_bytes(store.get(task_free["projection_blob"]))["weight"])
    head = TaskFreeHead.restore(tensors, task_free["meta"], projection)
    head.threshold = unknown_threshold(tensors["held_back_scores"], unknown_rate)
    return head


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def blobs_of(class_statistics: list[dict[str, Any]] | None, task_free: dict[str, Any] | None) -> list[str]:
    """Every blob a version's task-free columns name (the blob collector keeps them)."""
    names = [entry["blob"] for entry in class_statistics or []]
    if task_free:
        names += [name for name in (task_free.get("blob"), task_free.get("projection_blob")) if name]
    return names


def eval_scores(task_free: dict[str, Any] | None, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model's predictor's scores on the eval sets of every task (None: not measured)."""
    if not task_free:
        return None
    return task_free.get("eval", {}).get(TaskFreeOptions.of(options).predictor)


def eval_accuracy(task_free: dict[str, Any] | None, options: dict[str, Any] | None) -> float | None:
    scores = eval_scores(task_free, options)
    return scores.get("accuracy") if scores else None


def current_threshold(store: BlobStore, task_free: dict[str, Any], options: dict[str, Any] | None) -> float:
    """The unknown threshold at the model's `unknown_rate` now (read from the blob only when it changed)."""
    rate = TaskFreeOptions.of(options).unknown_rate
    if rate == task_free["unknown_rate"]:
        return float(task_free["meta"]["threshold"])
    return load_head(store, task_free, rate).threshold


def details(store: BlobStore, class_statistics: list[dict[str, Any]] | None, task_free: dict[str, Any] | None,
            options: dict[str, Any] | None) -> dict[str, Any] | None:
    """`task_free` of a version's details: the model's predictor with its held-back accuracy, calibration
    error and unknown threshold, every predictor's scores, and per task where its statistics come from."""
    if not task_free:
        return None
    chosen = TaskFreeOptions.of(options)
    held_back = task_free.get("held_back", {}).get(chosen.predictor) or {}
    return {
        "predictor": chosen.predictor,
        "accuracy": held_back.get("accuracy"),
        "task_accuracy": held_back.get("task_accuracy"),
        "ece": held_back.get("ece"),
        "unknown_rate": chosen.unknown_rate,
        "threshold": _finite(current_threshold(store, task_free, options)),
        "temperature": task_free["meta"]["temperatures"].get(chosen.predictor),
        "rho": task_free["meta"]["rho"],
        "projection": task_free["projection"],
        "held_back_rows": task_free["held_back_rows"],
        "held_back_from": task_free["held_back_from"],
        "predictors": task_free.get("held_back", {}),
        "eval": task_free.get("eval", {}),
        "eval_rows": task_free.get("eval_rows", 0),
        "tasks": {entry["task"]: {"n": entry["n"], "at_this_trunk": entry["at_trunk"],
                                  "remeasured": entry["remeasured"], "blob": entry["blob"],
                                  "reference_rows": entry.get("reference_rows", 0),
                                  # statistics (and drift references) kept from an older trunk: why
                                  "kept_because": entry.get("kept_because")}
                  for entry in class_statistics or []},
        "blob": task_free["blob"],
    }


def task_free_tensors(store: BlobStore, class_statistics: list[dict[str, Any]] | None,
                      task_free: dict[str, Any] | None) -> dict[str, Tensor]:
    """The task-free blobs' tensors under the names a checkpoint file gives them (none for older versions)."""
    tensors: dict[str, Tensor] = {}
    for entry in class_statistics or []:
        for name, tensor in tensors_from_bytes(store.get(entry["blob"])).items():
            tensors[f"class_statistics.{entry['task']}.{name}"] = tensor
    if task_free:
        for name, tensor in tensors_from_bytes(store.get(task_free["blob"])).items():
            tensors[f"task_free.{name}"] = tensor
        if task_free.get("projection_blob"):
            tensors["task_free.projection"] = tensors_from_bytes(store.get(task_free["projection_blob"]))["weight"]
    return tensors


def task_free_metadata(class_statistics: list[dict[str, Any]] | None,
                       task_free: dict[str, Any] | None) -> dict[str, str]:
    """What a checkpoint's or an export's metadata says of task-free answers (nothing for older versions)."""
    if not task_free:
        return {}
    kept = {key: value for key, value in task_free.items() if key not in ("blob", "projection_blob")}
    statistics = [{key: entry[key] for key in ("task", "n", "at_trunk", "remeasured")}
                  for entry in class_statistics or []]
    return {"task_free": json.dumps(kept, sort_keys=True), "class_statistics": json.dumps(statistics)}
