"""From finished runs to the figures the paper reports: per-variant means ± std and the claims' verdicts.

Per run: continual_metrics of its accuracy matrix (average accuracy, forgetting, BWT), the mean accuracy
on each task right after learning it, the Table 2 quantities of a two-task run (the first task's accuracy
after the second, its drop, the second's accuracy), the Fig. 5 ones of a long run (each task's final
accuracy and its drop from just after learning it) and the Fig. 4 ones (bytes kept after each step).
The 5-task sequence's figures for the main variants are mixed_8's runs read after task 5 (same tasks,
same seeds, same training: the first 5 rows of the matrix are those of a 5-task run).
"""

from __future__ import annotations

import statistics
from typing import Any

from app.mas.evaluation import continual_metrics
from benchmarks.paper.experiments import FIVE, MAIN, TABLE3, Outcome

PER_STEP = ("seconds", "cpu_seconds", "kept_bytes", "penalty_bytes", "training_bytes", "lambdas")


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def truncated(run: dict, tasks: int) -> dict:
    """The run as it stood after `tasks` tasks."""
    out = {k: (v[:tasks] if k in PER_STEP or k == "matrix" else v) for k, v in run.items()}
    out["tasks"] = run["tasks"][:tasks]
    out["summary"] = continual_metrics(out["matrix"], out["tasks"])
    return out


def run_figures(run: dict) -> dict[str, Any]:
    matrix, tasks = run["matrix"], run["tasks"]
    figures = {k: v for k, v in run["summary"].items() if v is not None}
    figures["new_task_accuracy"] = statistics.fmean(matrix[i][t] for i, t in enumerate(tasks))
    figures["seconds"] = sum(run["seconds"])
    figures["cpu_seconds"] = sum(run["cpu_seconds"])
    figures["final"] = dict(matrix[-1])
    figures["drop"] = {t: matrix[i][t] - matrix[-1][t] for i, t in enumerate(tasks)}
    if len(tasks) == 2:
        first, second = tasks
        figures |= {"first_after": matrix[1][first], "first_drop": matrix[0][first] - matrix[1][first],
                    "second": matrix[1][second]}
    return figures


def aggregate(runs: list[dict]) -> dict[str, Any]:
    figures = [run_figures(r) for r in runs]
    scalar = [k for k, v in figures[0].items() if isinstance(v, float | int) and all(k in f for f in figures)]
    out: dict[str, Any] = {k: mean_std([f[k] for f in figures]) for k in scalar}
    for key in ("final", "drop"):
        out[key] = {t: mean_std([f[key][t] for f in figures]) for t in figures[0][key]}
    for key in ("kept_bytes", "penalty_bytes", "training_bytes"):
        out[key] = [statistics.fmean(r[key][i] for r in runs) for i in range(len(runs[0][key]))]
    out["diagonal"] = [statistics.fmean(r["matrix"][i][t] for r in runs) for i, t in enumerate(runs[0]["tasks"])]
    return out


def collect(outcomes: list[Outcome], chosen: dict, scores: dict, prepared: dict) -> dict[str, Any]:
    """The results of every backbone: λ and validation scores, then each sequence's runs and summaries."""
    backbones: dict[str, Any] = {}
    for name, p in prepared.items():
        entry: dict[str, Any] = {
            "architecture": p.architecture, "trainable_parameters": p.trainable_parameters,
            "feature_seconds": p.feature_seconds, "feature_cpu_seconds": p.feature_cpu_seconds,
            "lambda": {v: lam for (b, v), lam in chosen.items() if b == name},
            "validation": {v: {str(lam): s for lam, s in grid.items()} for (b, v), grid in scores.items() if b == name},
            "search_seconds": {}, "sequences": {},
        }
        for o in outcomes:
            if o.job.backbone != name:
                continue
            if o.job.validation_seed is not None:
                spent = entry["search_seconds"].setdefault(o.job.variant, {"wall": 0.0, "cpu": 0.0})
                spent["wall"] += o.wall
                spent["cpu"] += o.cpu
                continue
            sequence = entry["sequences"].setdefault(o.job.sequence, {"tasks": o.run["tasks"], "variants": {}})
            variant = sequence["variants"].setdefault(o.job.variant, {"lambda": o.job.lam, "runs": []})
            variant["runs"].append({"seed": o.job.seed, "wall": o.wall, "cpu": o.cpu, **o.run})
        if "mixed_8" in entry["sequences"]:
            _five_from_mixed(entry["sequences"])
        for sequence in entry["sequences"].values():
            for variant in sequence["variants"].values():
                variant["runs"].sort(key=lambda r: r["seed"])
                variant["summary"] = aggregate(variant["runs"])
        backbones[name] = entry
    return backbones


def _five_from_mixed(sequences: dict[str, Any]) -> None:
    mixed = sequences["mixed_8"]
    tasks = min(5, len(mixed["tasks"]))
    five = sequences.setdefault(FIVE, {"tasks": mixed["tasks"][:tasks], "variants": {}})
    for variant, entry in mixed["variants"].items():
        five["variants"][variant] = {"lambda": entry["lambda"], "read_off": "mixed_8",
                                     "runs": [truncated(r, tasks) for r in entry["runs"]]}
    order = [v for v in [*MAIN, *TABLE3] if v in five["variants"]]
    five["variants"] = {v: five["variants"][v] for v in order}


# --- the paper's claims -------------------------------------------------------------------------------


def _m(sequence: dict, variant: str, key: str) -> float | None:
    entry = sequence["variants"].get(variant)
    return entry["summary"][key]["mean"] if entry and key in entry["summary"] else None


MAS_VARIANTS = ("mas", "mas_block", "mas_attention", "mas_blend")  # issue 27, item 3: MAS, and Ω reshaped


def _variants_against_ewc_si(mixed: dict) -> dict[str, Any]:
    """Issue 27's target on the 8 tasks: a MAS variant whose average accuracy is at least EWC's and SI's,
    forgetting at most a third of fine-tune's; the variants that meet it."""
    shown = [v for v in (*MAS_VARIANTS, "ewc", "si", "finetune") if v in mixed["variants"]]
    accuracy = {v: _m(mixed, v, "average_accuracy") for v in shown}
    forgetting = {v: _m(mixed, v, "forgetting") for v in shown}
    bar = max(accuracy.get("ewc") or 0.0, accuracy.get("si") or 0.0)
    meeting = [v for v in MAS_VARIANTS if v in accuracy and accuracy[v] >= bar
               and forgetting.get("finetune") is not None and forgetting[v] <= forgetting["finetune"] / 3]
    return {"average_accuracy_mixed_8": accuracy, "forgetting_mixed_8": forgetting, "meeting": meeting,
            "holds": bool(meeting)}


def _transfers(entry: dict) -> list[dict]:
    return [s for k, s in entry["sequences"].items() if "__" in k]


def claims(backbones: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per backbone, each claim's numbers and whether it holds on these data."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in backbones.items():
        mixed, five = entry["sequences"].get("mixed_8"), entry["sequences"].get(FIVE)
        pairs = _transfers(entry)
        verdicts: dict[str, Any] = {}
        if mixed:
            ft, mas = _m(mixed, "finetune", "forgetting"), _m(mixed, "mas", "forgetting")
            drops = {v: statistics.fmean(_m(s, v, "first_drop") for s in pairs) for v in MAIN
                     if pairs and all(v in s["variants"] for s in pairs)}
            verdicts["mas_forgets_far_less"] = {
                "forgetting_mixed_8": {"finetune": ft, "mas": mas},
                "first_task_drop_transfers": {"finetune": drops.get("finetune"), "mas": drops.get("mas")},
                "holds": mas is not None and ft is not None and ft > 0 and mas <= ft / 3}
            verdicts["mas_at_most_ewc_si_lwf"] = {
                "forgetting_mixed_8": {v: _m(mixed, v, "forgetting") for v in ("mas", "ewc", "si", "lwf")},
                "average_accuracy_mixed_8": {v: _m(mixed, v, "average_accuracy") for v in ("mas", "ewc", "si", "lwf")},
                "first_task_drop_transfers": {v: drops.get(v) for v in ("mas", "ewc", "si", "lwf")},
                "holds": all(_m(mixed, "mas", "average_accuracy") >= _m(mixed, v, "average_accuracy")
                             for v in ("ewc", "si", "lwf"))}
            verdicts["a_mas_variant_at_least_ewc_si"] = _variants_against_ewc_si(mixed)
            gap = statistics.fmean(_new_task_gap(s) for s in [mixed, *pairs])
            verdicts["new_task_within_3_points"] = {"mas_minus_finetune_points": gap, "holds": gap >= -3.0}
        if five:
            verdicts |= _table3_claims(five)
        out[name] = verdicts
    return out


def _new_task_gap(sequence: dict) -> float:
    """MAS's accuracy on each task just after learning it minus fine-tune's, in points, over the tasks learned
    under the penalty (the first task of a sequence is learned alike by both)."""
    mas, ft = (sequence["variants"][v]["summary"]["diagonal"] for v in ("mas", "finetune"))
    return statistics.fmean(100 * (a - b) for a, b in zip(mas[1:], ft[1:], strict=True))


def _table3_claims(five: dict) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    train, test = _m(five, "mas", "average_accuracy"), _m(five, "mas_omega_test", "average_accuracy")
    if train is not None and test is not None:
        spread = max(five["variants"]["mas"]["summary"]["average_accuracy"]["std"],
                     five["variants"]["mas_omega_test"]["summary"]["average_accuracy"]["std"], 0.01)
        verdicts["omega_deployment_as_good"] = {"train": train, "deployment": test,
                                                "both": _m(five, "mas_omega_both", "average_accuracy"),
                                                "holds": test >= train - spread}
    local = _m(five, "mas_local", "average_accuracy")
    if train is not None and local is not None:
        verdicts["local_worse_than_global"] = {"global": train, "local": local, "holds": local < train}
    return verdicts
