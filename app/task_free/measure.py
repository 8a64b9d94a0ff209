"""What a train job does for task-free answers: measure class statistics with the new trunk, then fit.

The new task's statistics are measured on its training rows. An earlier task's are kept when the trunk
did not move (they are exact: same trunk, same features); when it moved, they are measured again on
the task's training rows if its training dataset is still stored, and kept, marked as measured with an
older trunk, if not (MAS.md §7, "stale statistics"). Then every predictor is fitted on the held-back rows
(each task's validation slice; its training rows when no task holds any back, said in the details) and
scored on every task's eval set, which is the task-free column of the accuracy matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from app.mas import task_free
from app.mas.class_statistics import ClassStatistics, Projection, features, head_logits, measure
from app.mas.drift import reservoir_rows
from app.mas.networks import MultiHeadNet
from app.mas.samples import LazySamples, rows_of
from app.mas.task_statistics import KEY_PART
from app.store import BlobStore
from app.task_free.options import TaskFreeOptions
from app.task_free.stored import load_statistics, save_fitted, save_statistics

Inputs = Tensor | LazySamples
Rows = Callable[[], tuple[Inputs, Tensor]]  # loads a task's rows (inputs, labels) when called
FALLBACK_ROWS = 512  # training rows per task that stand in for held-back rows when no task holds any back
DEFAULT_REFERENCE_ROWS = 512  # training rows per task whose features are a drift test's reference


@dataclass(frozen=True)
class TaskSource:
    """One task of the new version and where its rows can be read (None: not available)."""

    name: str
    num_classes: int
    train: Rows | None
    held_back: Rows | None = None
    eval: Rows | None = None
    unavailable: str | None = None  # why `train` is None, kept in the entry of statistics kept as stale


@dataclass(frozen=True)
class TaskFreeRecord:
    """What the version row keeps: `versions.class_statistics` and `versions.task_free`."""

    class_statistics: list[dict[str, Any]]
    task_free: dict[str, Any] | None


def measure_and_fit(store: BlobStore, net: MultiHeadNet, tasks: Sequence[TaskSource], *,
                    kept: Sequence[dict[str, Any]] | None, trunk_moved: bool, new_task: str | None,
                    options: TaskFreeOptions, seed: int, reference_rows: int = DEFAULT_REFERENCE_ROWS
                    ) -> TaskFreeRecord:
    """Statistics for every task of `tasks` (in the order learned) at `net`'s trunk, and every predictor
    fitted; `kept` are the base version's entries, `trunk_moved` whether the job changed the trunk. Each
    measured task also keeps the features of `reference_rows` of its rows (a reservoir drawn from `seed`),
    the reference that drift reports test deployment batches against (app/mas/drift.py)."""
    projection = Projection.draw(net.feature_dim, options.projection, seed) if options.projection else None
    by_task = {entry["task"]: entry for entry in kept or []}
    entries, statistics = [], []
    for source in tasks:
        entry = _statistics_entry(store, net, source, by_task.get(source.name), trunk_moved=trunk_moved,
                                  is_new=source.name == new_task, projection=projection,
                                  reference_rows=reference_rows, seed=seed)
        if entry is None:  # a task with no statistics and no rows: nothing task-free can answer for it
            return TaskFreeRecord(entries, None)
        entries.append(entry)
        statistics.append((source.name, load_statistics(store, entry["blob"])))
    if not _compatible(statistics, projection):
        return TaskFreeRecord(entries, None)
    catalog = task_free.Catalog(tuple(s.name for s in tasks), tuple(s.num_classes for s in tasks))
    held_from = "validation"
    held = _labelled_features(net, catalog, [(s.name, s.held_back) for s in tasks])
    if not len(held.labels):
        held_from = "training"
        held = _labelled_features(net, catalog, [(s.name, _first_rows(s.train)) for s in tasks])
    fitted = task_free.fit(statistics, held, projection=projection, unknown_rate=options.unknown_rate)
    held_scores = task_free.mahalanobis_scores(fitted.head, held.features)
    evaluated = _labelled_features(net, catalog, [(s.name, s.eval) for s in tasks])
    eval_scores = {predictor: task_free.score(*_choice_and_probs(fitted.head, predictor, evaluated), evaluated.labels,
                                              catalog)
                   for predictor in fitted.held_back} if len(evaluated.labels) else {}
    record = save_fitted(store, fitted, held_scores, unknown_rate=options.unknown_rate, held_back_from=held_from,
                         eval_scores=eval_scores, eval_rows=len(evaluated.labels))
    return TaskFreeRecord(entries, record)


def trunk_moved(before: dict[str, Tensor], after: dict[str, Tensor]) -> bool:
    """Whether what the trunk's features depend on differs between two network states (θ): its parameters
    and shared buffers (per-task batch-norm copies aside: features without a task never use them)."""
    return any(name not in after or not torch.equal(tensor.cpu(), after[name].cpu())
               for name, tensor in before.items() if name.startswith("trunk.") and KEY_PART not in name)


def _statistics_entry(store: BlobStore, net: MultiHeadNet, source: TaskSource, old: dict[str, Any] | None, *,
                      trunk_moved: bool, is_new: bool, projection: Projection | None, reference_rows: int,
                      seed: int) -> dict[str, Any] | None:
    """A task's entry: kept where still exact, measured where its rows are there, else kept as stale."""
    if old is not None and old["at_trunk"] and not trunk_moved and not is_new:
        return {key: value for key, value in old.items() if key != "kept_because"} | {"remeasured": False}
    if source.train is not None:
        inputs, labels = source.train()
        reference = reservoir_rows(len(labels), reference_rows, seed)
        stats: ClassStatistics = measure(net, inputs, labels, source.num_classes, projection, reference)
        return {"task": source.name, "blob": save_statistics(store, stats), "n": stats.n, "at_trunk": True,
                "remeasured": not is_new, "reference_rows": len(reference)}
    if old is not None:
        return {**old, "at_trunk": False, "remeasured": False,
                "kept_because": source.unavailable or "its training rows could not be read"}
    return None


def _compatible(statistics: list[tuple[str, ClassStatistics]], projection: Projection | None) -> bool:
    """Whether every task's statistics were measured in the same projection (kept ones may predate one)."""
    width = projection.width if projection is not None else None
    return all((s.projected_sums.shape[1] if s.projected_sums is not None else None) == width for _, s in statistics)


def _first_rows(rows: Rows | None) -> Rows | None:
    if rows is None:
        return None

    def first() -> tuple[Inputs, Tensor]:
        inputs, labels = rows()
        keep = torch.arange(min(len(labels), FALLBACK_ROWS))
        return rows_of(inputs, keep), labels[keep]
    return first


def _labelled_features(net: MultiHeadNet, catalog: task_free.Catalog,
                       sources: list[tuple[str, Rows | None]]) -> task_free.HeldBack:
    """Trunk features, each task head's logits and global labels of the rows of every task that has some."""
    parts_f, parts_y, parts_logits = [], [], []
    for task, rows in sources:
        if rows is None:
            continue
        inputs, labels = rows()
        if not len(labels):
            continue
        f = features(net, inputs)
        parts_f.append(f.cpu())
        parts_y.append(catalog.global_labels(task, labels.cpu()))
        parts_logits.append([logits.cpu() for logits in head_logits(net, list(catalog.tasks), inputs, f)])
    if not parts_f:
        return task_free.HeldBack(torch.zeros(0, net.feature_dim), torch.zeros(0, dtype=torch.long),
                                  [torch.zeros(0, size) for size in catalog.sizes])
    logits = [torch.cat([part[t] for part in parts_logits]) for t in range(len(catalog.tasks))]
    return task_free.HeldBack(torch.cat(parts_f), torch.cat(parts_y), logits)


def _choice_and_probs(head: task_free.TaskFreeHead, predictor: str,
                      rows: task_free.HeldBack) -> tuple[Tensor, Tensor]:
    answer = task_free.answer(head, predictor, rows.features, rows.head_logits)
    return answer.classes, answer.probabilities
