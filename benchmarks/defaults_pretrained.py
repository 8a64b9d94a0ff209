"""Defaults that protect, on pretrained networks: benchmarks/defaults.py's check on the paper benchmark's backbones.

    python -m benchmarks.defaults_pretrained           # rewrites benchmarks/results/defaults_pretrained.*
    python -m benchmarks.defaults_pretrained --profile smoke --out /tmp/x   # what CI runs
    python -m benchmarks.defaults_pretrained --backbones efficientnet   # re-runs one, keeps the others' results

benchmarks/defaults.py holds the service's defaults to the issue's targets (MAS forgets at most a third
of what fine-tuning forgets; its new-task accuracy within 3 points of fine-tuning's) on the README
walk-through and the continual sequences, all MLPs on arrays. This runs the same comparison on the
networks and data of the paper benchmark (benchmarks/paper): all-MiniLM-L6-v2 on WordNet definitions,
EfficientNet-Lite0 and a CNN from scratch on Fashion-MNIST, each on every sequence of that benchmark
(the 8-task sequence and the two transfer pairs in both orders), with the subsets of its default profile.
The pretrained networks train their last 2 blocks, the frozen ones computed once (benchmarks/paper/tails.py).

Each task is learned by `run_tasks` (as a train job learns it) with exactly what a request that gives
only `task`, `train` and `eval` gets, read from `TaskRequest` (benchmarks.defaults.service_defaults):
MAS with λ "auto" over the service's grid on a held-back 10 % of each task's rows, its epochs, batch
size and learning rate. Fine-tune is the same request with method `finetune`, on the same rows. Runs
are independent (backbone, sequence, method, seed) jobs over `--workers` processes of one thread each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from app.mas.training import precision_for
from benchmarks.defaults import (
    RESOLUTION_RULE,
    TARGETS,
    _describe,
    _mean_std,
    _ratio,
    _record,
    _setting_table,
    compare,
    service_defaults,
    train_config,
)
from benchmarks.paper.backbones import MODALITY, Prepared, check_data, load_rows, prepare
from benchmarks.paper.data import MissingData
from benchmarks.paper.experiments import PROFILES as PAPER_PROFILES
from benchmarks.paper.runner import run_tasks
from benchmarks.provenance import provenance, write_results

RESULTS = Path(__file__).parent / "results"
BACKBONES = ["minilm", "efficientnet", "cnn"]
PROFILES = {
    "default": {"paper": "default", "seeds": 5, "backbones": BACKBONES},
    "smoke": {"paper": "smoke", "seeds": 1, "backbones": list(BACKBONES), "epochs": 1},
}
_PREPARED: dict[str, Prepared] = {}  # filled before the workers fork: they inherit the cached features


def _one_thread() -> None:
    torch.set_num_threads(1)


def learn_sequence(backbone: str, sequence: str, method: str, seed: int, settings: dict) -> dict:
    """One sequence with one method, every task learned with the service's defaults (with `method`)."""
    prepared = _PREPARED[backbone]
    data = [prepared.tasks[name] for name in prepared.sequences[sequence]]
    config = train_config(settings, seed, pretrained=backbone != "cnn", precision=precision_for(torch.device("cpu")))
    options = {key: value for key, value in settings["importance"].items() if key != "on"}
    run = run_tasks(data, lambda: prepared.make_net(seed), method=method, lam=settings["lambda"], config=config,
                    importance_options=options, validation_fraction=settings["validation_fraction"],
                    lambda_grid=tuple(settings["lambda_grid"]))
    return run.as_dict() | {"eval_rows": [len(task.y_test) for task in data]}


def _fields(run: dict) -> dict:
    """What benchmarks.defaults._record takes, from a runner's Run (as a dict)."""
    return {"tasks": run["tasks"], "matrix": run["matrix"], "summary": run["summary"], "lambdas": run["lambdas"],
            "seconds": sum(run["seconds"]), "eval_rows": run["eval_rows"]}


def run_all(settings: dict, seeds: list[int], workers: int) -> dict[str, dict]:
    """Every (backbone, sequence) with fine-tune and the defaults' method over `seeds`: records and comparison."""
    methods = ("finetune", settings["method"])
    jobs = [(b, s, m, seed) for b, p in _PREPARED.items() for s in p.sequences for m in methods for seed in seeds]
    jobs.sort(key=lambda job: (BACKBONES.index(job[0]), job[1] != "mixed_8"))  # longest first
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {job: pool.submit(learn_sequence, *job, settings) for job in jobs}
        runs = {job: future.result() for job, future in futures.items()}
    out: dict[str, dict] = {}
    for backbone, prepared in _PREPARED.items():
        for sequence in prepared.sequences:
            entry: dict = {"backbone": backbone, "tasks": prepared.sequences[sequence]}
            for method in methods:
                records = [_record(seed, **_fields(runs[backbone, sequence, method, seed])) for seed in seeds]
                keys = ["average_accuracy", "forgetting", "new_task_accuracy", "seconds"]
                entry[method] = {"runs": records, "summary": {k: _mean_std([r[k] for r in records]) for k in keys}}
            entry["comparison"] = compare(entry["finetune"]["runs"], entry[settings["method"]]["runs"])
            out[f"{backbone}/{sequence}"] = entry
            c = entry["comparison"]
            print(f"{backbone}/{sequence[:40]:40s} forgetting ratio {_ratio(c['forgetting_ratio'])}  new task "
                  f"{c['new_task_points']['mean']:+.2f} pts  both targets: {c['both_hold']}", flush=True)
    return out


def kept_results(path: Path, results: dict, rerun: list[str]) -> dict[str, dict]:
    """The sequences and run records of the backbones not re-run, from an earlier run of the same settings."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    same = ("profile", "settings", "seeds")
    if any(earlier.get(key) != results[key] for key in same):
        raise SystemExit(f"{path} was made with other {', '.join(same)}: run every backbone")
    first_run = {"date": "2026-12-01", "seconds": earlier.get("seconds")}  # results from before backbone_runs
    runs = earlier.get("backbone_runs") or dict.fromkeys(BACKBONES, first_run)
    return {"sequences": {k: v for k, v in earlier["sequences"].items() if v["backbone"] not in rerun},
            "backbone_runs": {b: r for b, r in runs.items() if b not in rerun},
            "provenance": earlier.get("provenance")}


def _runs_line(results: dict) -> str:
    """When each backbone's figures were measured (a run may re-run some backbones and keep the others')."""
    parts = []
    for backbone, run in results["backbone_runs"].items():
        took = f" in a run of {run['seconds'] / 60:.1f} min" if run.get("seconds") else ""
        parts.append(f"{backbone} run on {run['date']}{took}")
    return "; ".join(parts)


def markdown(results: dict) -> str:
    entry = {"settings": results["settings"], "sequences": results["sequences"]}
    holds = sum(s["comparison"]["both_hold"] for s in results["sequences"].values())
    lines = [
        "# Defaults that protect, on pretrained networks",
        "",
        f"Profile `{results['profile']}`: seeds {results['seeds'][0]}–{results['seeds'][-1]}; data and networks of "
        f"the paper benchmark's `{results['paper_profile']}` profile ({results['data']}); machine: "
        f"{results['machine']}; {results['workers']} worker processes ({_runs_line(results)}).",
        "",
        f"Both targets hold on {holds} of {len(results['sequences'])} sequences (target: MAS/FT forgetting ≤ 0.33 "
        "and MAS − FT new-task accuracy ≥ −3 points, each on the means over seeds). Settings: "
        f"{_describe(results['settings'])}; fine-tune the same with method `finetune`. The networks: "
        "MiniLM and EfficientNet-Lite0 train their last 2 blocks and a head per task, the CNN all of itself.",
        "",
        "Columns as in defaults.md: forgetting (best earlier accuracy − final, mean over old tasks), the ratio "
        "of the mean forgettings, accuracy on each task right after learning it (mean over the tasks from the "
        f"second), how often each λ was chosen. {RESOLUTION_RULE}",
        "",
        *_setting_table(entry),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each [2]")
    parser.add_argument("--seeds", type=lambda text: [int(v) for v in text.split("-")], help="FIRST-LAST")
    parser.add_argument("--backbones", type=lambda text: text.split(","),
                        help="re-run only these (comma-separated) and keep the others' stored results")
    args = parser.parse_args()
    began = provenance()
    profile = dict(PROFILES[args.profile])
    if args.backbones:
        if unknown := set(args.backbones) - set(profile["backbones"]):
            parser.error(f"unknown backbones {sorted(unknown)}; the profile has {profile['backbones']}")
        profile["backbones"] = [b for b in profile["backbones"] if b in args.backbones]
    paper = PAPER_PROFILES[profile["paper"]]
    defaults = service_defaults()
    settings = defaults | {"epochs": profile.get("epochs") or defaults["epochs"]}
    seeds = list(range(args.seeds[0], args.seeds[-1] + 1)) if args.seeds else list(range(profile["seeds"]))
    started = time.perf_counter()
    try:
        check_data(profile["backbones"])
        torch.set_num_threads(1)
        rows = {m: load_rows(m, paper[m]) for m in sorted({MODALITY[b] for b in profile["backbones"]})}
        for backbone in profile["backbones"]:
            _PREPARED[backbone] = prepare(backbone, rows[MODALITY[backbone]], paper)
    except MissingData as error:
        print(f"benchmarks.defaults_pretrained: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sequences = run_all(settings, seeds, args.workers)
    seconds = time.perf_counter() - started
    results = {"profile": args.profile, "paper_profile": profile["paper"], "settings": settings, "targets": TARGETS,
               "seeds": seeds, "workers": args.workers,
               "data": f"{paper['image']['n_train']} train and {paper['image']['n_eval']} eval images per class at "
                       f"{paper['image_size']} px, {paper['text']['n_train']} train and {paper['text']['n_eval']} eval "
                       f"definitions per category, at most {paper['max_length']} tokens",
               "machine": f"{platform.machine()}, torch {torch.__version__}",
               "backbone_runs": {b: {"date": time.strftime("%Y-%m-%d"), "seconds": seconds} for b in _PREPARED}}
    kept = None
    if args.backbones:
        kept = kept_results(args.out / "defaults_pretrained.json", results, args.backbones)
        sequences = kept.get("sequences", {}) | sequences
        runs = kept.get("backbone_runs", {}) | results["backbone_runs"]
        results["backbone_runs"] = {b: runs[b] for b in BACKBONES if b in runs}
    order = {b: i for i, b in enumerate(BACKBONES)}
    results["sequences"] = dict(sorted(sequences.items(), key=lambda item: order[item[1]["backbone"]]))
    results |= {"both_hold_everywhere": all(s["comparison"]["both_hold"] for s in sequences.values()),
                "mean_new_task_points": statistics.fmean(s["comparison"]["new_task_points"]["mean"]
                                                         for s in sequences.values())}
    write_results(args.out, "defaults_pretrained", results, markdown(results), started=began, earlier=kept or None)
    print(f"wrote {args.out / 'defaults_pretrained.json'} and defaults_pretrained.md")


if __name__ == "__main__":
    main()
