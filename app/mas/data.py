"""Offline data for demos, tests and benchmarks: scikit-learn's bundled digits, split into tasks.

Split digits is the MAS paper's split-MNIST protocol in miniature: task i is the pair of digits
(2i, 2i+1), labelled 0 and 1 within the task, each with its own head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class TaskData:
    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: pixels scaled to [0, 1] as float32 [n, 64], labels 0–9 as int64."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def split_digits(n_tasks: int = 5, seed: int = 0, test_fraction: float = 0.3) -> list[TaskData]:
    """Up to 5 two-class tasks of 8×8 digits, pixels scaled to [0, 1], flattened to 64 features."""
    if not 1 <= n_tasks <= 5:
        raise ValueError("split digits has 1 to 5 tasks")
    x, y = digits_arrays()
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        pair = (2 * i, 2 * i + 1)
        index = rng.permutation(np.flatnonzero(np.isin(y, pair)))
        n_test = int(round(len(index) * test_fraction))
        test, train = index[:n_test], index[n_test:]
        local = (y == pair[1]).astype(np.int64)
        tasks.append(
            TaskData(
                name=f"digits-{pair[0]}-{pair[1]}",
                x_train=torch.from_numpy(x[train]), y_train=torch.from_numpy(local[train]),
                x_test=torch.from_numpy(x[test]), y_test=torch.from_numpy(local[test]),
            )
        )
    return tasks
