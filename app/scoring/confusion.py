"""A scoring's confusion, counted in memory that grows with the rows and the classes, never classes².

A dense [labeled][predicted] matrix of a 10,000-class task is 10⁸ cells (800 MB as int64, 200 MB as JSON)
for an answer that holds at most as many non-zero cells as rows. So the counts are kept per class (support,
predicted, right) and per occupied cell (at most one per row); the dense matrix is only drawn for tasks of
at most LIFELONG_MAX_CONFUSION_CLASSES classes. Above that the answer lists the classes with the most
support and the largest off-diagonal cells (the top confusions), each list at most that long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    """Counts of one scoring: per class, and per occupied (labeled, predicted) cell."""

    num_classes: int
    support: np.ndarray  # [K] rows labeled each class
    predicted: np.ndarray  # [K] rows predicted as each class
    right: np.ndarray  # [K] rows labeled and predicted as each class
    cells: np.ndarray  # [m, 3] labeled, predicted, count of each occupied cell, diagonal included

    @property
    def n(self) -> int:
        return int(self.support.sum())

    @property
    def accuracy(self) -> float:
        return float(self.right.sum() / max(1, self.n))


def count_confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> Confusion:
    """The counts of `predicted` against `labels` (class indices below `num_classes`)."""
    labels, predicted = labels.astype(np.int64), predicted.astype(np.int64)
    hit = labels == predicted
    cell, count = np.unique(labels * num_classes + predicted, return_counts=True)
    return Confusion(
        num_classes=num_classes,
        support=np.bincount(labels, minlength=num_classes),
        predicted=np.bincount(predicted, minlength=num_classes),
        right=np.bincount(labels[hit], minlength=num_classes),
        cells=np.stack([cell // num_classes, cell % num_classes, count], axis=1) if len(cell) else
        np.zeros((0, 3), dtype=np.int64),
    )


def dense_matrix(confusion: Confusion) -> list[list[int]]:
    """[labeled][predicted] counts; only for a task small enough to draw whole (the caller checks)."""
    matrix = np.zeros((confusion.num_classes, confusion.num_classes), dtype=np.int64)
    labeled, predicted, count = confusion.cells.T
    matrix[labeled, predicted] = count
    return matrix.tolist()


def top_confusions(confusion: Confusion, limit: int) -> list[tuple[int, int, int]]:
    """The `limit` largest off-diagonal cells as (labeled, predicted, count), largest first (ties: by index)."""
    off = confusion.cells[confusion.cells[:, 0] != confusion.cells[:, 1]]
    order = np.lexsort((off[:, 1], off[:, 0], -off[:, 2]))[:limit]
    return [(int(a), int(b), int(c)) for a, b, c in off[order]]


def listed_classes(confusion: Confusion, limit: int) -> list[int]:
    """Every class when there are at most `limit`; else the `limit` with the most support, by index."""
    if confusion.num_classes <= limit:
        return list(range(confusion.num_classes))
    order = np.lexsort((np.arange(confusion.num_classes), -confusion.support))[:limit]
    return sorted(int(k) for k in order)
