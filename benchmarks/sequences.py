"""The offline task sequences of the continual-learning benchmark.

- split digits: scikit-learn's bundled 8×8 digits, 5 tasks of 2 classes (0/1, …, 8/9);
- permuted digits: all 10 digits, 5 tasks, each with its own fixed pixel permutation (task 0 unpermuted);
- split MNIST-1D: the mnist1d package's `make_dataset` (generated locally from its templates; its
  download path is never used), 5 tasks of 2 classes, 40 features;
- mixed 8: the paper's longer sequence (Fig. 5) in miniature, where shapes allow: the 5 split-digits
  tasks followed by 3 permuted-digits tasks of 10 classes, all 64 features.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from app.mas.data import TaskData, digits_arrays, split_digits


def _split(x: np.ndarray, y: np.ndarray, name: str, rng: np.random.Generator, test_fraction: float) -> TaskData:
    order = rng.permutation(len(x))
    n_test = int(round(len(order) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    as_tensors = [torch.from_numpy(a) for a in (x[train], y[train], x[test], y[test])]
    return TaskData(name, *as_tensors)


def permuted_digits(n_tasks: int = 5, seed: int = 0, prefix: str = "perm") -> list[TaskData]:
    x, y = digits_arrays()
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        permutation = np.arange(64) if i == 0 and prefix == "perm" else rng.permutation(64)
        tasks.append(_split(x[:, permutation], y, f"{prefix}-{i}", rng, 0.3))
    return tasks


@functools.cache
def _mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """The package's canonical data set (its seed 42), normalised; generated once per process (seconds)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = 42
    data = make_dataset(args)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return (x - x.mean()) / x.std(), y


def split_mnist1d(n_tasks: int = 5, seed: int = 0) -> list[TaskData]:
    x, y = _mnist1d()  # the run's seed only picks the splits
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        pair = (2 * i, 2 * i + 1)
        keep = np.isin(y, pair)
        tasks.append(_split(x[keep], (y[keep] == pair[1]).astype(np.int64), f"mnist1d-{pair[0]}-{pair[1]}", rng, 0.3))
    return tasks


def mixed_eight(seed: int = 0) -> list[TaskData]:
    return split_digits(5, seed=seed) + permuted_digits(3, seed=seed + 1000, prefix="mixperm")


SEQUENCES = {
    "split_digits": lambda seed: split_digits(5, seed=seed),
    "permuted_digits": lambda seed: permuted_digits(5, seed=seed),
    "split_mnist1d": lambda seed: split_mnist1d(5, seed=seed),
    "mixed_8": mixed_eight,
}


def with_validation(tasks: list[TaskData], fraction: float = 0.2, seed: int = 0) -> list[TaskData]:
    """The same tasks with a validation split carved out of each training set as its 'test' data."""
    rng = np.random.default_rng(seed + 7)
    out = []
    for t in tasks:
        order = torch.from_numpy(rng.permutation(t.x_train.shape[0]))
        n_val = int(round(len(order) * fraction))
        val, train = order[:n_val], order[n_val:]
        out.append(TaskData(t.name, t.x_train[train], t.y_train[train], t.x_train[val], t.y_train[val]))
    return out
