"""`python -m app.mas.demo`: fine-tune and MAS on five split-digits tasks, side by side, in seconds.

Prints each method's accuracy matrix (row: after learning that task; column: accuracy on a task's
held-out split) and its average accuracy, forgetting and backward transfer.
"""

from __future__ import annotations

import argparse
import time

from app.mas.data import split_digits
from app.mas.sequence import SequenceResult, run_sequence
from app.mas.training import TrainConfig


def format_matrix(result: SequenceResult) -> str:
    width = max(len(t) for t in result.tasks) + 2
    lines = ["after".ljust(width) + "".join(t.rjust(width) for t in result.tasks)]
    for task, row in zip(result.tasks, result.matrix, strict=False):
        cells = "".join((f"{row[t]:.3f}" if t in row else "-").rjust(width) for t in result.tasks)
        lines.append(task.ljust(width) + cells)
    summary = result.summary
    lines.append(
        f"average accuracy {summary['average_accuracy']:.3f}   forgetting {summary['forgetting']:.3f}   "
        f"BWT {summary['bwt']:+.3f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lambda", dest="lam", type=float, default=1.0, help="MAS penalty strength (default 1)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = split_digits(5, seed=args.seed)
    config = TrainConfig(epochs=args.epochs, batch_size=32, lr=args.lr, momentum=0.9, seed=args.seed)
    print("Split digits (scikit-learn's bundled 8×8 digits), 5 tasks of 2 classes, MLP 64-128-128, one head per task")
    print(f"SGD lr {args.lr}, momentum 0.9, {args.epochs} epochs, batch 32, seed {args.seed}\n")
    for method, lam in (("finetune", 0.0), ("mas", args.lam)):
        started = time.perf_counter()
        result = run_sequence(tasks, method=method, lam=lam, config=config, seed=args.seed)
        label = "fine-tune" if method == "finetune" else f"MAS (lambda {lam:g})"
        print(f"== {label}: {time.perf_counter() - started:.1f} s")
        print(format_matrix(result), end="\n\n")


if __name__ == "__main__":
    main()
