"""Answers without a task, measured: every task-free predictor on class-incremental sequences (MAS.md §7).

    python -m benchmarks.task_free                      # rewrites benchmarks/results/task_free.*
    python -m benchmarks.task_free --profile smoke --out /tmp/x   # seconds: what CI runs

The data and networks of the paper benchmark (benchmarks/paper): split Fashion-MNIST (5 tasks of 2
classes) on EfficientNet-Lite0 and 8 tasks of WordNet noun categories on all-MiniLM-L6-v2, each with
`trainable` {"last": 2} (the frozen blocks computed once, tails.py) and "none" (the whole trunk frozen:
its features computed once, only the heads train). Every task is learned by `learn_task` with the
service's defaults (benchmarks.defaults.service_defaults: MAS, λ "auto" on the held-back
`validation_fraction` of each task's training rows, its epochs, batch and learning rate), as a train job
learns it. After each task, as the service does when it makes a version: the task's class statistics are
measured on its training rows (app/mas/class_statistics.py, with RanPAC's projection drawn from the run's
seed), and every predictor is fitted on the held-back rows of every task so far (app/mas/task_free.py).
Reported on the eval rows of every class seen: each predictor's task-free accuracy, task-inference
accuracy and ECE; the task oracle (the true task's own head, today's multi-head answer); the unknown
detector's AUROC against classes never learned (near: later tasks' classes and, for WordNet, the noun
categories in no task) and another dataset (far: scikit-learn's digits upscaled, WordNet verb
definitions). With trainable last 2 the trunk moves, so each step is scored twice: earlier tasks'
statistics re-measured at the new trunk, and kept from when each task was learned ("stale"). Joint
training, one head over every class trained on all tasks' rows at once with the same trunk setting, is
the upper bound. Runs are (backbone, trainable, seed) jobs over processes of one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from app.mas import task_free
from app.mas.accumulation import TaskImportance, total_importance
from app.mas.class_statistics import ClassStatistics, Projection, features, head_logits, measure
from app.mas.data import TaskData, digits_arrays
from app.mas.learn import ImportanceChoice, MethodChoice, learn_task
from app.mas.networks import InputSpec, MultiHeadNet, network_state
from app.mas.training import TrainConfig, precision_for
from app.mas.validation import ValidationSet, split_validation
from benchmarks.defaults import _describe, _mean_std, service_defaults
from benchmarks.defaults import train_config as defaults_train_config
from benchmarks.defaults_pretrained import _one_thread
from benchmarks.paper.backbones import MODALITY, check_data, load_rows, prepare
from benchmarks.paper.data import LEXNAMES, MissingData, definition, load_wordnet_definitions, wordnet_dir
from benchmarks.paper.experiments import PROFILES as PAPER_PROFILES
from benchmarks.paper.sequences import DATA_SEED, TEXT_TASKS
from benchmarks.provenance import provenance, write_markdown, write_results

RESULTS = Path(__file__).parent / "results"
BACKBONES = ["efficientnet", "minilm"]
TRAINABLE = {"last2": {"last": 2}, "none": "none"}
PROJECTION_WIDTH = 1024  # the service's default
TARGETS = {"points_over_baselines_min": 3.0, "of_joint_min": 0.9, "far_auroc_min": 0.95}
PROFILES: dict[str, dict] = {
    # Sizes: the paper benchmark's default profile, with more Fashion-MNIST rows (EfficientNet's tail is
    # cheap; held-back rows set ρ, the temperatures and the threshold). MiniLM's cost bounds the run.
    "default": PAPER_PROFILES["default"] | {"seeds": 3, "image": {"n_train": 200, "n_eval": 100},
                                            "far": {"image": 500, "text": 300}, "epochs": None,
                                            "tasks": {"image": 5, "text": 8}},  # split Fashion-MNIST; 8 WordNet tasks
    "smoke": PAPER_PROFILES["smoke"] | {"seeds": 1, "image": {"n_train": 10, "n_eval": 4},
                                        "text": {"n_train": 10, "n_eval": 4}, "max_length": 16,
                                        "far": {"image": 12, "text": 12}, "epochs": 1,
                                        "tasks": {"image": 2, "text": 3}},
}


@dataclass
class Setting:
    """One backbone under one `trainable`: the tasks' rows as its trained network takes them, the rows of
    categories in no task (near, besides later tasks' own) and of another dataset (far), and the network."""

    tasks: list[TaskData]
    held_out: Tensor
    far: Tensor
    make_net: Callable[[int], MultiHeadNet]


_SETTINGS: dict[tuple[str, str], Setting] = {}  # filled before the workers fork: they inherit the features


def far_rows(modality: str, n: int) -> list:
    """Another dataset: scikit-learn's 8×8 digits upscaled to Fashion-MNIST's 28×28, or WordNet's verb
    definitions (one seeded sample of n)."""
    rng = np.random.default_rng(DATA_SEED)
    if modality == "image":
        pixels, _ = digits_arrays()
        images = torch.from_numpy(pixels[rng.permutation(len(pixels))[:n]]).reshape(-1, 1, 8, 8)
        upscaled = functional.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
        return list((upscaled[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    with (wordnet_dir() / "data.verb").open(encoding="utf-8", errors="replace") as handle:
        texts = [definition(line.split("|", 1)[1]) for line in handle if not line.startswith("  ") and "|" in line]
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


def held_out_rows(modality: str, n: int) -> list:
    """The noun categories in no WordNet task, n definitions each (Fashion-MNIST's 10 classes are all used)."""
    if modality == "image":
        return []
    used = {c for spec in TEXT_TASKS.values() for c in spec.classes}
    definitions = load_wordnet_definitions()
    rng = np.random.default_rng(DATA_SEED)
    return [definitions[c][i] for c in sorted(set(LEXNAMES.values()) - used)
            for i in rng.permutation(len(definitions[c]))[:n]]


def frozen_net(feature_dim: int) -> MultiHeadNet:
    """`trainable: "none"` on features computed once: an identity trunk, so only the heads train."""
    return MultiHeadNet(nn.Identity(), feature_dim, InputSpec((feature_dim,)))


def prepare_settings(backbone: str, profile: dict) -> dict[str, Setting]:
    modality = MODALITY[backbone]
    sizes = profile[modality]
    chosen = profile | {"max_tasks": profile["tasks"][modality], "sequences": 1}  # mixed_8's first tasks
    prepared = prepare(backbone, load_rows(modality, sizes), chosen)
    split = prepared.split
    assert split is not None

    def encode(raw: list) -> Tensor:
        return split.features(split.preprocess(raw)) if raw else torch.zeros(0, *split.tail.input_shape)

    tasks = [prepared.tasks[name] for name in prepared.sequences["mixed_8"]]
    held_out = encode(held_out_rows(modality, sizes["n_eval"]))
    far = encode(far_rows(modality, profile["far"][modality]))
    pretrained = prepared.make_net(0)

    def fixed(x: Tensor) -> Tensor:
        return features(pretrained, x)

    frozen = [TaskData(t.name, fixed(t.x_train), t.y_train, fixed(t.x_test), t.y_test) for t in tasks]
    return {"last2": Setting(tasks, held_out, far, prepared.make_net),
            "none": Setting(frozen, fixed(held_out), fixed(far), lambda seed: frozen_net(pretrained.feature_dim))}


def train_config(settings: dict, seed: int) -> TrainConfig:
    """A train job's settings on these pretrained networks (EfficientNet-Lite0, MiniLM)."""
    return defaults_train_config(settings, seed, pretrained=True, precision=precision_for(torch.device("cpu")))


def auroc(familiar: Tensor, unknown: Tensor) -> float | None:
    """P(a familiar row scores above an unknown one), ties counting half (Mann–Whitney)."""
    if not len(familiar) or not len(unknown):
        return None
    difference = familiar.double()[:, None] - unknown.double()[None, :]
    return float((difference > 0).double().mean() + 0.5 * (difference == 0).double().mean())


@dataclass
class Step:
    """What is known after learning a task: the network and, per task so far, its rows and statistics."""

    net: MultiHeadNet
    tasks: list[TaskData]
    kept: list[Tensor]  # each task's training rows (its statistics' rows)
    validation: list[ValidationSet]  # each task's held-back rows
    stale: list[ClassStatistics]  # each task's statistics, measured when it was learned
    lambdas: list[float]  # the λ each task trained with


def learn_step(step: Step, data: TaskData, *, settings: dict, config: TrainConfig, estimates: dict[str, TaskImportance],
               projection: Projection) -> Step:
    """Learn one task as a train job does (MAS with the service's λ "auto" on every held-back slice so far),
    then measure its statistics on its training rows."""
    kept, held = split_validation(len(data.y_train), settings["validation_fraction"], config.seed)
    validation = [*step.validation, ValidationSet(data.name, data.x_train[held], data.y_train[held])]
    options = {key: value for key, value in settings["importance"].items() if key != "on"}
    auto = settings["lambda"] == "auto"
    learned = learn_task(
        step.net, data.name, int(data.y_train.max()) + 1, data.x_train[kept], data.y_train[kept],
        method=MethodChoice(settings["method"], 1.0 if auto else float(settings["lambda"])),
        theta_star=network_state(step.net), omega=total_importance(estimates.values()), config=config,
        importance=ImportanceChoice(**options), lambda_grid=tuple(settings["lambda_grid"]) if auto else None,
        validation=validation,
    )
    if learned.estimate is not None:
        estimates[data.name] = learned.estimate
    statistics = measure(learned.net, data.x_train[kept], data.y_train[kept], int(data.y_train.max()) + 1, projection)
    return Step(learned.net, [*step.tasks, data], [*step.kept, kept], validation, [*step.stale, statistics],
                [*step.lambdas, learned.lam])


def remeasured(step: Step, projection: Projection) -> list[ClassStatistics]:
    """Every task's statistics at the current trunk (the last task's were just measured)."""
    return [measure(step.net, t.x_train[rows], t.y_train[rows], s.num_classes, projection)
            for t, rows, s in zip(step.tasks[:-1], step.kept[:-1], step.stale[:-1], strict=True)] + step.stale[-1:]


def _stacked(net: MultiHeadNet, names: list[str], parts: list[tuple[Tensor, Tensor]],
             offsets: list[int]) -> task_free.HeldBack:
    """Rows of several tasks with global labels, their features and every head's logits on them."""
    x = torch.cat([inputs for inputs, _ in parts])
    labels = torch.cat([y.long() + offset for (_, y), offset in zip(parts, offsets, strict=True)])
    f = features(net, x)
    return task_free.HeldBack(f, labels, head_logits(net, names, x, f))


def score_step(step: Step, setting: Setting, projection: Projection, *, stale_too: bool) -> dict:
    """After a task: every predictor on the eval rows of every class seen, the oracle, and unknown AUROCs."""
    names = [t.name for t in step.tasks]
    sizes = [s.num_classes for s in step.stale]
    offsets = task_free.Catalog(tuple(names), tuple(sizes)).offsets
    held_back = _stacked(step.net, names, [(v.inputs, v.labels) for v in step.validation], offsets)
    evaluation = _stacked(step.net, names, [(t.x_test, t.y_test) for t in step.tasks], offsets)
    later = [t.x_test for t in setting.tasks[len(step.tasks):]]
    near = features(step.net, torch.cat([*later, setting.held_out]))
    far = features(step.net, setting.far)
    bounds = np.cumsum([0] + [len(t.y_test) for t in step.tasks])
    oracle = torch.cat([logits[a:b].argmax(1) + offset for logits, a, b, offset
                        in zip(evaluation.head_logits or [], bounds[:-1], bounds[1:], offsets, strict=True)])
    out = {"task": names[-1], "classes": sum(sizes), "eval_rows": len(evaluation.labels),
           "oracle": float((oracle == evaluation.labels).double().mean())}
    variants = {"remeasured": remeasured(step, projection)} | ({"stale": step.stale} if stale_too else {})
    for variant, statistics in variants.items():
        fitted = task_free.fit(list(zip(names, statistics, strict=True)), held_back, projection=projection)
        out[variant] = scored(fitted.head, evaluation, near, far)
    return out


def scored(head: task_free.TaskFreeHead, evaluation: task_free.HeldBack, near: Tensor, far: Tensor) -> dict:
    predictors = {}
    for predictor in task_free.PREDICTORS:
        answer = task_free.answer(head, predictor, evaluation.features, evaluation.head_logits)
        predictors[predictor] = task_free.score(answer.classes, answer.probabilities, evaluation.labels,
                                                head.catalog).as_dict()
    familiar = task_free.mahalanobis_scores(head, evaluation.features)
    near_scores, far_scores = task_free.mahalanobis_scores(head, near), task_free.mahalanobis_scores(head, far)

    def called_unknown(scores: Tensor) -> float | None:
        return float((scores < head.threshold).double().mean()) if len(scores) else None

    return {"predictors": predictors, "near_auroc": auroc(familiar, near_scores),
            "far_auroc": auroc(familiar, far_scores), "rho": head.rho,
            "unknown_rate": {"eval": called_unknown(familiar), "near": called_unknown(near_scores),
                             "far": called_unknown(far_scores)}}


def learn_sequence(backbone: str, trainable: str, seed: int, settings: dict) -> dict:
    """One seed of one setting: every task learned in order, each step scored."""
    setting = _SETTINGS[backbone, trainable]
    started = time.perf_counter()
    config = train_config(settings, seed)
    step = Step(setting.make_net(seed), [], [], [], [], [])
    projection = Projection.draw(step.net.feature_dim, PROJECTION_WIDTH, seed)
    estimates: dict[str, TaskImportance] = {}
    steps = []
    for data in setting.tasks:
        step = learn_step(step, data, settings=settings, config=config, estimates=estimates, projection=projection)
        steps.append(score_step(step, setting, projection, stale_too=trainable != "none"))
    return {"seed": seed, "steps": steps, "lambdas": step.lambdas, "seconds": time.perf_counter() - started}


def train_joint(backbone: str, trainable: str, seed: int, settings: dict) -> dict:
    """The upper bound: one head over every class, trained on every task's training rows at once (the rows
    the sequence trained on), scored on every eval row."""
    setting = _SETTINGS[backbone, trainable]
    started = time.perf_counter()
    config = train_config(settings, seed)
    parts, evaluation, offset = [], [], 0
    for data in setting.tasks:
        kept, _ = split_validation(len(data.y_train), settings["validation_fraction"], seed)
        parts.append((data.x_train[kept], data.y_train[kept] + offset))
        evaluation.append((data.x_test, data.y_test + offset))
        offset += int(data.y_train.max()) + 1
    net = setting.make_net(seed)
    learned = learn_task(net, "joint", offset, torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]),
                         method=MethodChoice(settings["method"]), theta_star=network_state(net), omega={},
                         config=config, importance=None)
    x, y = torch.cat([x for x, _ in evaluation]), torch.cat([y for _, y in evaluation])
    logits = head_logits(learned.net, ["joint"], x, features(learned.net, x))[0]
    return {"seed": seed, "accuracy": float((logits.argmax(1) == y).double().mean()),
            "seconds": time.perf_counter() - started}


def run_all(settings: dict, seeds: list[int], workers: int) -> dict[tuple, dict]:
    jobs = [(kind, b, t, seed) for kind in ("sequence", "joint") for b, t in _SETTINGS for seed in seeds]
    jobs.sort(key=lambda job: (job[1] != "minilm", job[2] != "last2", job[0] != "sequence"))  # longest first
    work = {"sequence": learn_sequence, "joint": train_joint}
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {job: pool.submit(work[job[0]], *job[1:], settings) for job in jobs}
        results = {}
        for job, future in futures.items():
            results[job] = future.result()
            print(f"{'/'.join(map(str, job))}: {results[job]['seconds']:.0f} s", flush=True)
    return results


def _final(runs: list[dict], variant: str, predictor: str, key: str) -> dict[str, float]:
    return _mean_std([run["steps"][-1][variant]["predictors"][predictor][key] for run in runs])


def _defined(values: list[float | None]) -> dict[str, float] | None:
    kept = [v for v in values if v is not None]
    return _mean_std(kept) if kept else None


def summarise(runs: list[dict], joint: list[dict], stale_too: bool) -> dict:
    """Means ± std over seeds of the final step (near AUROC also over every step where it is defined), the
    predictor that wins, and whether each target holds."""
    variants = ["remeasured", "stale"] if stale_too else ["remeasured"]
    final = {variant: {p: {key: _final(runs, variant, p, key) for key in ("accuracy", "task_accuracy", "ece")}
                       for p in task_free.PREDICTORS} for variant in variants}
    last = [run["steps"][-1]["remeasured"] for run in runs]
    summary = {
        "final": final, "oracle": _mean_std([run["steps"][-1]["oracle"] for run in runs]),
        "joint": _mean_std([j["accuracy"] for j in joint]),
        "near_auroc_final": _defined([s["near_auroc"] for s in last]),
        "near_auroc_steps": _defined([s["remeasured"]["near_auroc"] for run in runs for s in run["steps"]]),
        "far_auroc_final": _defined([s["far_auroc"] for s in last]),
        "after_each_task": {p: [_mean_std([run["steps"][i]["remeasured"]["predictors"][p]["accuracy"] for run in runs])
                                ["mean"] for i in range(len(runs[0]["steps"]))] for p in task_free.PREDICTORS},
    }
    accuracy = {p: final["remeasured"][p]["accuracy"]["mean"] for p in task_free.PREDICTORS}
    default = accuracy[task_free.DEFAULT_PREDICTOR]
    baseline = max(accuracy["ncm"], accuracy["max_softmax"])
    far = summary["far_auroc_final"]
    summary["winner"] = max(accuracy, key=accuracy.__getitem__)
    summary["targets"] = {
        "points_over_baselines": {"value": 100 * (default - baseline),
                                  "holds": 100 * (default - baseline) >= TARGETS["points_over_baselines_min"]},
        "of_joint": {"value": default / summary["joint"]["mean"],
                     "holds": default >= TARGETS["of_joint_min"] * summary["joint"]["mean"]},
        "far_auroc": {"value": far and far["mean"], "holds": bool(far) and far["mean"] >= TARGETS["far_auroc_min"]},
    }
    return summary


def _pm(stat: dict[str, float] | None, digits: int = 3) -> str:
    return "–" if stat is None else f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _setting_lines(name: str, entry: dict) -> list[str]:
    s = entry["summary"]
    stale = "stale" in s["final"]
    lines = [f"### {name}", "", f"Tasks: {', '.join(entry['tasks'])}.", "",
             "| answer | final accuracy | stale statistics | task inference | ECE |", "|---|---|---|---|---|"]
    for p in task_free.PREDICTORS:
        fresh = s["final"]["remeasured"][p]
        mark = " (default)" if p == task_free.DEFAULT_PREDICTOR else ""
        lines.append(f"| {p}{mark} | {_pm(fresh['accuracy'])} | "
                     f"{_pm(s['final']['stale'][p]['accuracy']) if stale else 'exact (trunk frozen)'} | "
                     f"{_pm(fresh['task_accuracy'])} | {_pm(fresh['ece'])} |")
    lines += [f"| task oracle (true task's head) | {_pm(s['oracle'])} | | | |",
              f"| joint training (upper bound) | {_pm(s['joint'])} | | | |", "",
              f"Unknown detector (Mahalanobis), AUROC: far {_pm(s['far_auroc_final'])}; near after the last task "
              f"{_pm(s['near_auroc_final'])}, near over every step {_pm(s['near_auroc_steps'])}. Best predictor: "
              f"**{s['winner']}**. {task_free.DEFAULT_PREDICTOR} after each task: "
              + ", ".join(f"{v:.3f}" for v in s["after_each_task"][task_free.DEFAULT_PREDICTOR]) + ".", ""]
    t = s["targets"]
    far = "–" if t["far_auroc"]["value"] is None else f"{t['far_auroc']['value']:.3f}"
    lines += [f"- {task_free.DEFAULT_PREDICTOR} ≥ the better of ncm and max_softmax + 3 points: "
              f"{t['points_over_baselines']['value']:+.1f} points: {_holds(t['points_over_baselines']['holds'])}",
              f"- {task_free.DEFAULT_PREDICTOR} ≥ 0.9 × joint training: {t['of_joint']['value']:.3f}: "
              f"{_holds(t['of_joint']['holds'])}",
              f"- far AUROC ≥ 0.95: {far}: {_holds(t['far_auroc']['holds'])}", ""]
    return lines


def overview(results: dict) -> list[str]:
    """One row per setting: the final task-free accuracy of every predictor, the oracle, joint training, and the
    default predictor's task inference, ECE, stale accuracy and the unknown AUROCs (means over seeds)."""
    default = task_free.DEFAULT_PREDICTOR
    lines = ["| setting | " + " | ".join(task_free.PREDICTORS) + f" | oracle | joint | task inference | ECE | "
             f"{default} stale | near AUROC | far AUROC | best |", "|---|" + "---|" * (len(task_free.PREDICTORS) + 8)]
    for name, entry in results["settings_runs"].items():
        s = entry["summary"]
        fresh = s["final"]["remeasured"]
        stale = s["final"]["stale"][default]["accuracy"]["mean"] if "stale" in s["final"] else None
        near = s["near_auroc_final"] or s["near_auroc_steps"]
        cells = [f"{fresh[p]['accuracy']['mean']:.3f}" for p in task_free.PREDICTORS]
        cells += [f"{s['oracle']['mean']:.3f}", f"{s['joint']['mean']:.3f}",
                  f"{fresh[default]['task_accuracy']['mean']:.3f}", f"{fresh[default]['ece']['mean']:.3f}",
                  "exact" if stale is None else f"{stale:.3f}",
                  "–" if near is None else f"{near['mean']:.3f}" + ("" if s["near_auroc_final"] else " (steps)"),
                  "–" if s["far_auroc_final"] is None else f"{s['far_auroc_final']['mean']:.3f}", s["winner"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _holds(holds: bool) -> str:
    return "holds" if holds else "**does not hold**"


def markdown(results: dict) -> str:
    lines = [
        "# Answers without a task",
        "",
        f"Profile `{results['profile']}`, seeds {results['seeds'][0]}–{results['seeds'][-1]}: {results['data']}; "
        f"{results['machine']}, {results['workers']} worker processes of one thread; wall time "
        f"{results['seconds'] / 60:.1f} min. Command: `{results['command']}`.",
        "",
        f"Training: {_describe(results['settings'])}. Statistics on each task's training rows, every predictor "
        f"fitted on the held-back {results['settings']['validation_fraction']:.0%} of every task's training rows "
        f"(ρ, temperatures, threshold), RanPAC projection {PROJECTION_WIDTH} wide drawn from the run's seed. "
        "Scores on the eval rows of every class seen, after the last task, mean ± std over seeds. Final "
        "accuracy: earlier tasks' statistics re-measured at the last trunk; stale: kept from when each task was "
        "learned. Task inference and ECE with re-measured statistics. Near unknowns: classes not learned yet "
        "(and WordNet categories in no task); far: another dataset.",
        "",
    ]
    lines += [*overview(results), "", "Near AUROC marked (steps): Fashion-MNIST has no class left unlearned after the "
              "last task; the mean over the earlier steps, on the classes of the tasks still to come.", ""]
    for name, entry in results["settings_runs"].items():
        lines += _setting_lines(name, entry)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each [2]")
    parser.add_argument("--tables", action="store_true", help="only rewrite task_free.md from --out's task_free.json")
    args = parser.parse_args()
    if args.tables:
        stored = json.loads((args.out / "task_free.json").read_text())
        write_markdown(args.out, "task_free", stored, markdown(stored))
        return
    began = provenance()
    profile = PROFILES[args.profile]
    defaults = service_defaults()
    settings = defaults | {"epochs": profile["epochs"] or defaults["epochs"]}
    seeds = list(range(profile["seeds"]))
    started = time.perf_counter()
    try:
        check_data(BACKBONES)
        torch.set_num_threads(1)
        for backbone in BACKBONES:
            for trainable, setting in prepare_settings(backbone, profile).items():
                _SETTINGS[backbone, trainable] = setting
    except MissingData as error:
        print(f"benchmarks.task_free: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    runs = run_all(settings, seeds, args.workers)
    results = {
        "profile": args.profile, "settings": settings, "seeds": seeds, "workers": args.workers,
        "default_predictor": task_free.DEFAULT_PREDICTOR, "projection_width": PROJECTION_WIDTH, "targets": TARGETS,
        "data": f"{profile['image']['n_train']} train and {profile['image']['n_eval']} eval images per class at "
                f"{profile['image_size']} px, {profile['text']['n_train']} train and {profile['text']['n_eval']} eval "
                f"definitions per category at most {profile['max_length']} tokens; far: {profile['far']['image']} "
                f"digits, {profile['far']['text']} verb definitions",
        "machine": f"{platform.machine()}, torch {torch.__version__}",
        "command": " ".join(["python -m benchmarks.task_free", *sys.argv[1:]]),
        "settings_runs": {},
    }
    for backbone, trainable in _SETTINGS:
        sequence = [runs["sequence", backbone, trainable, seed] for seed in seeds]
        joint = [runs["joint", backbone, trainable, seed] for seed in seeds]
        results["settings_runs"][f"{backbone}/trainable {trainable}"] = {
            "backbone": backbone, "trainable": TRAINABLE[trainable],
            "tasks": [t.name for t in _SETTINGS[backbone, trainable].tasks],
            "summary": summarise(sequence, joint, stale_too=trainable != "none"), "runs": sequence, "joint": joint}
    results["seconds"] = time.perf_counter() - started
    write_results(args.out, "task_free", results, markdown(results), started=began)
    print(f"wrote {args.out / 'task_free.json'} and task_free.md in {results['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
