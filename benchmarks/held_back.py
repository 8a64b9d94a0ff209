"""Held-back rows: would λ "auto" choose better with a floor on the rows each task holds back? (issue 27)

    python -m benchmarks.held_back                        # MLP and CNN, seeds 100–109, floors 0, 50, 100
    python -m benchmarks.held_back --floors 0,50 --first-seed 200 --count 20 --out /tmp/h   # judge a floor found here
    python -m benchmarks.held_back --networks cnn --out /tmp/c              # one network, beside another run
    python -m benchmarks.held_back --merge /tmp/m /tmp/c --out benchmarks/results   # runs made side by side
    python -m benchmarks.held_back --profile quick --out /tmp/x             # seconds: what the test suite runs

Why it exists: benchmarks/results/lambda_rules_judged.md, split by the size of the slices λ "auto" chose on,
shows the service's rule meeting both targets on 10 of 11 choices where a task's slice had 50 rows or more and
on 24 of 35 where it had 25 or fewer. A train job holds back `validation_fraction` (10 %) of a task's rows, so a
task of 120 rows is judged on 12: one row is 8 points, and the rule compares validation losses instead
(app/mas/validation.py). A floor would hold back more rows from small tasks, at the price of fewer rows to learn
from; this module measures both sides before the service changes.

What it runs: for each floor, lambda_rules' recording (every λ trial of every search scored on every eval set,
fine-tuning trained from the same start on the same kept rows) and all of its candidate rules, on the sequences
fresh_sequences draws. A sequence holds back max(fraction, floor / n) of every task's training rows, n its
smallest task's, at most half: every task then holds back at least `floor` rows where half its rows allow,
and a task larger than the smallest proportionally more (one fraction per sequence, because `learn_sequence`
takes one; a per-task floor in the service would hold back exactly the floor). Fine-tuning learns from the
same kept rows, as a train job's does, so the targets still compare like with like; what a floor costs both
methods shows in fine-tuning's new-task accuracy, reported per floor. Floors are compared on exploring seeds
(100 on); a floor chosen there is judged with `--first-seed 200`, seeds no benchmark has used to choose anything.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from app.mas.data import TaskData
from benchmarks.defaults import TARGETS
from benchmarks.fresh_sequences import PROFILES, draw_sequence, effective_settings, sequence_tasks
from benchmarks.lambda_rules import FIRST_SEED, QUICK_SEEDS, run_sequence_decisions, summary
from benchmarks.provenance import merge_runs, provenance, write_results

RESULTS = Path(__file__).parent / "results"
DEFAULT_FLOORS = (0, 50, 100)
QUICK_FLOORS = (0, 10)
MAX_FRACTION = 0.5  # a train job's validation_fraction may not exceed it either
SHOWN_RULES = ("constrained", "accuracy_ties", "mean")


def held_back_fraction(tasks: list[TaskData], fraction: float, floor: int) -> float:
    """The share of every task's rows a sequence holds back so that its smallest task holds back `floor`
    rows, never less than `fraction` nor more than MAX_FRACTION."""
    smallest = min(len(task.y_train) for task in tasks)
    return min(MAX_FRACTION, max(fraction, floor / smallest))


def floor_summary(sequences: list[dict]) -> dict:
    """lambda_rules' summary of every choice, with the slices' sizes and fine-tuning's new-task accuracy (what
    holding rows back costs every method)."""
    decisions = [d for s in sequences for d in s["decisions"]]
    out = summary(decisions)
    if decisions:
        out["new_task_rows_median"] = statistics.median(d["rows"][d["task"]] for d in decisions)
        out["finetune_new_task_accuracy"] = statistics.fmean(d["finetune"][d["task"]] for d in decisions)
    return out


def markdown(results: dict) -> str:
    seeds = results["seeds"]
    lines = [f"# Held-back rows: λ \"auto\" with a floor on each task's validation slice ({results['profile']})", "",
             f"Seeds {seeds[0]}–{seeds[-1]} ({'exploring' if seeds[0] < 200 else 'judging: none chose anything'}); "
             "each floor runs benchmarks.lambda_rules' recording with every task holding back "
             "max(10 %, floor / smallest task's rows), at most half. Per λ choice, the targets as "
             "benchmarks.defaults': forgetting during the task at most a third of fine-tuning's from the same "
             "start (or one eval row per earlier task), the new task's eval accuracy −3 points or better against "
             "fine-tuning's on the same kept rows. `FT new task`: fine-tuning's mean new-task eval accuracy, "
             "the price of the rows held back.", "",
             "| floor | network | choices | new-task slice rows (median) | FT new task | reachable | rule | "
             "both targets | new-task points median | p10 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for floor, by_network in results["by_floor"].items():
        for network, entry in by_network.items():
            s = entry["summary"]
            if not s["choices"]:
                continue
            for rule in SHOWN_RULES:
                figures = s["rules"][rule]
                lines.append(f"| {floor} | {network} | {s['choices']} | {s['new_task_rows_median']:g} | "
                             f"{s['finetune_new_task_accuracy']:.3f} | {s['reachable']} | {rule} | "
                             f"{figures['both_hold']}/{s['choices']} | {_points(figures['new_task_points_median'])} | "
                             f"{_points(figures['new_task_points_p10'])} |")
    return "\n".join(lines) + "\n"


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def _floors(text: str) -> list[int]:
    try:
        floors = sorted({int(value) for value in text.split(",") if value.strip()})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"floors are comma-separated whole numbers of rows: {error}") from None
    if not floors or floors[0] < 0:
        raise argparse.ArgumentTypeError("give at least one floor, none negative")
    return floors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["full", "quick"], default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--networks", default="mlp,cnn", help="comma-separated, of mlp, cnn, minilm")
    parser.add_argument("--floors", type=_floors, help="comma-separated rows held back at least "
                                                       f"(default {','.join(map(str, DEFAULT_FLOORS))})")
    parser.add_argument("--count", type=int, default=10, help="sequences per network, from --first-seed")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED)
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="combine these runs' held_back.json (other networks each, run apart) into --out")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    networks = [n for n in args.networks.split(",") if n]
    if unknown := [n for n in networks if n not in QUICK_SEEDS]:
        parser.error(f"unknown network: {', '.join(unknown)}")
    started = provenance(None if argv is None else ["benchmarks/held_back.py", *argv])
    torch.set_num_threads(1)
    profile = PROFILES[args.profile]
    settings = effective_settings(profile)
    quick = args.profile == "quick"
    floors = args.floors or list(QUICK_FLOORS if quick else DEFAULT_FLOORS)
    seeds = sorted({s for n in networks for s in QUICK_SEEDS[n]}) if quick else \
        list(range(args.first_seed, args.first_seed + args.count))
    results = {"profile": args.profile, "settings": settings, "targets": TARGETS, "seeds": seeds, "floors": floors,
               "by_floor": {}}
    for floor in floors:
        for network in networks:
            clock, sequences = time.perf_counter(), []
            for seed in QUICK_SEEDS[network] if quick else seeds:
                spec = draw_sequence(seed, network)
                tasks = sequence_tasks(spec, max_rows=profile["max_rows"])[: profile["max_tasks"]]
                fraction = held_back_fraction(tasks, settings["validation_fraction"], floor)
                decisions = run_sequence_decisions(tasks, network, settings | {"validation_fraction": fraction}, seed)
                sequences.append({"seed": seed, "describe": spec.describe(), "fraction": fraction,
                                  "decisions": decisions})
                results["by_floor"].setdefault(str(floor), {})[network] = {
                    "sequences": sequences, "summary": floor_summary(sequences), "seconds": time.perf_counter() - clock}
                write_results(args.out, "held_back", results, markdown(results), started=started)
                print(f"floor {floor} {network} seed {seed} fraction {fraction:.2f}: " + "; ".join(
                    f"{d['task']} constrained λ{d['rules']['constrained']['lambda']:g}"
                    f"{'✓' if d['rules']['constrained']['both_hold'] else ''}" for d in decisions), flush=True)
    print(f"wrote {args.out / 'held_back.json'} and {args.out / 'held_back.md'}")


def merge(paths: list[Path], out: Path) -> None:
    """One results file from runs of other networks with the same floors (run side by side)."""
    def join(results: dict, other: dict) -> None:
        if other["floors"] != results["floors"]:
            raise SystemExit("the runs tried other floors")
        for floor, by_network in other["by_floor"].items():
            if overlap := set(by_network) & set(results["by_floor"][floor]):
                raise SystemExit(f"two runs measured {', '.join(sorted(overlap))}")
            results["by_floor"][floor] |= by_network
        results["seeds"] = sorted(set(results["seeds"]) | set(other["seeds"]))

    merge_runs(paths, out, "held_back", join, markdown)


if __name__ == "__main__":
    main()
