"""λ selection rules scored on every trial: which rule would have chosen well, on sequences kept for exploring.

    python -m benchmarks.lambda_rules                                   # MLP and CNN, seeds 100–109 (about 15 min)
    python -m benchmarks.lambda_rules --networks minilm --count 4 --out /tmp/m   # about 25 min
    python -m benchmarks.lambda_rules --merge /tmp/a /tmp/m --out benchmarks/results   # runs made side by side
    python -m benchmarks.lambda_rules --profile quick --out /tmp/x      # seconds: what the test suite runs
    python -m benchmarks.lambda_rules --networks minilm --count 6 --grid 0.001,0.01,0.1,1,3,10,30,100 --out /tmp/g
    python -m benchmarks.lambda_rules --first-seed 0 --count 20 --out /tmp/j   # judge a rule on the judged seeds
(results/lambda_rules_grid.* and lambda_rules_judged.* are the last two, their lambda_rules.* renamed)

Why it exists (issue 27): a rule for λ "auto" chosen on the sequences that judge it would be judged on what it
was fitted to. benchmarks/fresh_sequences.py judges the service's rule on seeds 0–19; this module draws its
sequences the same way from seeds 100 on (none of the judged ones) and asks, for each task's search, what each
candidate rule would have chosen and how that choice did, without training once per rule: every trial of the
search is evaluated on the eval sets of every task so far, as soon as it is trained (`learn_task`'s
`on_trial`), and fine-tuning is trained from the same start beside it. A rule is then scored per λ choice:
- forgetting during this task: the mean over the earlier tasks of their eval accuracy before the task
  minus after; the target as benchmarks.defaults' (at most a third of fine-tuning's, or one eval row per
  earlier task where that is more);
- the new task's eval accuracy against fine-tuning's, in points; the target −3 points or better.
The sequence goes on with the service's own choice (the `constrained` rule), so a choice after the first is
scored on the path that rule took. `reachable` counts the choices where some λ of the grid meets both
targets: what any rule over this grid could reach at best.

The candidate rules, all on the same trials' validation figures:
- `constrained`: the service's default (app/mas/validation.py), on the accuracy basis or, where a slice is
  too small for the tolerance, the loss basis;
- `mean`: the rule before issue 27;
- `largest_admissible`: `constrained`'s admissible trials, of which the largest λ on the loss basis (a
  larger λ holds θ nearer θ*, where a few dozen earlier rows' loss may rank noise);
- `accuracy_interval`: admissible where the new task's validation accuracy is within the tolerance plus one
  standard error of the best (a binomial one on the slice's rows, Laplace-smoothed), forgetting ranked as
  `constrained` ranks it on the basis its slices allow.
- `accuracy_ties`: where `constrained` falls back to the loss basis (a slice too small for the tolerance),
  admissible are the trials whose new-task validation accuracy ties the best any trial reached, forgetting
  ranked on the loss basis; elsewhere `constrained`. exp(−loss) also falls when a larger λ leaves the new
  task's answers right but less confident, which on 12–26 rows shut out every λ above 0.01 on sequences where
  larger ones met both targets; a tie in accuracy asks only that no held-back row be lost.
- `soft`: where `constrained` compares losses, the mean probability of the true label over the held-back rows
  instead of exp(−mean loss), for the new task's admissibility (within the tolerance) and for forgetting (the
  highest mean over the earlier slices). It is in accuracy's units and continuous, as exp(−loss) is, but each
  row weighs at most 1/rows: one confidently wrong row, which dominates a mean loss, moves it by little.
- `soft_paired`: `soft` with the tolerance widened by one standard error of the difference to the best
  trial, paired over the new task's rows (the figures of two trials on the same few rows differ by noise
  that the slice's size sets). Both were written on seeds 100–119. Every trial's logits on every held-back
  row are kept in memory for them while a sequence runs, not written to the results (they made the files
  tens of megabytes); a rule on another per-row figure is tried by adding it here and running again.

`--grid` tries another λ grid than the service's (for the question whether the grid, not the rule, fails);
`--first-seed 0` scores the rules on the seeds fresh_sequences judges, which is how a rule found here is
judged: on seeds that played no part in finding it.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from app.mas.data import TaskData
from app.mas.evaluation import accuracy, task_logits
from app.mas.learn import ImportanceChoice, MethodChoice, learn_task
from app.mas.networks import MultiHeadNet
from app.mas.sequence import learn_sequence
from app.mas.training import TrainConfig
from app.mas.validation import Selection, Trial, choose_trial, contenders, selection_basis, split_validation
from benchmarks.defaults import TARGETS, forgetting_allowed, forgetting_resolution
from benchmarks.fresh_sequences import (
    NETWORKS,
    PROFILES,
    draw_sequence,
    effective_settings,
    percentile,
    sequence_tasks,
    starting_point,
)
from benchmarks.provenance import merge_runs, provenance, write_results

RESULTS = Path(__file__).parent / "results"
FIRST_SEED = 100  # fresh_sequences judges seeds 0–19: these are drawn for exploring only
QUICK_SEEDS = {"mlp": [104], "cnn": [107], "minilm": [108]}  # digits (no Fashion-MNIST to read) or WordNet


@dataclass
class TrialOutcome:
    """One λ trial: its validation figures, and its eval accuracy on every task so far just after training."""

    trial: Trial
    eval: dict[str, float]
    validation_logits: dict[str, torch.Tensor] = field(default_factory=dict)  # per task: [held-back rows, classes]


@dataclass
class Decision:
    """One task's λ search on a sequence: every trial, fine-tuning from the same start, and the accuracy of
    the earlier tasks before it."""

    task: str
    rows: dict[str, int]  # validation rows per task
    earlier_before: dict[str, float]
    finetune: dict[str, float]
    trials: list[TrialOutcome] = field(default_factory=list)
    eval_rows: list[int] = field(default_factory=list)
    validation_labels: dict[str, torch.Tensor] = field(default_factory=dict)  # per task: its held-back rows' labels


Rule = Callable[[Decision], Trial]


def _trials(decision: Decision) -> list[Trial]:
    return [outcome.trial for outcome in decision.trials]


def _constrained(decision: Decision) -> Trial:
    basis, why = selection_basis(decision.rows, Selection())
    return choose_trial(_trials(decision), decision.task, Selection(), basis, why).trial


def _mean(decision: Decision) -> Trial:
    return choose_trial(_trials(decision), decision.task, Selection("mean")).trial


def _largest_admissible(decision: Decision) -> Trial:
    basis, _ = selection_basis(decision.rows, Selection())
    if basis == "accuracy":
        return _constrained(decision)
    return max(contenders(_trials(decision), decision.task, Selection(), basis), key=lambda trial: trial.lam)


def _accuracy_interval(decision: Decision) -> Trial:
    trials, task = _trials(decision), decision.task
    tolerance, n = Selection().tolerance, decision.rows[task]
    best = max(trial.scores[task] for trial in trials)
    smoothed = (best * n + 1) / (n + 2)
    allowance = tolerance + math.sqrt(2 * smoothed * (1 - smoothed) / n)
    admissible = [trial for trial in trials if trial.scores[task] >= best - allowance - 1e-12]
    basis, _ = selection_basis(decision.rows, Selection())  # forgetting ranked on what the slices allow
    return choose_trial(admissible, task, Selection(tolerance=1.0), basis).trial


def _accuracy_ties(decision: Decision) -> Trial:
    basis, _ = selection_basis(decision.rows, Selection())
    if basis == "accuracy":
        return _constrained(decision)
    trials = _trials(decision)
    best = max(trial.scores[decision.task] for trial in trials)
    tied = [trial for trial in trials if trial.scores[decision.task] >= best - 1e-12]
    return choose_trial(tied, decision.task, Selection(tolerance=1.0), basis).trial


def _true_probabilities(decision: Decision, outcome: TrialOutcome, task: str) -> torch.Tensor:
    """The probability the trial's network gave each of `task`'s held-back rows' true label."""
    logits = outcome.validation_logits[task].double()
    labels = decision.validation_labels[task].long()
    return logits.softmax(1)[torch.arange(len(labels)), labels]


def _soft(decision: Decision, standard_errors: float = 0.0) -> Trial:
    """Where `constrained` compares losses, compare the mean probability of the true label instead: admissible
    within the tolerance (plus `standard_errors` of the difference to the best trial, paired over the new task's
    rows), and of those the highest mean probability over the earlier slices, ties to their accuracy, then λ."""
    basis, _ = selection_basis(decision.rows, Selection())
    if basis == "accuracy":
        return _constrained(decision)
    task = decision.task
    earlier = [t for t, labels in decision.validation_labels.items() if t != task and len(labels)]
    if not len(decision.validation_labels.get(task, ())) or not earlier:  # nothing to compare: constrained's answer
        return _constrained(decision)
    new = [_true_probabilities(decision, outcome, task) for outcome in decision.trials]
    best = max(new, key=lambda rows: float(rows.mean()))

    def allowance(rows: torch.Tensor) -> float:
        difference = best - rows
        spread = float(difference.std()) / math.sqrt(len(difference)) if len(difference) > 1 else 0.0
        return Selection().tolerance + standard_errors * spread

    admissible = [outcome for outcome, rows in zip(decision.trials, new, strict=True)
                  if float(rows.mean()) >= float(best.mean()) - allowance(rows) - 1e-12]

    def retention(outcome: TrialOutcome) -> tuple[float, float, float]:
        kept = statistics.fmean(float(_true_probabilities(decision, outcome, t).mean()) for t in earlier)
        return round(kept, 12), round(statistics.fmean(outcome.trial.scores[t] for t in earlier), 12), outcome.trial.lam

    return max(admissible, key=retention).trial


RULES: dict[str, Rule] = {"constrained": _constrained, "mean": _mean, "largest_admissible": _largest_admissible,
                          "accuracy_interval": _accuracy_interval, "accuracy_ties": _accuracy_ties,
                          "soft": _soft, "soft_paired": partial(_soft, standard_errors=1.0)}


def judge_choice(decision: Decision, chosen: TrialOutcome) -> dict:
    """A choice against the targets, on this task alone: its forgetting of the earlier tasks against
    fine-tuning's from the same start, and its new-task eval accuracy against fine-tuning's."""
    ours, theirs = _forgetting(decision, chosen.eval), _forgetting(decision, decision.finetune)
    points = 100 * (chosen.eval[decision.task] - decision.finetune[decision.task])
    forgetting_holds = ours <= forgetting_allowed(theirs, forgetting_resolution(decision.eval_rows)) + 1e-12
    new_task_holds = points >= TARGETS["new_task_points_min"] - 1e-9
    return {"lambda": chosen.trial.lam, "forgetting": ours, "finetune_forgetting": theirs,
            "new_task_points": points, "forgetting_holds": forgetting_holds, "new_task_holds": new_task_holds,
            "both_hold": forgetting_holds and new_task_holds}


def _forgetting(decision: Decision, after: dict[str, float]) -> float:
    return statistics.fmean(decision.earlier_before[t] - after[t] for t in decision.earlier_before)


def score(decision: Decision) -> dict:
    """Every rule's choice on one decision, and whether any λ of the grid meets both targets."""
    chosen = {name: rule(decision) for name, rule in RULES.items()}
    outcomes = {name: next(o for o in decision.trials if o.trial is trial) for name, trial in chosen.items()}
    judged = {name: judge_choice(decision, outcome) for name, outcome in outcomes.items()}
    reachable = [o.trial.lam for o in decision.trials if judge_choice(decision, o)["both_hold"]]
    return {"task": decision.task, "rows": decision.rows, "finetune_forgetting": _forgetting(decision,
                                                                                              decision.finetune),
            "trials": [{"lambda": o.trial.lam, "validation": o.trial.scores, "validation_loss": o.trial.losses,
                        "eval": o.eval} for o in decision.trials],
            "earlier_before": decision.earlier_before, "eval_rows": decision.eval_rows,
            "finetune": decision.finetune, "rules": judged, "reachable": reachable}


def run_sequence_decisions(tasks: list[TaskData], network: str, settings: dict, seed: int) -> list[dict]:
    """Learn `tasks` as a train job with `settings` does (the constrained rule choosing), recording every
    trial of every search and fine-tuning from each search's start; every search with more than one trial,
    scored."""
    net, config, options = starting_point(tasks, network, settings, seed)
    current: dict[str, Decision] = {}
    splits = {t.name: split_validation(len(t.y_train), settings["validation_fraction"], config.seed) for t in tasks}

    def observe(task: str, trial: Trial, trained: MultiHeadNet) -> None:
        decision = current[task]
        seen = tasks[: 1 + [t.name for t in tasks].index(task)]
        decision.trials.append(TrialOutcome(trial, {t.name: accuracy(trained, t.name, t.x_test, t.y_test)
                                                    for t in seen},
                                            {t.name: task_logits(trained, t.name, t.x_train[splits[t.name][1]]).cpu()
                                             for t in seen}))

    steps = learn_sequence(tasks, net, method=settings["method"], lam=settings["lambda"], config=config,
                           importance=ImportanceChoice(**options), validation_fraction=settings["validation_fraction"],
                           lambda_grid=tuple(settings["lambda_grid"]), on_trial=observe)
    scored: list[dict] = []
    start, before, rows = copy.deepcopy(net), {}, {}
    for index, data in enumerate(tasks):
        kept, held = splits[data.name]
        rows[data.name] = len(held)
        seen = tasks[: index + 1]
        finetune = _finetune(start, data, kept, config) if index else None  # the first task has no search
        current[data.name] = Decision(data.name, dict(rows), dict(before),
                                      {} if finetune is None else {t.name: accuracy(finetune, t.name, t.x_test,
                                                                                    t.y_test) for t in seen},
                                      eval_rows=[len(t.y_test) for t in seen],
                                      validation_labels={t.name: t.y_train[splits[t.name][1]] for t in seen})
        step = next(steps)
        if len(current[data.name].trials) > 1:
            scored.append(score(current[data.name]))
        before, start = dict(step.accuracy), copy.deepcopy(step.learned.net)
    return scored


def _finetune(net: MultiHeadNet, data: TaskData, kept: torch.Tensor, config: TrainConfig) -> MultiHeadNet:
    """Fine-tuning of `data` on its training rows (the held-back ones left out, as the search has them), in
    place on `net` (the caller's copy of the search's start)."""
    learn_task(net, data.name, int(data.y_train.max()) + 1, data.x_train[kept], data.y_train[kept],
               method=MethodChoice("finetune"), theta_star={}, omega={}, config=config, importance=None)
    return net


def summary(decisions: list[dict]) -> dict:
    """Per rule: how many choices meet each target, and the new-task points' median and 10th percentile."""
    out = {"choices": len(decisions), "reachable": sum(bool(d["reachable"]) for d in decisions), "rules": {}}
    for name in RULES:
        judged = [d["rules"][name] for d in decisions]
        points = [j["new_task_points"] for j in judged]
        out["rules"][name] = {key: sum(j[key] for j in judged)
                              for key in ("forgetting_holds", "new_task_holds", "both_hold")} | {
            "new_task_points_median": statistics.median(points) if points else None,
            "new_task_points_p10": percentile(points, 10) if points else None}
    return out


def markdown(results: dict) -> str:
    judged = any(seed < FIRST_SEED for seeds in _seed_lists(results).values() for seed in seeds)
    kind = "on seeds fresh_sequences judges" if judged else "sequences drawn for exploring"
    grid = ", ".join(f"{lam:g}" for lam in results["settings"]["lambda_grid"])
    lines = [f"# λ selection rules scored on every trial ({kind})", "",
             f"Profile `{results['profile']}`; seeds {_seeds(results)} (fresh_sequences judges 0–19); λ grid {grid}. "
             "Per λ choice: forgetting during the task against fine-tuning's from the same start "
             "(target: a third, or one eval row per earlier task), the new task's eval accuracy against "
             "fine-tuning's (target: −3 points or better). `reachable`: choices where some λ of the grid meets "
             "both.", "",
             "| network | choices | reachable | rule | forgetting target | new-task target | both | "
             "new-task points median | p10 |", "|---|---|---|---|---|---|---|---|---|"]
    for network, entry in results["by_network"].items():
        s = entry["summary"]
        for name, figures in s["rules"].items():
            lines.append(f"| {network} | {s['choices']} | {s['reachable']} | {name} | "
                         f"{figures['forgetting_holds']}/{s['choices']} | {figures['new_task_holds']}/{s['choices']} | "
                         f"{figures['both_hold']}/{s['choices']} | {_points(figures['new_task_points_median'])} | "
                         f"{_points(figures['new_task_points_p10'])} |")
    for network, entry in results["by_network"].items():
        lines += ["", f"## {network}: every λ choice", "",
                  "| seed | task | validation rows | FT forgetting | " + " | ".join(RULES) + " | reachable λ |",
                  "|---|---|---|---|" + "---|" * len(RULES) + "---|"]
        for sequence in entry["sequences"]:
            for d in sequence["decisions"]:
                cells = [f"λ {d['rules'][n]['lambda']:g}: {d['rules'][n]['forgetting']:.3f}, "
                         f"{d['rules'][n]['new_task_points']:+.1f}" + (" ✓" if d["rules"][n]["both_hold"] else "")
                         for n in RULES]
                lines.append(f"| {sequence['seed']} | {d['task']} | {'/'.join(map(str, d['rows'].values()))} | "
                             f"{d['finetune_forgetting']:.3f} | " + " | ".join(cells) + " | "
                             f"{', '.join(f'{lam:g}' for lam in d['reachable']) or '–'} |")
    return "\n".join(lines) + "\n"


def _seed_lists(results: dict) -> dict[str, list[int]]:
    return results.get("seeds_by_network") or {network: results["seeds"] for network in results["by_network"]}


def _seeds(results: dict) -> str:
    by_network = _seed_lists(results)
    return "; ".join(f"{network} {seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f"{network} {seeds[0]}"
                     for network, seeds in by_network.items() if seeds)


def _line(decision: dict) -> str:
    choices = (f"{name} λ{judged['lambda']:g}{'✓' if judged['both_hold'] else ''}"
               for name, judged in decision["rules"].items())
    return decision["task"] + " " + " ".join(choices)


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["full", "quick"], default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--networks", default="mlp,cnn", help="comma-separated, of mlp, cnn, minilm")
    parser.add_argument("--count", type=int, default=10, help="sequences per network, from --first-seed")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED,
                        help=f"the first sequence's seed (default {FIRST_SEED}; 0–19 are the seeds fresh_sequences "
                             "judges on: use them to judge a rule found here, never to find one)")
    parser.add_argument("--grid", type=_grid, help="comma-separated λ to try instead of the service's grid")
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="combine these runs' lambda_rules.json (other networks each, run apart) into --out")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    networks = [n for n in args.networks.split(",") if n]
    if unknown := [n for n in networks if n not in NETWORKS or n == "efficientnet"]:
        parser.error(f"unknown network: {', '.join(unknown)}")
    started = provenance(None if argv is None else ["benchmarks/lambda_rules.py", *argv])
    torch.set_num_threads(1)
    profile = PROFILES[args.profile]
    settings = effective_settings(profile)
    if args.grid:
        settings["lambda_grid"] = args.grid
        settings["overrides"] = settings["overrides"] | {"lambda_grid": args.grid}
    seeds = list(range(args.first_seed, args.first_seed + args.count))
    if args.profile == "quick":
        seeds = sorted({seed for network in networks for seed in QUICK_SEEDS[network]})
    results = {"profile": args.profile, "settings": settings, "targets": TARGETS, "seeds": seeds,
               "rules": list(RULES), "by_network": {}}
    for network in networks:
        clock, sequences = time.perf_counter(), []
        for seed in QUICK_SEEDS[network] if args.profile == "quick" else seeds:  # quick: one short sequence
            spec = draw_sequence(seed, network)
            tasks = sequence_tasks(spec, max_rows=profile["max_rows"])[: profile["max_tasks"]]
            sequences.append({"seed": seed, "describe": spec.describe(),
                              "decisions": run_sequence_decisions(tasks, network, settings, seed)})
            decisions = [d for s in sequences for d in s["decisions"]]
            results["by_network"][network] = {"sequences": sequences, "summary": summary(decisions),
                                              "seconds": time.perf_counter() - clock}
            write_results(args.out, "lambda_rules", results, markdown(results), started=started)
            print(f"{network} seed {seed}: " + "; ".join(_line(d) for d in sequences[-1]["decisions"]), flush=True)
    print(f"wrote {args.out / 'lambda_rules.json'} and {args.out / 'lambda_rules.md'}")


def _grid(text: str) -> list[float]:
    try:
        grid = sorted({float(value) for value in text.split(",") if value.strip()})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a grid is comma-separated numbers: {error}") from None
    if not grid or grid[0] < 0:
        raise argparse.ArgumentTypeError("a grid needs at least one λ, none negative")
    return grid


def merge(paths: list[Path], out: Path) -> None:
    """One results file from runs of other networks (run side by side): the first run's provenance, the others'
    under `parts`; the seeds are each network's own (`seeds_by_network`)."""
    def join(results: dict, other: dict) -> None:
        if overlap := set(other["by_network"]) & set(results["by_network"]):
            raise SystemExit(f"two runs measured {', '.join(sorted(overlap))}")
        if other["settings"]["lambda_grid"] != results["settings"]["lambda_grid"]:
            raise SystemExit("the runs tried other λ grids: their choices do not compare")
        results.setdefault("seeds_by_network", {network: results["seeds"] for network in results["by_network"]})
        results["by_network"] |= other["by_network"]
        results["seeds_by_network"] |= {network: other["seeds"] for network in other["by_network"]}

    merge_runs(paths, out, "lambda_rules", join, markdown)


if __name__ == "__main__":
    main()
