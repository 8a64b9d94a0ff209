"""Defaults that protect: fine-tune against MAS with exactly the service's defaults, on every sequence.

    python -m benchmarks.defaults                     # the service's defaults; rewrites benchmarks/results/defaults.*
    python -m benchmarks.defaults --lr 0.05 --add     # one alternative, added beside what the file already holds
    python -m benchmarks.defaults --profile smoke --out /tmp/x   # seconds: what CI runs

A user who sends only `task`, `train` and `eval` gets what `TaskRequest` fills in. The settings are read
from a `TaskRequest` made with only `task` and `train`, so this benchmark measures whatever the service
does today and cannot drift from it: method, λ ("auto" with its grid and validation fraction), epochs,
batch size, optimizer, lr, momentum, the penalty's form and the importance options. Fine-tune is the same
request with `method` "finetune" (it holds back the same validation slice, as a train job does). Both run
through `run_sequence`, which learns each task with `learn_task` as a train job does.

Sequences: the README walk-through's (the two split-digits tasks that `scripts/make_digits.py --tasks 2`
writes, on its model, an MLP 64-128-128) and every sequence of benchmarks/sequences.py (on the
continual benchmark's MLP 256-256). Per sequence, over several seeds (the seed picks the train/test
split, the initial weights, the shuffles and the held-back rows): each method's forgetting, the ratio of
MAS's mean forgetting to fine-tune's (target ≤ 1/3) and MAS's accuracy on each new task just after
learning it minus fine-tune's, mean over the tasks learned under the penalty (target ≥ −3 points).

`--grid`, `--lr` and `--epochs` change one default each, to look for defaults that meet both targets
everywhere, and `--seeds FIRST-LAST` runs other seeds (fresh ones, to check a choice made on the
profile's); with `--add` the result is kept beside the settings already in the output, otherwise the
output holds this run alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from app.learning.schemas import TaskRequest
from app.mas.data import TaskData, split_digits
from app.mas.head_warmup import warmup_epochs
from app.mas.sequence import SequenceResult, run_sequence
from app.mas.training import TrainConfig
from app.mas.validation import DEFAULT_GRID, TIE_BREAK, split_validation
from benchmarks.continual import ARCHITECTURE_HIDDEN
from benchmarks.provenance import provenance, write_results
from benchmarks.sequences import SEQUENCES

RESULTS = Path(__file__).parent / "results"
TARGETS = {"forgetting_ratio_max": 1 / 3, "new_task_points_min": -3.0}
RESOLUTION_RULE = ("The forgetting target lets MAS forget a third of what fine-tuning forgets, or one eval row per "
                   "earlier task where that is more: a ratio marked \"FT < 1 eval row\" compares forgetting below "
                   "what the eval sets can show.")
WALKTHROUGH_HIDDEN = [128, 128]  # README walk-through, step 2: the model it creates


def walkthrough(seed: int) -> list[TaskData]:
    """What `scripts/make_digits.py --tasks 2 --seed SEED` writes: digits-0-1 and digits-2-3."""
    return split_digits(n_tasks=2, seed=seed)


SEQUENCE_SOURCES: dict[str, tuple[Callable[[int], list[TaskData]], list[int]]] = {
    "walkthrough": (walkthrough, WALKTHROUGH_HIDDEN),
    **{name: (make, ARCHITECTURE_HIDDEN) for name, make in SEQUENCES.items()},
}

PROFILES = {
    "full": {"seeds": 5, "sequences": list(SEQUENCE_SOURCES), "max_tasks": None, "epochs": None},
    "smoke": {"seeds": 1, "sequences": list(SEQUENCE_SOURCES), "max_tasks": 2, "epochs": 1},
}


def service_defaults() -> dict:
    """What a train job does with only `task` and `train` (and `eval`) given, read from the schema itself."""
    request = TaskRequest(task="t", train={"dataset": "d"})
    return {
        "method": request.method,
        "lambda": request.lambda_,
        "lambda_grid": list(request.lambda_grid or DEFAULT_GRID),
        "lambda_tie_break": TIE_BREAK,
        "validation_fraction": request.validation_fraction,
        "penalty": request.penalty,
        "epochs": request.epochs,
        "batch_size": request.batch_size,
        "optimizer": request.optimizer,
        "lr": request.lr,
        "momentum": request.momentum,
        "head_warmup": request.head_warmup,
        "importance": request.importance.model_dump(),
    }


def effective_settings(defaults: dict, *, grid: list[float] | None, lr: float | None, epochs: int | None) -> dict:
    """The defaults with the requested changes; each change is also listed under `overrides`."""
    overrides = {key: value for key, value in (("lambda_grid", grid), ("lr", lr), ("epochs", epochs))
                 if value is not None}
    return defaults | overrides | {"overrides": overrides}


def label(settings: dict) -> str:
    overrides = settings["overrides"]
    if not overrides:
        return "service defaults"
    return ", ".join(f"{'grid' if key == 'lambda_grid' else key} {value}" for key, value in overrides.items())


def train_config(settings: dict, seed: int, *, pretrained: bool, precision: str = "fp32") -> TrainConfig:
    """The training settings a train job takes from `settings` (a request's fields), its `head_warmup`
    resolved as the job resolves it for a trunk with or without pretrained weights."""
    return TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], optimizer=settings["optimizer"],
                       lr=settings["lr"], momentum=settings["momentum"], seed=seed, precision=precision,
                       head_warmup=warmup_epochs(settings["head_warmup"], pretrained))


def _check_reproducible(settings: dict) -> None:
    """run_sequence applies the proximal penalty and measures Ω on the training inputs: the defaults must
    be those, or this benchmark would measure something else than the service does."""
    if settings["penalty"] != "proximal" or settings["importance"]["on"] != "train":
        raise SystemExit(f"the service's defaults changed (penalty {settings['penalty']!r}, importance on "
                         f"{settings['importance']['on']!r}): teach benchmarks/defaults.py to run them")


def run_method(tasks: list[TaskData], method: str, settings: dict, hidden: list[int], seed: int) -> SequenceResult:
    """One sequence as the service runs it: every task holds back `validation_fraction` of its training
    rows (a seeded split, as a train job's), trains on the rest, and λ "auto" chooses on the held rows."""
    config = train_config(settings, seed, pretrained=False)
    architecture = {"kind": "mlp", "input_shape": list(tasks[0].x_train.shape[1:]), "hidden": hidden}
    options = {key: value for key, value in settings["importance"].items() if key != "on"}
    lam, fraction = settings["lambda"], settings["validation_fraction"]
    if lam != "auto":  # run_sequence holds rows back only for "auto"; a train job always does
        tasks = [_without_held_back(task, fraction, seed) for task in tasks]
    return run_sequence(tasks, method=method, lam=lam, architecture=architecture, config=config, seed=seed,
                        importance_options=options, validation_fraction=fraction,
                        lambda_grid=tuple(settings["lambda_grid"]))


def _without_held_back(task: TaskData, fraction: float, seed: int) -> TaskData:
    kept, _ = split_validation(len(task.y_train), fraction, seed)
    return TaskData(task.name, task.x_train[kept], task.y_train[kept], task.x_test, task.y_test)


def _record(seed: int, *, tasks: list[str], matrix: list[dict[str, float]], summary: dict, lambdas: list[float],
            seconds: float, eval_rows: list[int]) -> dict:
    """One seed's run: its accuracy matrix and summary, the accuracy on each task just after learning it,
    from the second task (the first is learned alike by both methods: nothing to protect yet), and each
    task's eval rows (what one row of accuracy is worth)."""
    new_task = [row[task] for task, row in zip(tasks, matrix, strict=True)][1:]
    return {"seed": seed, "matrix": matrix, **summary, "new_task_accuracy": statistics.fmean(new_task),
            "new_task_accuracies": new_task, "lambdas": lambdas, "seconds": seconds, "eval_rows": eval_rows}


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def forgetting_resolution(eval_rows: list[int]) -> float:
    """The smallest forgetting an eval set can show: one eval row of each earlier task (forgetting is a mean
    over the tasks before the last)."""
    earlier = eval_rows[:-1]
    return statistics.fmean(1 / n for n in earlier) if earlier else 0.0


def forgetting_allowed(finetune_forgetting: float, resolution: float) -> float:
    """What MAS may forget: a third of fine-tune's, but never less than the eval set can measure. Where
    fine-tuning forgets less than one eval row per task, a third of it is below what any evaluation
    resolves, and the target asks only that MAS forget no more than that row either."""
    return max(TARGETS["forgetting_ratio_max"] * finetune_forgetting, resolution)


def compare(finetune: list[dict], mas: list[dict]) -> dict:
    """Ratio of mean forgetting and the new-task difference, with whether each target holds (on the means
    over seeds) and on how many seeds it holds alone. Records from before `eval_rows` was kept have a
    resolution of 0: the plain ratio."""
    ft_forgetting = statistics.fmean(r["forgetting"] for r in finetune)
    mas_forgetting = statistics.fmean(r["forgetting"] for r in mas)
    resolutions = [forgetting_resolution(r.get("eval_rows", [])) for r in finetune]
    resolution = statistics.fmean(resolutions)
    ratio = mas_forgetting / ft_forgetting if ft_forgetting > 0 else None
    points = [100 * (m["new_task_accuracy"] - f["new_task_accuracy"]) for f, m in zip(finetune, mas, strict=True)]
    seed_ratio_holds = [m["forgetting"] <= forgetting_allowed(f["forgetting"], res)
                        for f, m, res in zip(finetune, mas, resolutions, strict=True)]
    forgetting_holds = mas_forgetting <= forgetting_allowed(ft_forgetting, resolution)
    new_task_holds = statistics.fmean(points) >= TARGETS["new_task_points_min"]
    return {
        "forgetting_ratio": ratio,
        "forgetting_resolution": resolution,
        "finetune_below_resolution": ft_forgetting < resolution,
        "new_task_points": _mean_std(points),
        "forgetting_target_holds": forgetting_holds,
        "new_task_target_holds": new_task_holds,
        "both_hold": forgetting_holds and new_task_holds,
        "seeds_forgetting_target_holds": sum(seed_ratio_holds),
        "seeds_new_task_target_holds": sum(p >= TARGETS["new_task_points_min"] for p in points),
    }


def benchmark_sequence(name: str, settings: dict, profile: dict, seeds: list[int]) -> dict:
    make, hidden = SEQUENCE_SOURCES[name]
    out: dict = {"hidden": hidden}
    for method in ("finetune", settings["method"]):
        runs = []
        for seed in seeds:
            tasks = make(seed)[: profile["max_tasks"]]
            result = run_method(tasks, method, settings, hidden, seed)
            runs.append(_record(seed, tasks=result.tasks, matrix=result.matrix, summary=result.summary,
                                lambdas=result.lambdas, seconds=result.seconds,
                                eval_rows=[len(task.y_test) for task in tasks]))
            out["tasks"] = result.tasks
        keys = ["average_accuracy", "forgetting", "new_task_accuracy", "seconds"]
        out[method] = {"runs": runs, "summary": {k: _mean_std([r[k] for r in runs]) for k in keys}}
    out["comparison"] = compare(out["finetune"]["runs"], out[settings["method"]]["runs"])
    c = out["comparison"]
    print(f"{name:16s} forgetting FT {out['finetune']['summary']['forgetting']['mean']:.3f} "
          f"MAS {out[settings['method']]['summary']['forgetting']['mean']:.3f} "
          f"ratio {_ratio(c['forgetting_ratio'])}  new task {c['new_task_points']['mean']:+.2f} pts  "
          f"both targets: {c['both_hold']}", flush=True)
    return out


def run_setting(settings: dict, profile: dict, seeds: list[int]) -> dict:
    started = time.perf_counter()
    sequences = {name: benchmark_sequence(name, settings, profile, seeds) for name in profile["sequences"]}
    return {"settings": settings, "seeds": seeds, "sequences": sequences,
            "both_hold_everywhere": all(s["comparison"]["both_hold"] for s in sequences.values()),
            "seconds": time.perf_counter() - started}


def _ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def _ratio_cell(comparison: dict) -> str:
    """The ratio, marked where fine-tuning forgot less than one eval row per task (then it compares noise)."""
    below = comparison.get("finetune_below_resolution") and comparison["forgetting_ratio"] is not None
    return _ratio(comparison["forgetting_ratio"]) + (" (FT < 1 eval row)" if below else "")


def _yes(holds: bool) -> str:
    return "yes" if holds else "**no**"


def _chosen_lambdas(runs: list[dict]) -> str:
    """How often each λ was chosen, over the tasks from the second and over seeds."""
    chosen = [lam for run in runs for lam in run["lambdas"][1:]]
    return ", ".join(f"{lam:g}×{chosen.count(lam)}" for lam in sorted(set(chosen))) or "–"


def _describe(settings: dict) -> str:
    ties = f" (a tie: {settings['lambda_tie_break']})" if settings.get("lambda_tie_break") else ""
    lam = (f"λ \"auto\" from {settings['lambda_grid']} on a held-back {settings['validation_fraction']:.0%} of each "
           f"task's training rows{ties}" if settings["lambda"] == "auto" else f"λ {settings['lambda']:g}")
    importance = settings["importance"]
    return (f"method {settings['method']}, {lam}, {settings['penalty']} penalty, {settings['epochs']} epochs, "
            f"batch {settings['batch_size']}, {settings['optimizer']} lr {settings['lr']:g} "
            f"momentum {settings['momentum']:g}, "
            f"Ω {importance['variant']} {importance['output']} {importance['reduction']} on the training inputs")


def _setting_table(entry: dict) -> list[str]:
    method = entry["settings"]["method"]
    lines = ["| sequence | tasks | FT forgetting | MAS forgetting | MAS/FT (≤ 0.33) | new task FT | new task MAS | "
             "MAS − FT, points (≥ −3) | forgetting target | new-task target | avg acc FT / MAS | λ chosen |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, sequence in entry["sequences"].items():
        ft, mas, c = sequence["finetune"]["summary"], sequence[method]["summary"], sequence["comparison"]
        seeds = len(sequence["finetune"]["runs"])
        lines.append(
            f"| {name} | {len(sequence['tasks'])} | {_fmt(ft['forgetting'])} | {_fmt(mas['forgetting'])} | "
            f"{_ratio_cell(c)} | {ft['new_task_accuracy']['mean']:.3f} | "
            f"{mas['new_task_accuracy']['mean']:.3f} | {_fmt(c['new_task_points'], digits=2)} | "
            f"{_yes(c['forgetting_target_holds'])} ({c['seeds_forgetting_target_holds']}/{seeds} seeds) | "
            f"{_yes(c['new_task_target_holds'])} ({c['seeds_new_task_target_holds']}/{seeds} seeds) | "
            f"{ft['average_accuracy']['mean']:.3f} / {mas['average_accuracy']['mean']:.3f} | "
            f"{_chosen_lambdas(sequence[method]['runs'])} |")
    return lines


def _fmt(stat: dict[str, float], digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown(results: dict) -> str:
    profile = PROFILES[results["profile"]]
    lines = [
        "# Defaults that protect",
        "",
        f"Profile `{results['profile']}`: seeds 0–{profile['seeds'] - 1} per sequence unless a setting says "
        f"otherwise; machine: {results['machine']}. "
        "Fine-tune against MAS, each with the service's defaults as `TaskRequest` fills them in when a request "
        f"gives only `task`, `train` and `eval`: {_describe(results['service_defaults'])}. Fine-tune is the same "
        "request with method `finetune` (it trains on the same rows). Sequences: `walkthrough` is the README "
        "walk-through's two split-digits tasks on its MLP 64-128-128; the others are benchmarks/sequences.py's on "
        f"the continual benchmark's MLP {ARCHITECTURE_HIDDEN}.",
        "",
        "Columns: forgetting (best earlier accuracy − final, mean over old tasks; mean ± std over seeds); MAS/FT: "
        "the ratio of the mean forgettings; new task: accuracy on each task right after learning it, mean over "
        "the tasks from the second (the first is learned alike by both); MAS − FT in points; a target holds when "
        "it holds on the means over seeds (in brackets: on how many seeds it holds alone); λ chosen: how often "
        f"each λ was chosen, over tasks from the second and seeds. {RESOLUTION_RULE}",
        "",
        "## Which settings meet both targets on every sequence",
        "",
        "| setting | " + " | ".join(profile["sequences"]) + " | everywhere | minutes |",
        "|---|" + "---|" * (len(profile["sequences"]) + 2),
    ]
    for name, entry in results["settings"].items():
        cells = []
        for sequence in profile["sequences"]:
            c = entry["sequences"][sequence]["comparison"]
            cells.append(f"{_ratio(c['forgetting_ratio'])} / {c['new_task_points']['mean']:+.1f} "
                         f"{'✓' if c['both_hold'] else '✗'}")
        lines.append(f"| {name} | {' | '.join(cells)} | {_yes(entry['both_hold_everywhere'])} | "
                     f"{entry['seconds'] / 60:.1f} |")
    lines += ["", "Cells: forgetting ratio MAS/FT / new-task difference in points, ✓ when both targets hold. Minutes: "
              "wall time of that setting's run as it happened, which depends on the machine's load as much as on "
              "the setting (a job's cost is in proportion to epochs × the grid's size)."]
    for name, entry in results["settings"].items():
        lines += ["", f"## {name}", "", _describe(entry["settings"]) + ".", "", *_setting_table(entry)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--grid", type=lambda text: [float(v) for v in text.split(",")],
                        help="λ grid of \"auto\", comma-separated (default: the service's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the service's)")
    parser.add_argument("--epochs", type=int, help="epochs per task (default: the service's)")
    parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split("-")],
                        help="FIRST-LAST: other seeds than the profile's, e.g. fresh ones to check a choice made on "
                             "the profile's")
    parser.add_argument("--add", action="store_true", help="keep the settings already in --out beside this one")
    args = parser.parse_args()
    started = provenance()
    # One thread: these small networks gain little from a second one, and on a shared 2-core machine a second
    # OpenMP thread spin-waits for the first (measured: a 5-task run 3.9 s with one thread, 40 s with two).
    torch.set_num_threads(1)
    profile = PROFILES[args.profile]
    defaults = service_defaults()
    epochs = args.epochs or profile["epochs"]
    settings = effective_settings(defaults, grid=args.grid, lr=args.lr, epochs=epochs)
    if args.epochs is None and profile["epochs"] is not None:
        settings["overrides"].pop("epochs")  # the profile's, not the user's: the label stays the defaults'
    _check_reproducible(settings)
    path = args.out / "defaults.json"
    results = {"profile": args.profile, "service_defaults": defaults, "targets": TARGETS,
               "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "settings": {}}
    earlier = None
    if args.add and path.exists():
        results = earlier = json.loads(path.read_text())
        if results["profile"] != args.profile or results["service_defaults"] != defaults:
            raise SystemExit(f"{path} holds another profile or other service defaults: run without --add")
    seeds = list(range(args.seeds[0], args.seeds[-1] + 1)) if args.seeds else list(range(profile["seeds"]))
    name = label(settings) + (f", seeds {seeds[0]}–{seeds[-1]}" if args.seeds else "")
    results["settings"][name] = run_setting(settings, profile, seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out, "defaults", results, markdown(results), started=started, earlier=earlier)
    print(f"wrote {path} and {args.out / 'defaults.md'}")


if __name__ == "__main__":
    main()
