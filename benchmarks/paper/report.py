"""benchmarks/results/paper.md and the plots, from paper.json (so `--replot` redraws them without a run)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from app.mas.validation import DEFAULT_GRID
from benchmarks.paper.experiments import FIVE, MAIN

SHOWN = list(MAIN)
NAMES = {"cnn": "CNN from scratch (Fashion-MNIST)", "efficientnet": "EfficientNet-Lite0, last 2 blocks (Fashion-MNIST)",
         "minilm": "all-MiniLM-L6-v2, last 2 layers (WordNet)"}


def _pm(stat: dict[str, float] | None, scale: float = 100.0, digits: int = 1) -> str:
    if not stat:
        return "–"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


def _lam(value: Any) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def _signed(points: float) -> str:
    return f"{points + 0.0:+.1f}" if round(points, 1) != 0 else "±0.0"


def _pair_label(key: str) -> str:
    first, second = key.split("__")
    return f"{first} → {second}"


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [
        "# The paper's experiments on Fashion-MNIST and WordNet",
        "",
        f"Profile `{results['profile']}`, {s['seeds']} seeds (mean ± std; seeds vary initial values, heads, shuffles "
        f"and held-back rows; the data subsets are fixed). Images: {s['image']['n_train']} train and "
        f"{s['image']['n_eval']} eval images per class (eval from Fashion-MNIST's test set), EfficientNet at "
        f"{s['image_size']} px; WordNet: {s['text']['n_train']} train and {s['text']['n_eval']} held-out eval "
        f"definitions per category, MiniLM max_length {s['max_length']}. SGD momentum 0.9; per backbone "
        + ", ".join(f"{b} {t['epochs']} epochs, batch {t['batch_size']}, lr {t['lr']}" for b, t in s["train"].items())
        + f". λ of each fixed-λ variant chosen per backbone on a 30 % validation split of the 5-task sequence's "
        f"training rows ({s['validation_seeds']} seed(s)), never on eval sets; `mas_auto`: λ \"auto\" from "
        f"{s['auto_grid']} on {s['auto_validation_fraction']:.0%} held-back rows per task, chosen as a train job "
        f"chooses (with this profile's grid; the service's default grid is {list(DEFAULT_GRID)}). "
        f"Accuracies in %. Machine: {results['machine']}.",
    ]
    lines += _claims_section(results)
    for name, entry in results["backbones"].items():
        lines += ["", f"## {NAMES.get(name, name)}", "", _lambdas(entry)]
        lines += _table2(entry) + _five(entry) + _table3(entry) + _fig5(entry) + _fig4(entry)
    lines += _service(results) + _times(results)
    return "\n".join(lines) + "\n"


def _lambdas(entry: dict) -> str:
    """Each variant's λ; one at the end of its searched grid is marked: a wider grid might choose another."""
    def label(variant: str, lam: Any) -> str:
        grid = sorted(float(g) for g in entry["validation"].get(variant, {}))
        edge = len(grid) > 1 and lam in (grid[0], grid[-1])
        return f"{variant} {_lam(lam)}" + (" (end of its grid)" if edge else "")
    return "λ chosen: " + ", ".join(label(v, lam) for v, lam in entry["lambda"].items() if v != "finetune") + "."


def _table2(entry: dict) -> list[str]:
    pairs = [k for k in entry["sequences"] if "__" in k]
    if not pairs:
        return []
    lines = ["", "### Two tasks (Table 2 form): first task's accuracy after the second (its drop) · the second's",
             "", "| method | " + " | ".join(_pair_label(k) for k in pairs) + " |",
             "|---|" + "---|" * len(pairs)]
    for variant in SHOWN:
        cells = []
        for k in pairs:
            entry_v = entry["sequences"][k]["variants"].get(variant)
            if entry_v is None:
                cells.append("–")
                continue
            sm = entry_v["summary"]
            cells.append(f"{_pm(sm['first_after'])} ({_signed(-100 * sm['first_drop']['mean'])}) · {_pm(sm['second'])}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def _five(entry: dict) -> list[str]:
    five = entry["sequences"].get(FIVE)
    if not five:
        return []
    lines = ["", f"### {len(five['tasks'])} tasks: {', '.join(five['tasks'])}", "",
             "| variant | λ | avg acc | forgetting | BWT | new-task acc | s per run |", "|---|---|---|---|---|---|---|"]
    for variant, v in five["variants"].items():
        sm = v["summary"]
        lines.append(f"| {variant} | {_lam(v['lambda'])} | {_pm(sm['average_accuracy'])} | {_pm(sm.get('forgetting'))} "
                     f"| {_pm(sm.get('bwt'))} | {_pm(sm['new_task_accuracy'])} | {sm['seconds']['mean']:.0f} |")
    return lines


def _table3(entry: dict) -> list[str]:
    five = entry["sequences"].get(FIVE)
    if not five:
        return []
    rows = [("Ω on train (MAS)", "mas"), ("Ω on unlabeled eval (deployment)", "mas_omega_test"),
            ("Ω on train + eval", "mas_omega_both"), ("local (Hebbian)", "mas_local"), ("vector output", "mas_vector")]
    lines = ["", "### Table 3 form (5-task sequence): where Ω is measured, global vs local, l2 vs vector", "",
             "| Ω | avg acc | forgetting |", "|---|---|---|"]
    for label, variant in rows:
        v = five["variants"].get(variant)
        if v is None:
            lines.append(f"| {label} | not run: the local variant covers linear and convolution layers only |"
                         if variant == "mas_local" else f"| {label} | – | – |")
            continue
        lines.append(f"| {label} | {_pm(v['summary']['average_accuracy'])} | {_pm(v['summary'].get('forgetting'))} |")
    return lines


def _fig5(entry: dict) -> list[str]:
    mixed = entry["sequences"].get("mixed_8")
    if not mixed:
        return []
    tasks = mixed["tasks"]
    lines = ["", f"### {len(tasks)} tasks (Fig. 5 form): each task's accuracy at the end (drop since learned)", "",
             "| method | " + " | ".join(tasks) + " | avg acc | avg drop |", "|---|" + "---|" * (len(tasks) + 2)]
    for variant in SHOWN:
        v = mixed["variants"].get(variant)
        if v is None:
            continue
        sm = v["summary"]
        cells = [f"{100 * sm['final'][t]['mean']:.1f} ({_signed(-100 * sm['drop'][t]['mean'])})" for t in tasks]
        drop = statistics.fmean(sm["drop"][t]["mean"] for t in tasks[:-1]) if len(tasks) > 1 else 0.0
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {_pm(sm['average_accuracy'])} | {100 * drop:.1f} |")
    return lines


def _fig4(entry: dict) -> list[str]:
    mixed = entry["sequences"].get("mixed_8")
    if not mixed:
        return []
    steps = len(mixed["tasks"])
    lines = ["", "### Memory (Fig. 4 form), MiB after each step: kept between tasks (every task's importance "
             "estimate, as the service stores them) / held by the next task's penalty (θ* and total Ω of the "
             "trained blocks) / the method's own state while training", "",
             "| method | " + " | ".join(str(i + 1) for i in range(steps)) + " |", "|---|" + "---|" * steps]
    for variant in SHOWN:
        v = mixed["variants"].get(variant)
        if v is None:
            continue
        sm = v["summary"]
        cells = [f"{sm['kept_bytes'][i] / 2**20:.1f} / {sm['penalty_bytes'][i] / 2**20:.1f} / "
                 f"{sm['training_bytes'][i] / 2**20:.1f}" for i in range(steps)]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def _service(results: dict) -> list[str]:
    service = results.get("service") or {}
    if not service:
        return []
    lines = ["", "## Through the service (real API and worker, whole network, raw files)", "",
             "| backbone | tasks | λ | seed | service s | in-process s | max abs Δ accuracy | in eval samples "
             "| equal entries |", "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in service.items():
        c = entry["comparison"]
        lines.append(f"| {name} | {len(entry['tasks'])} | {_lam(entry['lambda'])} | {entry['seed']} | "
                     f"{entry['wall']:.0f} | {entry['in_process_seconds']:.0f} | {c['max_abs_difference']:.4f} | "
                     f"{c['max_difference_in_samples']} | {c['equal_entries']} of {c['entries']} |")
    return lines


def _times(results: dict) -> list[str]:
    wall, workers = results["wall_seconds"], results["settings"]["workers"]
    cpu = sum(_cpu(entry) for entry in results["backbones"].values()) / 60
    start_load = results["machine"].split("load average ")[-1].split(" ")[0]
    lines = ["", "## Time", "",
             f"Whole run {wall['total'] / 60:.1f} min wall ({wall.get('service', 0) / 60:.1f} of them through the "
             f"service) with {workers} worker processes of 1 torch thread, load average {start_load} at the start and "
             f"{results.get('load_average_at_end', float('nan')):.1f} at the end (other work on the machine). "
             f"CPU time, which does not depend on that load: {cpu:.1f} min for features, λ searches and runs, "
             f"i.e. {cpu / workers:.1f} min of wall time on {workers} idle cores. Per run below: CPU seconds (wall "
             "seconds), summed over its tasks (training with every λ "
             "tried, Ω, evaluation), mean over seeds.", "",
             "| backbone | sequence | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
    for name, entry in results["backbones"].items():
        for key, sequence in entry["sequences"].items():
            variants = sequence["variants"]
            cells = [_cpu_wall(variants[v]["summary"]) if v in variants else "–" for v in SHOWN]
            lines.append(f"| {name} | {_pair_label(key) if '__' in key else key} | " + " | ".join(cells) + " |")
    lines += ["", "| backbone | frozen features, CPU s | λ searches, CPU s | reporting runs, CPU s | all, CPU min |",
              "|---|---|---|---|---|"]
    for name, entry in results["backbones"].items():
        search = sum(s["cpu"] for s in entry["search_seconds"].values())
        lines.append(f"| {name} | {entry['feature_cpu_seconds']:.0f} | {search:.0f} | {_runs_cpu(entry):.0f} | "
                     f"{_cpu(entry) / 60:.1f} |")
    return lines


def _cpu_wall(summary: dict) -> str:
    return f"{summary['cpu_seconds']['mean']:.0f} ({summary['seconds']['mean']:.0f})"


def _runs_cpu(entry: dict) -> float:
    return sum(r["cpu"] for s in entry["sequences"].values() for v in s["variants"].values() for r in v["runs"]
               if "read_off" not in v)


def _cpu(entry: dict) -> float:
    return entry["feature_cpu_seconds"] + sum(s["cpu"] for s in entry["search_seconds"].values()) + _runs_cpu(entry)


def _claims_section(results: dict) -> list[str]:
    lines = ["", "## The paper's claims on these data", "", "| claim | " + " | ".join(results["claims"]) + " |",
             "|---|" + "---|" * len(results["claims"])]
    keys = [("mas_forgets_far_less", "MAS forgetting ≤ ⅓ of fine-tune's (8 tasks; MAS vs FT)"),
            ("mas_at_most_ewc_si_lwf", "MAS avg acc ≥ EWC, SI, LwF (8 tasks; MAS, EWC, SI, LwF)"),
            ("a_mas_variant_at_least_ewc_si", "issue 27: a MAS variant with avg acc ≥ EWC's and SI's, forgetting"
             " ≤ ⅓ of FT's (8 tasks; each variant's avg acc)"),
            ("omega_deployment_as_good", "Ω from deployment data as good as from train (5 tasks; deployment vs train)"),
            ("local_worse_than_global", "local MAS worse than global (5 tasks; local vs global)"),
            ("new_task_within_3_points", "MAS new-task accuracy within 3 points of fine-tune (MAS − FT)")]
    for key, label in keys:
        cells = []
        for verdicts in results["claims"].values():
            v = verdicts.get(key)
            verdict = "holds" if v and v["holds"] else "**does not hold**"
            cells.append("–" if v is None else f"{verdict}: {_numbers(key, v)}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _numbers(key: str, v: dict) -> str:
    if key == "mas_forgets_far_less":
        f = v["forgetting_mixed_8"]
        return f"{100 * f['mas']:.1f} vs {100 * f['finetune']:.1f}"
    if key == "mas_at_most_ewc_si_lwf":
        return ", ".join(f"{100 * v['average_accuracy_mixed_8'][m]:.1f}" for m in ("mas", "ewc", "si", "lwf"))
    if key == "a_mas_variant_at_least_ewc_si":
        accuracy = v["average_accuracy_mixed_8"]
        return ", ".join(f"{name} {100 * accuracy[name]:.1f}" for name in accuracy if name != "finetune")
    if key == "omega_deployment_as_good":
        return f"{100 * v['deployment']:.1f} vs {100 * v['train']:.1f}"
    if key == "local_worse_than_global":
        return f"{100 * v['local']:.1f} vs {100 * v['global']:.1f}"
    return f"{v['mas_minus_finetune_points']:+.1f} points"


# --- plots ------------------------------------------------------------------------------------------


def plot(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for name, entry in results["backbones"].items():
        mixed = entry["sequences"].get("mixed_8")
        if mixed:
            files.append(_plot_fig5(plt, name, mixed, out))
    files.append(_plot_fig4(plt, results, out))
    files.append(_plot_transfers(plt, results, out))
    return files


def _plot_fig5(plt: Any, name: str, mixed: dict, out: Path) -> str:
    tasks = mixed["tasks"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    width = 0.8 / len(SHOWN)
    for i, variant in enumerate(v for v in SHOWN if v in mixed["variants"]):
        sm = mixed["variants"][variant]["summary"]
        xs = [x + i * width for x in range(len(tasks))]
        axes[0].bar(xs, [100 * sm["final"][t]["mean"] for t in tasks], width, label=variant)
        axes[1].bar(xs, [100 * sm["drop"][t]["mean"] for t in tasks], width, label=variant)
    for ax, title in zip(axes, ["accuracy after the last task (%)", "drop since learned (points)"], strict=True):
        ax.set_xticks([x + width * (len(SHOWN) - 1) / 2 for x in range(len(tasks))], tasks, rotation=35,
                      ha="right", fontsize=6)
        ax.set_title(title, fontsize=9)
    axes[1].legend(fontsize=6)
    return _save(plt, fig, f"{NAMES.get(name, name)}: {len(tasks)} tasks (Fig. 5 form)",
                 out / f"paper_{name}_mixed8.png")


def _plot_fig4(plt: Any, results: dict, out: Path) -> str:
    backbones = [(n, e["sequences"]["mixed_8"]) for n, e in results["backbones"].items() if "mixed_8" in e["sequences"]]
    fig, axes = plt.subplots(1, max(1, len(backbones)), figsize=(4 * max(1, len(backbones)), 3.2), squeeze=False)
    for ax, (name, mixed) in zip(axes[0], backbones, strict=False):
        for variant in SHOWN:
            if variant in mixed["variants"]:
                sm = mixed["variants"][variant]["summary"]
                total = [(k + t) / 2**20 for k, t in zip(sm["kept_bytes"], sm["training_bytes"], strict=True)]
                ax.plot(range(1, len(total) + 1), total, marker="o", markersize=3, label=variant)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("after task", fontsize=8)
        ax.set_ylabel("MiB kept + held while training", fontsize=8)
    axes[0][0].legend(fontsize=6)
    return _save(plt, fig, "Memory per method per step (Fig. 4 form)", out / "paper_memory.png")


def _plot_transfers(plt: Any, results: dict, out: Path) -> str:
    backbones = [(n, [(k, s) for k, s in e["sequences"].items() if "__" in k]) for n, e in results["backbones"].items()]
    backbones = [(n, pairs) for n, pairs in backbones if pairs]
    fig, axes = plt.subplots(1, max(1, len(backbones)), figsize=(4.5 * max(1, len(backbones)), 3.8), squeeze=False)
    width = 0.8 / len(SHOWN)
    for ax, (name, pairs) in zip(axes[0], backbones, strict=False):
        for i, variant in enumerate(SHOWN):
            drops = [100 * s["variants"][variant]["summary"]["first_drop"]["mean"] if variant in s["variants"] else 0
                     for _, s in pairs]
            ax.bar([x + i * width for x in range(len(pairs))], drops, width, label=variant)
        ax.set_xticks([x + width * (len(SHOWN) - 1) / 2 for x in range(len(pairs))],
                      [_pair_label(k).replace(" → ", "\n→ ") for k, _ in pairs], fontsize=5)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("first task's drop (points)", fontsize=8)
    axes[0][0].legend(fontsize=6)
    return _save(plt, fig, "Two-task transfers (Table 2 form): the first task's drop after learning the second",
                 out / "paper_transfers.png")


def _save(plt: Any, fig: Any, title: str, path: Path) -> str:
    """Title, lay out, write and close a figure; its file name, for the list of plots written."""
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name
