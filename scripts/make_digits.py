"""Write split-digits tasks as .npz files for the walk-through: <out>/<task>-train.npz and -eval.npz.

Each file holds `x` (float32 [n, 64], 8×8 digit images scaled to [0, 1]) and `y` (int64 labels 0/1
within the task), from scikit-learn's bundled digits: nothing is downloaded.

    python scripts/make_digits.py --out data --tasks 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from app.mas.data import split_digits


def write_tasks(out: Path, n_tasks: int, seed: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task in split_digits(n_tasks=n_tasks, seed=seed):
        for part, x, y in (("train", task.x_train, task.y_train), ("eval", task.x_test, task.y_test)):
            path = out / f"{task.name}-{part}.npz"
            np.savez(path, x=x.numpy(), y=y.numpy())
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data"), help="folder to write to [data]")
    parser.add_argument("--tasks", type=int, default=5, choices=range(1, 6), help="number of tasks, 1 to 5 [5]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/eval split [0]")
    args = parser.parse_args()
    for path in write_tasks(args.out, args.tasks, args.seed):
        with np.load(path) as arrays:
            print(f"{path}  x{list(arrays['x'].shape)}  y{list(arrays['y'].shape)}")


if __name__ == "__main__":
    main()
