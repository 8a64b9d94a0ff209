"""The paper benchmark's tasks and sequences, on Fashion-MNIST and WordNet definitions.

A task is a named set of classes; its labels are the classes' indices in name order (as the service
numbers the classes of an uploaded dataset). Each class's samples are handed out from one fixed,
seeded permutation of that class, so no image or definition is in two tasks' data, and a task's train
rows come from the dataset's train side (Fashion-MNIST's 60,000; WordNet: the first part of each
category's permutation) and its eval rows from the held-out side (Fashion-MNIST's 10,000 test images;
the rest of the category). The data are the same for every seed and method; seeds vary the network's
initial values, the heads, the shuffles and the held-back rows.

Sequences, per modality (the issue's list):
- split_fmnist: Fashion-MNIST in 5 tasks of 2 classes, multi-head (Split MNIST's protocol);
- wordnet: 5 tasks of 2–4 WordNet categories (definition → lexicographer file);
- mixed_8: the 5 tasks above, then 3 tasks of another grain (Fashion-MNIST: upper-body garments 4-way,
  footwear 3-way, trouser/dress/bag; WordNet: 3 more groups of categories). Its first 5 tasks are the
  5-task sequence, so the 5-task figures are read off the same runs, after task 5;
- transfer pairs (Table 2): two tasks from different parts of the data, in both orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.paper.data import FASHION_CLASSES, Images

DATA_SEED = 20180917  # the subsets; fixed, so that every seed and method sees the same data


@dataclass(frozen=True)
class TaskSpec:
    name: str
    classes: tuple[str, ...]  # in label order: sorted by name

    @classmethod
    def of(cls, prefix: str, *classes: str) -> TaskSpec:
        ordered = tuple(sorted(classes))
        return cls(f"{prefix}-{'-'.join(ordered)}", ordered)


def _fm(*indices: int) -> TaskSpec:
    return TaskSpec.of("fm", *(FASHION_CLASSES[i] for i in indices))


IMAGE_TASKS = {spec.name: spec for spec in [
    _fm(0, 1), _fm(2, 3), _fm(4, 5), _fm(6, 7), _fm(8, 9),
    _fm(0, 2, 4, 6), _fm(5, 7, 9), _fm(1, 3, 8),
]}
TEXT_TASKS = {spec.name: spec for spec in [
    TaskSpec.of("wn", "animal", "plant"), TaskSpec.of("wn", "artifact", "act"),
    TaskSpec.of("wn", "person", "group", "location"), TaskSpec.of("wn", "food", "substance", "body"),
    TaskSpec.of("wn", "communication", "cognition", "attribute", "state"),
    TaskSpec.of("wn", "time", "quantity"), TaskSpec.of("wn", "event", "phenomenon", "process"),
    TaskSpec.of("wn", "possession", "relation", "feeling"),
]}


def _order(modality: dict[str, TaskSpec]) -> list[str]:
    return list(modality)


def sequences_of(modality: dict[str, TaskSpec]) -> dict[str, list[str]]:
    """mixed_8 (whose first 5 tasks are the 5-task sequence) and the two transfer pairs, both orders."""
    names = _order(modality)
    pairs = [(names[5], names[6]), (names[0], names[4])] if modality is IMAGE_TASKS \
        else [(names[0], names[1]), (names[2], names[3])]
    out = {"mixed_8": names}
    for a, b in pairs:
        out[f"{a}__{b}"] = [a, b]
        out[f"{b}__{a}"] = [b, a]
    return out


@dataclass(frozen=True)
class TaskRows:
    """One task's raw rows (images uint8 [n, 28, 28] or texts) and labels, train and eval."""

    name: str
    classes: tuple[str, ...]
    train: list | np.ndarray
    y_train: np.ndarray
    eval: list | np.ndarray
    y_eval: np.ndarray


def _hand_out(pools: dict[str, list[int]], cls: str, n: int) -> list[int]:
    if len(pools[cls]) < n:
        raise ValueError(f"class {cls} has {len(pools[cls])} samples left, {n} asked")
    taken, pools[cls][:] = pools[cls][:n], pools[cls][n:]
    return taken


def image_tasks(images: Images, n_train: int, n_eval: int) -> dict[str, TaskRows]:
    """Every image task, n_train train and n_eval eval images per class, no image in two tasks."""
    rng = np.random.default_rng(DATA_SEED)
    train_pools = {c: list(rng.permutation(np.flatnonzero(images.y_train == i))) for i, c in enumerate(FASHION_CLASSES)}
    eval_pools = {c: list(rng.permutation(np.flatnonzero(images.y_test == i))) for i, c in enumerate(FASHION_CLASSES)}
    out = {}
    for spec in IMAGE_TASKS.values():
        train = [(_hand_out(train_pools, c, n_train), k) for k, c in enumerate(spec.classes)]
        held = [(_hand_out(eval_pools, c, n_eval), k) for k, c in enumerate(spec.classes)]
        out[spec.name] = TaskRows(
            spec.name, spec.classes,
            images.x_train[np.concatenate([rows for rows, _ in train])],
            np.concatenate([np.full(len(rows), k) for rows, k in train]).astype(np.int64),
            images.x_test[np.concatenate([rows for rows, _ in held])],
            np.concatenate([np.full(len(rows), k) for rows, k in held]).astype(np.int64),
        )
    return _shuffled(out, rng)


def text_tasks(definitions: dict[str, list[str]], n_train: int, n_eval: int) -> dict[str, TaskRows]:
    """Every text task, n_train train and n_eval eval definitions per category (the eval ones held out)."""
    rng = np.random.default_rng(DATA_SEED)
    pools = {c: list(rng.permutation(len(texts))) for c, texts in definitions.items()}
    out = {}
    for spec in TEXT_TASKS.values():
        train_x, train_y, eval_x, eval_y = [], [], [], []
        for k, c in enumerate(spec.classes):
            rows = _hand_out(pools, c, n_train + n_eval)
            train_x += [definitions[c][i] for i in rows[:n_train]]
            eval_x += [definitions[c][i] for i in rows[n_train:]]
            train_y += [k] * n_train
            eval_y += [k] * n_eval
        out[spec.name] = TaskRows(spec.name, spec.classes, train_x, np.array(train_y, dtype=np.int64),
                                  eval_x, np.array(eval_y, dtype=np.int64))
    return _shuffled(out, rng)


def _shuffled(tasks: dict[str, TaskRows], rng: np.random.Generator) -> dict[str, TaskRows]:
    """Rows of each task in one seeded random order (files uploaded to the service list them so too)."""
    out = {}
    for name, t in tasks.items():
        a, b = rng.permutation(len(t.y_train)), rng.permutation(len(t.y_eval))
        pick = (lambda rows, order: [rows[i] for i in order]) if isinstance(t.train, list) \
            else (lambda rows, order: rows[order])
        out[name] = TaskRows(name, t.classes, pick(t.train, a), t.y_train[a], pick(t.eval, b), t.y_eval[b])
    return out
