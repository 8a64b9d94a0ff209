"""Continual-learning benchmark: MAS against fine-tune, L2, EWC, SI and LwF on offline sequences.

    python -m benchmarks.continual                 # the full run; rewrites benchmarks/results/continual.*
    python -m benchmarks.continual --profile smoke --out /tmp/x   # seconds: what CI runs

For every sequence (benchmarks/sequences.py) and every variant, λ is chosen on validation splits
carved from the training data (best mean final average accuracy over the grid and 2 seeds), then the
sequence is run on the test splits with that λ for several seeds: one λ for the whole sequence, chosen
in hindsight, knowing how every later task goes. `mas_auto` instead does what a train job with
`"lambda": "auto"` does (app/mas/validation.py): each run holds back 10 % of each task's training
data and, at each task, keeps the λ of the service's grid with the best mean accuracy over every task's
held-back slice so far; nothing is tuned across runs, and the λ chosen per task is reported. Reported
per variant: the
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
from app.mas.validation import DEFAULT_GRID
from benchmarks.provenance import provenance, write_markdown, write_results
from benchmarks.sequences import SEQUENCES, with_validation

RESULTS = Path(__file__).parent / "results"

VARIANTS: dict[str, dict] = {
    "finetune": {"method": "finetune"},
    "l2": {"method": "l2"},
    "ewc": {"method": "ewc"},
    "si": {"method": "si"},
    "lwf": {"method": "lwf"},
    "mas": {"method": "mas"},
    # λ chosen inside each run, task by task, on held-back training rows, as the service's "auto" does.
    "mas_auto": {"method": "mas", "lam": "auto"},
    "mas_omega_test": {"method": "mas", "importance_on": "test"},
    "mas_omega_both": {"method": "mas", "importance_on": "both"},
    "mas_batch": {"method": "mas", "importance_options": {"reduction": "batch"}},
    "mas_vector": {"method": "mas", "importance_options": {"output": "vector"}},
    "mas_local": {"method": "mas", "importance_options": {"variant": "local"}},
}

PROFILES = {
    # One wide grid for every anchored method: their Ω live on different scales (an empirical Fisher on a
    # task fit to ~100 % is tiny), and the proximal penalty is stable at any λ, so large values are safe.
    # 10⁻³…10⁶: since the prox takes the optimizer's real step (lr/(1−β)), λ holds 10× harder at momentum
    # 0.9 than in runs before that fix, so the grid holds the old one's 10⁻¹…10⁶ divided by 10, and a
    # decade beyond on either side (both ends of the old grid were chosen).
    "full": {"seeds": 5, "epochs": 10, "grid": [10.0**k for k in range(-3, 7)], "lwf_grid": [0.1, 1.0, 10.0, 100.0],
             "validation_seeds": 2, "auto_grid": list(DEFAULT_GRID), "auto_validation_fraction": 0.1,
             "sequences": list(SEQUENCES), "max_tasks": None},
    "smoke": {"seeds": 1, "epochs": 1, "grid": [1.0], "lwf_grid": [1.0], "validation_seeds": 1,
              "auto_grid": [0.1, 10.0], "auto_validation_fraction": 0.1,
              "sequences": list(SEQUENCES), "max_tasks": 2},
}
ARCHITECTURE_HIDDEN = [256, 256]


def _config(epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=32, optimizer="sgd", lr=0.05, momentum=0.9, seed=seed)


def _run(tasks, variant: str, lam: float | str, profile: dict, seed: int) -> SequenceResult:
    options = {k: v for k, v in VARIANTS[variant].items() if k != "lam"}
    if lam == "auto":
        options |= {"lambda_grid": tuple(profile["auto_grid"]),
                    "validation_fraction": profile["auto_validation_fraction"]}
    architecture = {"kind": "mlp", "input_shape": list(tasks[0].x_train.shape[1:]), "hidden": ARCHITECTURE_HIDDEN}
    config = _config(profile["epochs"], seed)
    return run_sequence(tasks, lam=lam, architecture=architecture, config=config, seed=seed, **options)


def _choose_lambda(variant: str, profile: dict, validation: dict) -> tuple[float | str, dict]:
    """The variant's λ and its validation scores: "auto" is chosen inside each run, not here."""
    options = VARIANTS[variant]
    if options.get("lam") == "auto":
        return "auto", {}
    grid = [0.0] if options["method"] == "finetune" else profile["lwf_grid" if variant == "lwf" else "grid"]
    scores = {
        lam: statistics.fmean(_run(tasks, variant, lam, profile, seed).summary["average_accuracy"]
                              for seed, tasks in validation.items())
        for lam in grid
    }
    return max(grid, key=lambda lam: scores[lam]), {str(lam): score for lam, score in scores.items()}


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
    for variant in VARIANTS:
        best, scores = _choose_lambda(variant, profile, validation)
        runs = [_run(tasks_by_seed[seed], variant, best, profile, seed) for seed in seeds]
        out[variant] = {
            "lambda": best,
            "validation_average_accuracy": scores,
            "runs": [
                {"seed": seed, "matrix": r.matrix, **r.summary, "new_task_accuracy": _new_task_accuracy(r),
                 "lambdas": r.lambdas, "state_bytes": r.state_bytes,
                 "training_state_bytes": r.training_state_bytes, "seconds": r.seconds}
                for seed, r in zip(seeds, runs, strict=True)
            ],
            "tasks": runs[0].tasks,
        }
        first = out[variant]["runs"][0]
        print(f"{name:16s} {variant:15s} λ={best!s:<6} avg acc {first['average_accuracy']:.3f}", flush=True)
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
        f"{results['settings']['validation_seeds']} seeds (one λ per sequence, in hindsight). `mas_auto`: λ "
        f"\"auto\" as the service does it, chosen inside each run at each task from "
        f"{results['settings']['auto_grid']} on a held-back {results['settings']['auto_validation_fraction']:.0%} "
        f"of each task's training data (not trained on); its choices are listed below the tables. "
        f"Mean ± std over seeds; machine: {results['machine']}.",
        "",
        "Columns: average accuracy after the last task; forgetting (best earlier accuracy − final, mean over old "
        "tasks); BWT; accuracy on each task right after learning it, relative to fine-tune; bytes kept between "
        "tasks (every task's importance estimate, at the end) and the most held while training (θ*, Ω, SI's path, "
        "LwF's targets); seconds for the whole sequence.",
    ]
    for sequence, variants in results["sequences"].items():
        lines += ["", f"## {sequence}", "",
                  "| variant | λ | avg acc | forgetting | BWT | new task vs FT | state KiB | training KiB | s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for variant, entry in variants.items():
            s = entry["summary"]
            lines.append(
                f"| {variant} | {_lambda(entry['lambda'])} | {_fmt(s['average_accuracy'])} | {_fmt(s['forgetting'])} | "
                f"{_fmt(s['bwt'])} | {_fmt(s['new_task_accuracy_vs_finetune'])} | "
                f"{s['state_bytes']['mean'] / 1024:.0f} | {s['training_state_bytes']['mean'] / 1024:.0f} | "
                f"{s['seconds']['mean']:.2f} |"
            )
    return "\n".join(lines + _auto_choices(results)) + "\n"


def _lambda(lam: float | str) -> str:
    return lam if isinstance(lam, str) else f"{lam:g}"


def _auto_choices(results: dict) -> list[str]:
    """The λ that `mas_auto` chose at each task (from the second: the first has nothing to protect), one
    entry per seed, beside the hindsight `mas` λ."""
    lines = ["", "## λ chosen by `mas_auto`", "",
             "Per task from the second, the λ chosen in each seed's run (seeds in order); `mas` is the one "
             "hindsight λ.", "",
             "| sequence | hindsight `mas` λ | auto: λ per task (one value per seed) |", "|---|---|---|"]
    for sequence, variants in results["sequences"].items():
        if "mas_auto" not in variants:
            continue
        runs = variants["mas_auto"]["runs"]
        tasks = variants["mas_auto"]["tasks"]
        per_task = [f"{task}: " + ", ".join(f"{run['lambdas'][i]:g}" for run in runs)
                    for i, task in enumerate(tasks) if i > 0]
        lines.append(f"| {sequence} | {_lambda(variants['mas']['lambda'])} | {'; '.join(per_task)} |")
    return lines


def plot(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["finetune", "l2", "ewc", "si", "lwf", "mas", "mas_auto"]
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
    started = provenance()
    # One thread: these small networks gain little from a second one, and on a shared 2-core machine a second
    # OpenMP thread spin-waits for the first (measured: a 5-task run 3.9 s with one thread, 40 s with two).
    torch.set_num_threads(1)
    if args.replot:
        results = json.loads((args.out / "continual.json").read_text())
        write_markdown(args.out, "continual", results, markdown(results))
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
    write_results(args.out, "continual", results, markdown(results), started=started)
    plots = plot(results, args.out)
    print(f"wrote {args.out / 'continual.json'}, continual.md and {', '.join(plots)}")


if __name__ == "__main__":
    main()
