"""Continual-learning benchmark: MAS against fine-tune, L2, EWC, SI and LwF on offline sequences.

    python -m benchmarks.continual                 # the full run; rewrites benchmarks/results/continual.*
    python -m benchmarks.continual --profile smoke --out /tmp/x   # seconds: what CI runs

For every sequence (benchmarks/sequences.py) and every variant, λ is chosen on validation splits
carved from the training data (best mean final average accuracy over the grid and 2 seeds), then the
sequence is run on the test splits with that λ for several seeds. Reported per variant: the
accuracy matrix, average accuracy, forgetting, BWT, accuracy on each new task just after learning
it relative to fine-tune's, the bytes of state kept between tasks and held while training, and
wall time; mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from app.mas.sequence import SequenceResult, run_sequence
from app.mas.training import TrainConfig
from benchmarks.sequences import SEQUENCES, with_validation

RESULTS = Path(__file__).parent / "results"

VARIANTS: dict[str, dict] = {
    "finetune": {"method": "finetune"},
    "l2": {"method": "l2"},
    "ewc": {"method": "ewc"},
    "si": {"method": "si"},
    "lwf": {"method": "lwf"},
    "mas": {"method": "mas"},
    "mas_omega_test": {"method": "mas", "importance_on": "test"},
    "mas_omega_both": {"method": "mas", "importance_on": "both"},
    "mas_batch": {"method": "mas", "importance_options": {"reduction": "batch"}},
    "mas_vector": {"method": "mas", "importance_options": {"output": "vector"}},
    "mas_local": {"method": "mas", "importance_options": {"variant": "local"}},
}

PROFILES = {
    # One wide grid for every anchored method: their Ω live on different scales (an empirical Fisher on a
    # task fit to ~100 % is tiny), and the proximal penalty is stable at any λ, so large values are safe.
    "full": {"seeds": 5, "epochs": 10, "grid": [10.0**k for k in range(-1, 7)], "lwf_grid": [0.1, 1.0, 10.0, 100.0],
             "validation_seeds": 2,
             "sequences": list(SEQUENCES), "max_tasks": None},
    "smoke": {"seeds": 1, "epochs": 1, "grid": [1.0], "lwf_grid": [1.0], "validation_seeds": 1,
              "sequences": ["split_digits"], "max_tasks": 2},
}
ARCHITECTURE_HIDDEN = [256, 256]


def _config(epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9, seed=seed)


def _run(tasks, variant: str, lam: float, epochs: int, seed: int) -> SequenceResult:
    options = dict(VARIANTS[variant])
    architecture = {"kind": "mlp", "input_shape": list(tasks[0].x_train.shape[1:]), "hidden": ARCHITECTURE_HIDDEN}
    return run_sequence(tasks, lam=lam, architecture=architecture, config=_config(epochs, seed), seed=seed, **options)


def _new_task_accuracy(result: SequenceResult) -> float:
    return statistics.fmean(row[task] for task, row in zip(result.tasks, result.matrix, strict=True))


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def benchmark_sequence(name: str, profile: dict) -> dict:
    seeds = range(profile["seeds"])
    tasks_by_seed = {seed: SEQUENCES[name](seed)[: profile["max_tasks"]] for seed in seeds}
    # Differences between good λ are a few validation samples, so each λ is scored on several seeds.
    validation = {seed: with_validation(SEQUENCES[name](seed)[: profile["max_tasks"]], 0.3, seed)
                  for seed in range(profile["validation_seeds"])}
    out: dict[str, dict] = {}
    for variant, options in VARIANTS.items():
        grid = [0.0] if options["method"] == "finetune" else profile["lwf_grid" if variant == "lwf" else "grid"]
        scores = {
            lam: statistics.fmean(
                _run(tasks, variant, lam, profile["epochs"], seed).summary["average_accuracy"]
                for seed, tasks in validation.items()
            )
            for lam in grid
        }
        best = max(grid, key=lambda lam: scores[lam])
        runs = [_run(tasks_by_seed[seed], variant, best, profile["epochs"], seed) for seed in seeds]
        out[variant] = {
            "lambda": best,
            "validation_average_accuracy": {str(lam): score for lam, score in scores.items()},
            "runs": [
                {"seed": seed, "matrix": r.matrix, **r.summary, "new_task_accuracy": _new_task_accuracy(r),
                 "state_bytes": r.state_bytes, "training_state_bytes": r.training_state_bytes, "seconds": r.seconds}
                for seed, r in zip(seeds, runs, strict=True)
            ],
            "tasks": runs[0].tasks,
        }
        first = out[variant]["runs"][0]
        print(f"{name:16s} {variant:15s} λ={best:<6g} avg acc {first['average_accuracy']:.3f}", flush=True)
    finetune_new = [run["new_task_accuracy"] for run in out["finetune"]["runs"]]
    for entry in out.values():
        for run, reference in zip(entry["runs"], finetune_new, strict=True):
            run["new_task_accuracy_vs_finetune"] = run["new_task_accuracy"] / reference
        keys = ["average_accuracy", "forgetting", "bwt", "new_task_accuracy_vs_finetune", "seconds",
                "state_bytes", "training_state_bytes"]
        entry["summary"] = {k: _mean_std([run[k] for run in entry["runs"]]) for k in keys}
    return out


def _fmt(stat: dict[str, float], scale: float = 1.0, digits: int = 3) -> str:
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def markdown(results: dict) -> str:
    lines = [
        "# Continual-learning benchmark",
        "",
        f"Profile `{results['profile']}`: {results['settings']['seeds']} seeds, MLP {ARCHITECTURE_HIDDEN}, "
        f"SGD lr 0.05 momentum 0.9, batch 32, {results['settings']['epochs']} epochs per task, one head per task. "
        f"λ grid {results['settings']['grid']} (LwF {results['settings']['lwf_grid']}), chosen per variant by the mean "
        f"final average accuracy on a 30 % validation split of the training data over "
        f"{results['settings']['validation_seeds']} seeds. Mean ± std over seeds; machine: "
        f"{results['machine']}.",
        "",
        "Columns: average accuracy after the last task; forgetting (best earlier accuracy − final, mean over old "
        "tasks); BWT; accuracy on each task right after learning it, relative to fine-tune; bytes kept between "
        "tasks (Ω_frozen + Ω_open) and the most held while training (θ*, Ω, SI's path, LwF's targets); seconds "
        "for the whole sequence.",
    ]
    for sequence, variants in results["sequences"].items():
        lines += ["", f"## {sequence}", "",
                  "| variant | λ | avg acc | forgetting | BWT | new task vs FT | state KiB | training KiB | s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for variant, entry in variants.items():
            s = entry["summary"]
            lines.append(
                f"| {variant} | {entry['lambda']:g} | {_fmt(s['average_accuracy'])} | {_fmt(s['forgetting'])} | "
                f"{_fmt(s['bwt'])} | {_fmt(s['new_task_accuracy_vs_finetune'])} | "
                f"{s['state_bytes']['mean'] / 1024:.0f} | {s['training_state_bytes']['mean'] / 1024:.0f} | "
                f"{s['seconds']['mean']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["finetune", "l2", "ewc", "si", "lwf", "mas"]
    files = []
    for sequence, variants in results["sequences"].items():
        tasks = variants["finetune"]["tasks"]
        columns = min(4, len(tasks))
        rows = -(-len(tasks) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.6 * rows), sharey=True, squeeze=False)
        for ax in axes.flat[len(tasks):]:
            ax.axis("off")
        for j, (task, ax) in enumerate(zip(tasks, axes.flat, strict=False)):
            for variant in shown:
                runs = variants[variant]["runs"]
                steps = list(range(j, len(tasks)))
                ax.plot([s + 1 for s in steps], [statistics.fmean(r["matrix"][s][task] for r in runs) for s in steps],
                        marker="o", markersize=3, label=variant)
            ax.set_title(task, fontsize=8)
            ax.set_xlabel("after task", fontsize=8)
            ax.set_xticks(range(1, len(tasks) + 1))
        for row in axes:
            row[0].set_ylabel("accuracy")
        axes.flat[len(tasks) - 1].legend(fontsize=7)
        fig.suptitle(f"{sequence}: accuracy on each task after each step", fontsize=9)
        fig.tight_layout()
        name = f"continual_{sequence}_accuracy.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    variants_all = list(VARIANTS)
    sequences = list(results["sequences"])
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(variants_all)), 3.2))
    width = 0.8 / len(sequences)
    for i, sequence in enumerate(sequences):
        summary = [results["sequences"][sequence][v]["summary"]["forgetting"] for v in variants_all]
        ax.bar([x + i * width for x in range(len(variants_all))], [s["mean"] for s in summary], width,
               yerr=[s["std"] for s in summary], label=sequence)
    ax.set_xticks([x + width * (len(sequences) - 1) / 2 for x in range(len(variants_all))], variants_all,
                  rotation=30, fontsize=8)
    ax.set_ylabel("average forgetting")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "continual_forgetting.png", dpi=110)
    plt.close(fig)
    return [*files, "continual_forgetting.png"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true", help="redraw table and plots from the JSON in --out")
    args = parser.parse_args()
    if args.replot:
        results = json.loads((args.out / "continual.json").read_text())
        (args.out / "continual.md").write_text(markdown(results))
        print(plot(results, args.out))
        return
    profile = PROFILES[args.profile]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "profile": args.profile,
        "settings": {k: v for k, v in profile.items() if k != "sequences"},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "sequences": {name: benchmark_sequence(name, profile) for name in profile["sequences"]},
    }
    (args.out / "continual.json").write_text(json.dumps(results, indent=1))
    (args.out / "continual.md").write_text(markdown(results))
    plots = plot(results, args.out)
    print(f"wrote {args.out / 'continual.json'}, continual.md and {', '.join(plots)}")


if __name__ == "__main__":
    main()
