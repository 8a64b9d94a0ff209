"""Drift reports measured on real data, and the negative flips the promotion guard reads (MAS.md §8).

    python -m benchmarks.drift                                  # rewrites benchmarks/results/drift.*
    python -m benchmarks.drift --profile smoke --out /tmp/x     # seconds: what CI runs
    python -m benchmarks.drift --parts flips                    # re-run one part, keep the other's results

Drift, through the service's own code: one task per backbone of the paper benchmark's data (benchmarks/paper),
its features those of the pretrained trunk with `trainable` "none" (EfficientNet-Lite0 at the paper
benchmark's image size on Fashion-MNIST's trouser/t-shirt, all-MiniLM-L6-v2 as the service tokenises on
WordNet's animal/plant definitions). The task's reference is what a train job keeps: `measure` with a
reservoir of 512 of its training rows (app.mas.drift.reservoir_rows), stored as the service stores it
(app.task_free.stored), and every batch is tested by `app.drift.service.test_batch` at the service's
default level, with the model's seed. Null batches are drawn from held-out rows of the same classes (never
the reference's); shifted batches from the held-out images rotated or blurred, or from WordNet definitions
of another part of speech or the held-out definitions with typos. Per batch size, the false alarm rate with
its Clopper–Pearson interval and the detection rate. A second null study redraws the reference for every
batch: the permutation test's guarantee is over both samples, and a service keeps one reservoir, so the two
together say how much one fixed reference moves the rate. The same batches are tested by an independent
quadratic-time MMD written here in numpy (its own distances, median, kernel sums and permutations), for the
p-values' agreement.

Flips: the paper benchmark's mixed_8 sequence per backbone (its default profile's data and training), with
fine-tune, LwF, EWC, SI and MAS at the λ the paper benchmark chose on validation data (paper.json); after
each task, every earlier task's negative flip rate against the version before (app.mas.evaluation.flip_rates).
Runs are jobs over processes of one torch thread each, as in benchmarks/paper.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import beta
from threadpoolctl import threadpool_limits
from torch import Tensor
from torch.nn import functional

from app.architectures import build_network, get_architecture
from app.drift.service import test_batch
from app.mas.accumulation import TaskImportance, total_importance
from app.mas.class_statistics import ClassStatistics, features, measure
from app.mas.drift import DEFAULT_ALPHA, DEFAULT_PERMUTATIONS, mmd_test, reservoir_rows
from app.mas.evaluation import continual_metrics, flip_rates, fraction_correct, predict
from app.mas.head_warmup import warmup_epochs
from app.mas.learn import ImportanceChoice, MethodChoice, learn_task
from app.mas.methods import METHODS
from app.mas.networks import network_state
from app.mas.training import TrainConfig, precision_for
from app.store import LocalBlobStore
from app.task_free.measure import DEFAULT_REFERENCE_ROWS
from app.task_free.stored import load_statistics, save_statistics
from benchmarks.defaults_pretrained import _one_thread
from benchmarks.paper.backbones import MODALITY, Prepared, check_data, load_rows, prepare
from benchmarks.paper.data import (
    FASHION_CLASSES,
    MissingData,
    definition,
    load_fashion_mnist,
    load_wordnet_definitions,
    wordnet_dir,
)
from benchmarks.paper.experiments import PROFILES as PAPER_PROFILES
from benchmarks.paper.sequences import DATA_SEED, IMAGE_TASKS, TEXT_TASKS
from benchmarks.provenance import provenance, write_markdown, write_results

RESULTS = Path(__file__).parent / "results"
PAPER_RESULTS = RESULTS / "paper.json"
MODEL_SEED = 0  # the model's seed: its reservoir and every test's permutations (as the drift job passes it)
BACKBONES = ["efficientnet", "minilm"]
FLIP_METHODS = ["finetune", "lwf", "ewc", "si", "mas"]
ROTATION_DEGREES, BLUR_SIGMA, TYPO_RATE = 30.0, 1.5, 0.05  # blur σ in Fashion-MNIST's 28 px; typos per character
SHIFTS = {
    "efficientnet": {"rotated": f"held-out images rotated {ROTATION_DEGREES:g}°",
                     "blurred": f"held-out images blurred (Gaussian, σ {BLUR_SIGMA:g} px of 28)"},
    "minilm": {"verbs": "WordNet verb definitions", "adjectives": "WordNet adjective definitions",
               "typos": f"held-out definitions with typos ({TYPO_RATE:.0%} of characters dropped or swapped)"},
}
TARGETS = {"false_alarm_max": DEFAULT_ALPHA, "detection_min": 0.95, "detection_size": 200}
GUARD_THRESHOLDS = [0.02, 0.05, 0.1, 0.2]
PROFILES: dict[str, dict] = {
    # Rows per class: 1500 training rows (the reservoir's), 2000 held out (nulls), 2000 shifted rows in all.
    # Permutations: the service's 2000, but 500 for batches of 1000 (whose test costs 5× a batch of 200);
    # the p-value's resolution, 1/501, still allows the 1 % level.
    "default": {"image_size": 64, "max_length": 32, "n_train": 1500, "n_held": 2000, "n_shifted": 2000,
                "reference_rows": DEFAULT_REFERENCE_ROWS, "sizes": [50, 200, 1000], "null_batches": 200,
                "shift_batches": 100, "permutations": {50: DEFAULT_PERMUTATIONS, 200: DEFAULT_PERMUTATIONS, 1000: 500},
                "agreement_batches": 40, "agreement_permutations": DEFAULT_PERMUTATIONS,
                "flips": {"backbones": ["cnn", "efficientnet", "minilm"], "seeds": 3, "paper": "default"}},
    "smoke": {"image_size": 64, "max_length": 16, "n_train": 40, "n_held": 40, "n_shifted": 40,
              "reference_rows": 32, "sizes": [10, 20], "null_batches": 10, "shift_batches": 5,
              "permutations": {10: 200, 20: 200}, "agreement_batches": 4, "agreement_permutations": 200,
              # mixed_8's first 3 tasks: two steps with earlier tasks to flip, the code path of all 8
              "flips": {"backbones": ["cnn", "efficientnet", "minilm"], "seeds": 1, "paper": "smoke", "tasks": 3}},
}
PARTS = ["drift", "flips"]


# --- the rows: a task's training rows, held-out rows of its classes, shifted rows --------------------------


@dataclass(frozen=True)
class DriftRows:
    task: str
    train: list | np.ndarray
    y_train: np.ndarray
    held_out: list | np.ndarray
    shifted: dict[str, list | np.ndarray]


def _split_classes(pools: list[np.ndarray], n_train: int, n_held: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class's first n_train rows (of one seeded permutation) for training, the next n_held held out;
    both in a seeded random order. Returns (train rows, their labels, held-out rows)."""
    train, labels, held = [], [], []
    for k, pool in enumerate(pools):
        if len(pool) < n_train + n_held:
            raise ValueError(f"class {k} has {len(pool)} rows, {n_train + n_held} asked")
        order = rng.permutation(pool)
        train.append(order[:n_train])
        labels.append(np.full(n_train, k))
        held.append(order[n_train : n_train + n_held])
    a, b = rng.permutation(len(train) * n_train), rng.permutation(len(held) * n_held)
    return np.concatenate(train)[a], np.concatenate(labels)[a].astype(np.int64), np.concatenate(held)[b]


def image_rows(profile: dict) -> DriftRows:
    """Fashion-MNIST's first paper task (trouser, t-shirt), from its training side; shifted: the first
    n_shifted held-out images rotated and blurred."""
    spec = next(iter(IMAGE_TASKS.values()))
    images = load_fashion_mnist()
    rng = np.random.default_rng(DATA_SEED)
    pools = [np.flatnonzero(images.y_train == FASHION_CLASSES.index(c)) for c in spec.classes]
    train, labels, held = _split_classes(pools, profile["n_train"], profile["n_held"], rng)
    source = torch.from_numpy(images.x_train[held[: profile["n_shifted"]]]).float().unsqueeze(1)
    shifted = {"rotated": _as_images(rotated(source, ROTATION_DEGREES)),
               "blurred": _as_images(blurred(source, BLUR_SIGMA))}
    return DriftRows(spec.name, images.x_train[train], labels, images.x_train[held], shifted)


def rotated(images: Tensor, degrees: float) -> Tensor:
    """[n, 1, h, w] rotated about the centre (bilinear; the corners brought in are black, as the background)."""
    angle = math.radians(degrees)
    matrix = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]])
    grid = functional.affine_grid(matrix.expand(len(images), 2, 3), list(images.shape), align_corners=False)
    return functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def blurred(images: Tensor, sigma: float) -> Tensor:
    """[n, 1, h, w] convolved with a Gaussian of σ pixels (3σ each side, separable, zero padding)."""
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x.square() / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = functional.conv2d(images, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return functional.conv2d(out, kernel.view(1, 1, -1, 1), padding=(radius, 0))


def _as_images(images: Tensor) -> np.ndarray:
    return images[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def text_rows(profile: dict) -> DriftRows:
    """WordNet's first paper task (animal, plant definitions); shifted: verb and adjective definitions, and
    the first n_shifted held-out definitions with typos."""
    spec = next(iter(TEXT_TASKS.values()))
    definitions = load_wordnet_definitions()
    rng = np.random.default_rng(DATA_SEED)
    offsets = np.cumsum([0] + [len(definitions[c]) for c in spec.classes])
    pools = [np.arange(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    texts = [text for c in spec.classes for text in definitions[c]]
    train, labels, held = _split_classes(pools, profile["n_train"], profile["n_held"], rng)
    held_out = [texts[i] for i in held]
    n = profile["n_shifted"]
    shifted = {"verbs": other_part_of_speech("verb", n, rng), "adjectives": other_part_of_speech("adj", n, rng),
               "typos": [with_typos(text, TYPO_RATE, rng) for text in held_out[:n]]}
    return DriftRows(spec.name, [texts[i] for i in train], labels, held_out, shifted)


def other_part_of_speech(part: str, n: int, rng: np.random.Generator) -> list[str]:
    """n definitions (a seeded sample) from WordNet's data.verb or data.adj, cut as the nouns' are."""
    with (wordnet_dir() / f"data.{part}").open(encoding="utf-8", errors="replace") as handle:
        texts = [definition(line.split("|", 1)[1]) for line in handle if not line.startswith("  ") and "|" in line]
    texts = [t for t in texts if t]
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


def with_typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """Each character, with probability `rate`, dropped or swapped with the next (a coin decides which)."""
    chars, out, i = list(text), [], 0
    while i < len(chars):
        if rng.random() < rate:
            if rng.random() < 0.5 or i + 1 == len(chars):
                i += 1
                continue
            out += [chars[i + 1], chars[i]]
            i += 2
            continue
        out.append(chars[i])
        i += 1
    return "".join(out)


# --- features, as a model with `trainable` "none" computes them ---------------------------------------


@dataclass
class Encoded:
    """One backbone's task: its statistics as a train job keeps them (with the reference), the features of
    every training row (for redrawn references), and the features each batch is drawn from."""

    task: str
    statistics: ClassStatistics
    train: Tensor
    pools: dict[str, Tensor]  # "null" (held-out rows) and each shift
    seconds: float


def architecture(backbone: str, profile: dict) -> dict:
    if MODALITY[backbone] == "image":
        return {"kind": "image-backbone", "image_size": profile["image_size"], "trainable": "none"}
    return {"kind": "text-encoder", "max_length": profile["max_length"], "trainable": "none"}


def encode(backbone: str, profile: dict) -> Encoded:
    """The task's rows through the pretrained trunk, and its statistics measured as a train job does."""
    started = time.perf_counter()
    rows = image_rows(profile) if MODALITY[backbone] == "image" else text_rows(profile)
    net = build_network(architecture(backbone, profile), seed=MODEL_SEED)
    kind = get_architecture(net.architecture["kind"])

    def inputs(raw: list | np.ndarray) -> Tensor:
        return kind.preprocess(net.architecture, list(raw))

    x_train, y_train = inputs(rows.train), torch.from_numpy(rows.y_train)
    reservoir = reservoir_rows(len(y_train), profile["reference_rows"], MODEL_SEED)
    measured = measure(net, x_train, y_train, int(y_train.max()) + 1, None, reservoir)
    train = features(net, x_train)
    assert measured.reference is not None
    torch.testing.assert_close(measured.reference, train[reservoir], rtol=1e-4, atol=1e-5)
    pools = {"null": features(net, inputs(rows.held_out))}
    pools |= {name: features(net, inputs(raw)) for name, raw in rows.shifted.items()}
    return Encoded(rows.task, measured, train, pools, time.perf_counter() - started)


# --- the tests: the service's, and an independent one -------------------------------------------------


@dataclass
class Stored:
    """What the workers test against: the blob store holding each backbone's statistics, and its entry."""

    store: LocalBlobStore
    entries: dict[str, list[dict]]


_ENCODED: dict[str, Encoded] = {}  # filled before the workers fork: they inherit the features
_STORED: list[Stored] = []
_PREPARED: dict[str, Prepared] = {}


def batch_rows(pool_size: int, size: int, count: int, key: list[int]) -> list[np.ndarray]:
    """`count` batches of `size` distinct rows of a pool, the same for every test that names the same key."""
    rng = np.random.default_rng([DATA_SEED, *key])
    return [rng.choice(pool_size, size, replace=False) for _ in range(count)]


def _key(backbone: str, sample: str, size: int) -> list[int]:
    names = ["null", *SHIFTS[backbone]]
    return [BACKBONES.index(backbone), names.index(sample), size]


def service_tests(backbone: str, sample: str, size: int, count: int, permutations: int, redrawn: bool) -> dict:
    """`count` batches of `size` rows of one sample, each tested as a drift job tests it: against the stored
    reference by `test_batch`, or (`redrawn`) by `mmd_test` against a fresh reservoir of the training rows."""
    encoded, stored = _ENCODED[backbone], _STORED[0]
    pool, k = encoded.pools[sample], len(encoded.statistics.reference)
    started, p_values, alarms = time.perf_counter(), [], 0
    for i, rows in enumerate(batch_rows(len(pool), size, count, _key(backbone, sample, size))):
        batch = pool[torch.from_numpy(rows)]
        if redrawn:
            reference = encoded.train[reservoir_rows(len(encoded.train), k, seed=1 + i)]
            p = mmd_test(reference, batch, permutations=permutations, seed=MODEL_SEED).p_value
            alarm = p <= DEFAULT_ALPHA
        else:
            report = test_batch(store=stored.store, entries=stored.entries[backbone], batch=batch, alpha=DEFAULT_ALPHA,
                                permutations=permutations, seed=MODEL_SEED)
            p, alarm = report["tasks"][encoded.task]["p_value"], report["drift"]
        p_values.append(p)
        alarms += int(alarm)
    return {"batches": count, "alarms": alarms, "permutations": permutations, "p_values": p_values,
            "seconds": time.perf_counter() - started}


def numpy_mmd_test(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> tuple[float, float, float]:
    """(MMD²_u, p-value, σ), written apart from app.mas.drift: squared distances from the Gram matrix, numpy's
    median, the kernel's diagonal zeroed and each permuted split scored from one product a·K with the row
    sums (Σ_XY = a·K1 − a·K·a, Σ_YY = 1·K·1 − 2Σ_XY − Σ_XX), permutations from numpy's generator."""
    z = np.concatenate([x, y]).astype(np.float64)
    squared = (z * z).sum(1)
    d2 = np.maximum(squared[:, None] + squared[None, :] - 2.0 * z @ z.T, 0.0)
    upper = np.sqrt(d2[np.triu_indices(len(z), 1)])
    sigma = float(np.median(upper)) or 1.0
    kernel = np.exp(-d2 / (2.0 * sigma * sigma))
    np.fill_diagonal(kernel, 0.0)
    row_sums, m, n = kernel.sum(1), len(x), len(y)
    total = row_sums.sum()

    def statistic(first: np.ndarray) -> np.ndarray:
        within_x = np.einsum("cn,cn->c", first @ kernel, first)
        between = first @ row_sums - within_x
        within_y = total - 2.0 * between - within_x
        return within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * between / (m * n)

    observed_split = np.zeros((1, m + n))
    observed_split[0, :m] = 1.0
    observed = float(statistic(observed_split)[0])
    rng, reached, done = np.random.default_rng(seed), 0, 0
    while done < permutations:
        chunk = min(128, permutations - done)
        chosen = np.argsort(rng.random((chunk, m + n)), axis=1)[:, :m]
        first = np.zeros((chunk, m + n))
        np.put_along_axis(first, chosen, 1.0, axis=1)
        reached += int((statistic(first) >= observed).sum())
        done += chunk
    return observed, (1 + reached) / (1 + permutations), sigma


def agreement_tests(backbone: str, sample: str, size: int, count: int, permutations: int) -> list[dict]:
    """The first `count` batches of a study, tested by the service's `mmd_test` (with the stored reference,
    as `test_batch` passes it) and by `numpy_mmd_test`, both with `permutations`."""
    encoded, stored = _ENCODED[backbone], _STORED[0]
    blob = stored.entries[backbone][0]["blob"]
    reference = load_statistics(stored.store, blob).reference.float()
    pool, out = encoded.pools[sample], []
    for i, rows in enumerate(batch_rows(len(pool), size, count, _key(backbone, sample, size))):
        batch = pool[torch.from_numpy(rows)].float()
        service = mmd_test(reference, batch, permutations=permutations, seed=MODEL_SEED)
        statistic, p, sigma = numpy_mmd_test(reference.numpy(), batch.numpy(), permutations, seed=1 + i)
        out.append({"sample": sample, "size": size, "p_service": service.p_value, "p_numpy": p,
                    "statistic_service": service.statistic, "statistic_numpy": statistic,
                    "bandwidth_service": service.bandwidth, "bandwidth_numpy": sigma})
    return out


# --- flips on the paper benchmark's sequences ---------------------------------------------------------


def paper_lambdas() -> dict[str, dict[str, float]]:
    """The λ the paper benchmark chose per backbone and method on validation data (its paper.json)."""
    if not PAPER_RESULTS.is_file():
        raise MissingData(f"{PAPER_RESULTS} is missing: run python -m benchmarks.paper first (its λ are used)")
    chosen = json.loads(PAPER_RESULTS.read_text())["backbones"]
    return {backbone: {m: float(entry["lambda"][m]) for m in FLIP_METHODS} for backbone, entry in chosen.items()}


def learn_with_flips(backbone: str, method: str, lam: float, seed: int, train: dict) -> dict:
    """mixed_8 learned as benchmarks.paper.runner.run_tasks learns it at a fixed λ, keeping each version's
    predictions on every eval set: after each task, each earlier task's flips against the version before."""
    prepared, started = _PREPARED[backbone], time.perf_counter()
    tasks = [prepared.tasks[name] for name in prepared.sequences["mixed_8"]]
    config = TrainConfig(**train, momentum=0.9, seed=seed, precision=precision_for(torch.device("cpu")),
                         head_warmup=warmup_epochs("auto", pretrained=backbone != "cnn"))
    choice = ImportanceChoice() if METHODS[method].anchored else None
    net, estimates = prepared.make_net(seed), dict[str, TaskImportance]()
    before: dict[str, Tensor] = {}
    matrix, steps = [], []
    for index, data in enumerate(tasks):
        learned = learn_task(net, data.name, int(data.y_train.max()) + 1, data.x_train, data.y_train,
                             method=MethodChoice(method, lam), theta_star=network_state(net),
                             omega=total_importance(estimates.values()), config=config, importance=choice,
                             importance_data=[(data.x_train, data.y_train)])
        net = learned.net
        if learned.estimate is not None:
            estimates[data.name] = learned.estimate
        now = {t.name: predict(net, t.name, t.x_test)[0] for t in tasks[: index + 1]}
        matrix.append({t.name: fraction_correct(now[t.name], t.y_test) for t in tasks[: index + 1]})
        flips = {t.name: flip_rates(before[t.name], now[t.name], t.y_test) for t in tasks[:index]}
        steps.append({"task": data.name, "negative": {t: f.negative for t, f in flips.items()},
                      "positive": {t: f.positive for t, f in flips.items()}})
        before = now
    return {"seed": seed, "lambda": lam, "matrix": matrix, "steps": steps,
            "summary": continual_metrics(matrix, [t.name for t in tasks]), "seconds": time.perf_counter() - started}


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def summarise_flips(runs: list[dict]) -> dict:
    """Over seeds: the mean negative (and positive) flip rate over every step and earlier task; per step the
    worst earlier task (what the guard compares with its limit); the share of steps a guard would block."""
    per_run = []
    for run in runs:
        later = [s for s in run["steps"] if s["negative"]]
        worst = [max(s["negative"].values()) for s in later]
        per_run.append({"negative": statistics.fmean(v for s in later for v in s["negative"].values()),
                        "positive": statistics.fmean(v for s in later for v in s["positive"].values()),
                        "worst": worst, "per_step": [statistics.fmean(s["negative"].values()) for s in later]})
    worst = [w for r in per_run for w in r["worst"]]
    steps = len(per_run[0]["per_step"])
    return {"negative": _mean_std([r["negative"] for r in per_run]),
            "positive": _mean_std([r["positive"] for r in per_run]),
            "worst_per_step": _mean_std(worst), "worst": max(worst),
            "per_step": [statistics.fmean(r["per_step"][i] for r in per_run) for i in range(steps)],
            "blocked": {str(t): sum(w > t for w in worst) / len(worst) for t in GUARD_THRESHOLDS},
            "average_accuracy": _mean_std([r["summary"]["average_accuracy"] for r in runs]),
            "forgetting": _mean_std([r["summary"]["forgetting"] for r in runs])}


# --- the schedule ---------------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    lower = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    upper = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return lower, upper


def drift_jobs(profile: dict) -> list[tuple]:
    """(function, arguments, where its result goes), the longest first."""
    jobs = []
    for backbone in BACKBONES:
        for size in profile["sizes"]:
            p = profile["permutations"][size]
            jobs.append((service_tests, (backbone, "null", size, profile["null_batches"], p, False),
                         ("null", backbone, size)))
            jobs.append((service_tests, (backbone, "null", size, profile["null_batches"], p, True),
                         ("null_redrawn", backbone, size)))
            jobs += [(service_tests, (backbone, shift, size, profile["shift_batches"], p, False),
                      (shift, backbone, size)) for shift in SHIFTS[backbone]]
            samples = ["null", *SHIFTS[backbone]] if size == profile["sizes"][0] else ["null"]
            jobs += [(agreement_tests, (backbone, sample, size, profile["agreement_batches"],
                                        profile["agreement_permutations"]), ("agreement", backbone, size, sample))
                     for sample in samples]
    return jobs


def flip_jobs(profile: dict, lambdas: dict[str, dict[str, float]]) -> list[tuple]:
    paper = PAPER_PROFILES[profile["flips"]["paper"]]
    return [(learn_with_flips, (b, m, lambdas[b][m], seed, paper["train"][b]), ("flips", b, m, seed))
            for b in profile["flips"]["backbones"] for m in FLIP_METHODS for seed in range(profile["flips"]["seeds"])]


def _single_threaded() -> None:
    """One torch thread and one BLAS thread per worker (numpy's products would start a second one)."""
    _one_thread()
    threadpool_limits(1)


def run_jobs(jobs: list[tuple], workers: int) -> dict[tuple, object]:
    context = multiprocessing.get_context("fork")  # the workers inherit the features and prepared tasks
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
        futures = {where: pool.submit(function, *arguments) for function, arguments, where in jobs}
        results = {}
        for where, future in futures.items():
            results[where] = future.result()
            print(f"{'/'.join(map(str, where))} done", flush=True)
    return results


FLIP_SECONDS = {"cnn": 4, "efficientnet": 9, "minilm": 35}  # a mixed_8 run's CPU seconds (paper.md's time table)


def estimated_seconds(job: tuple) -> float:
    """For the order of the queue, longest first: a test's cost grows as (reference + batch)² × permutations."""
    function, arguments, where = job
    if function is learn_with_flips:
        return FLIP_SECONDS.get(arguments[0], 10)
    _, _, size, count, permutations = arguments[:5]
    pooled = DEFAULT_REFERENCE_ROWS + size
    return 0.4e-9 * pooled**2 * permutations * count * (2 if function is agreement_tests else 1)


def encode_all(profile: dict, workers: int, store: LocalBlobStore) -> None:
    """Every backbone's features (one process each), its statistics saved as a train job saves them."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
        futures = {backbone: pool.submit(encode, backbone, profile) for backbone in BACKBONES}
        _ENCODED.update({backbone: future.result() for backbone, future in futures.items()})
    entries = {b: [{"task": e.task, "blob": save_statistics(store, e.statistics), "at_trunk": True}]
               for b, e in _ENCODED.items()}
    _STORED[:] = [Stored(store, entries)]


def prepare_flips(profile: dict) -> None:
    paper = PAPER_PROFILES[profile["flips"]["paper"]] | {"sequences": 1, "max_tasks": profile["flips"].get("tasks")}
    for backbone in profile["flips"]["backbones"]:
        _PREPARED[backbone] = prepare(backbone, load_rows(MODALITY[backbone], paper[MODALITY[backbone]]), paper)


def summarise_study(study: dict, *, null: bool, target: bool) -> dict:
    k, n = study["alarms"], study["batches"]
    lower, upper = clopper_pearson(k, n)
    out = {key: study[key] for key in ("batches", "alarms", "permutations", "seconds")}
    out |= {"rate": k / n, "interval": [lower, upper], "p_values": study["p_values"]}
    if null:
        out["holds"] = lower <= TARGETS["false_alarm_max"]
    elif target:
        out["holds"] = k / n >= TARGETS["detection_min"]
    return out


def summarise_agreement(pairs: list[dict], permutations: int) -> dict:
    """Correlation and differences of the two implementations' p-values on the same batches, beside what
    Monte Carlo noise alone gives: two independent estimates of one p differ by √(2p(1−p)/P)·√(2/π) on average."""
    a, b = np.array([x["p_service"] for x in pairs]), np.array([x["p_numpy"] for x in pairs])
    mean = (a + b) / 2
    statistic = np.array([abs(x["statistic_service"] - x["statistic_numpy"]) / max(abs(x["statistic_service"]), 1e-12)
                          for x in pairs])
    sigma = np.array([abs(x["bandwidth_service"] - x["bandwidth_numpy"]) / x["bandwidth_service"] for x in pairs])
    spread = np.ptp(a) > 0 and np.ptp(b) > 0  # all at 1/(1 + P): no correlation to speak of (std would round)
    return {"pairs": len(pairs), "permutations": permutations,
            "correlation": float(np.corrcoef(a, b)[0, 1]) if spread else None,
            "mean_abs_difference": float(np.abs(a - b).mean()), "max_abs_difference": float(np.abs(a - b).max()),
            "monte_carlo_mean_abs_difference": float((np.sqrt(2 * mean * (1 - mean) / permutations)
                                                      * math.sqrt(2 / math.pi)).mean()),
            "same_decision": float(((a <= DEFAULT_ALPHA) == (b <= DEFAULT_ALPHA)).mean()),
            "max_statistic_relative_difference": float(statistic.max()),
            "max_bandwidth_relative_difference": float(sigma.max()), "batches": pairs}


def drift_results(profile: dict, done: dict[tuple, object]) -> dict:
    out = {}
    for backbone, encoded in _ENCODED.items():
        studies: dict[str, dict] = {}
        for sample in ["null", "null_redrawn", *SHIFTS[backbone]]:
            studies[sample] = {str(size): summarise_study(done[sample, backbone, size], null=sample.startswith("null"),
                                                          target=size == TARGETS["detection_size"])
                               for size in profile["sizes"]}
        pairs = [pair for key, value in done.items() if key[0] == "agreement" and key[1] == backbone for pair in value]
        by_kind = {"null": [x for x in pairs if x["sample"] == "null"],
                   "shifted": [x for x in pairs if x["sample"] != "null"]}
        out[backbone] = {"task": encoded.task, "architecture": architecture(backbone, profile),
                         "reference_rows": len(encoded.statistics.reference), "training_rows": len(encoded.train),
                         "pool_rows": {name: len(pool) for name, pool in encoded.pools.items()},
                         "feature_dim": encoded.train.shape[1], "feature_seconds": encoded.seconds,
                         "shifts": SHIFTS[backbone], "studies": studies,
                         "agreement": {kind: summarise_agreement(chosen, profile["agreement_permutations"])
                                       for kind, chosen in by_kind.items() if chosen}}
    return out


def flips_results(profile: dict, done: dict[tuple, object], lambdas: dict[str, dict[str, float]]) -> dict:
    paper = PAPER_PROFILES[profile["flips"]["paper"]]
    out: dict = {"sequence": "mixed_8", "seeds": profile["flips"]["seeds"], "paper_profile": profile["flips"]["paper"],
                 "data": {m: paper[m] for m in ("image", "text")}, "image_size": paper["image_size"],
                 "max_length": paper["max_length"], "guard_thresholds": GUARD_THRESHOLDS, "backbones": {}}
    for backbone in profile["flips"]["backbones"]:
        entry = {"tasks": _PREPARED[backbone].sequences["mixed_8"], "train": paper["train"][backbone], "methods": {}}
        for method in FLIP_METHODS:
            runs = [done["flips", backbone, method, seed] for seed in range(profile["flips"]["seeds"])]
            entry["methods"][method] = {"lambda": lambdas[backbone][method], "summary": summarise_flips(runs),
                                        "runs": runs}
        out["backbones"][backbone] = entry
    return out


# --- the report -----------------------------------------------------------------------------------------


def _rate(study: dict) -> str:
    lower, upper = study["interval"]
    return f"{study['rate']:.3f} [{lower:.3f}, {upper:.3f}]"


def _holds(holds: bool) -> str:
    return "holds" if holds else "**does not hold**"


def drift_lines(drift: dict) -> list[str]:
    lines = []
    for backbone, entry in drift.items():
        shifts, studies, rows = list(entry["shifts"]), entry["studies"], entry["pool_rows"]
        described = "; ".join(f"{name}: {text} ({rows[name]} rows)" for name, text in entry["shifts"].items())
        lines += [f"### {backbone}: task {entry['task']}", "",
                  f"Reference: {entry['reference_rows']} of {entry['training_rows']} training rows; null pool "
                  f"{rows['null']} held-out rows; shifted: {described}. Features {entry['feature_dim']} wide, "
                  f"computed in {entry['feature_seconds']:.0f} s.", "",
                  "| batch | permutations | false alarms, fixed reference (as served) | false alarms, reference "
                  "redrawn | " + " | ".join(f"{s} detected" for s in shifts) + " |",
                  "|---|---|---|---|" + "---|" * len(shifts)]
        for size, null in studies["null"].items():
            cells = [size, str(null["permutations"]),
                     f"{null['alarms']}/{null['batches']} = {_rate(null)}", _rate(studies["null_redrawn"][size])]
            cells += [_rate(studies[s][size]) for s in shifts]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for size, null in studies["null"].items():
            lines.append(f"- batch {size}: false alarm rate ≤ {TARGETS['false_alarm_max']:.0%} within its interval "
                         f"(fixed reference): {_holds(null['holds'])}; redrawn: "
                         f"{_holds(studies['null_redrawn'][size]['holds'])}")
        size = str(TARGETS["detection_size"])
        for shift in shifts:
            if size in studies[shift]:
                lines.append(f"- {shift} detected in ≥ {TARGETS['detection_min']:.0%} of batches of {size}: "
                             f"{studies[shift][size]['rate']:.3f}: {_holds(studies[shift][size]['holds'])}")
        lines.append("")
    return lines


def agreement_lines(drift: dict) -> list[str]:
    lines = ["| backbone | which batches | pairs | permutations | correlation of p | mean abs Δp | Monte Carlo alone | "
             "max abs Δp | same verdict at 1 % | max rel. Δ MMD² | max rel. Δ σ |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (backbone, kind), a in [((b, k), a) for b, e in drift.items() for k, a in e["agreement"].items()]:
        correlation = "–" if a["correlation"] is None else f"{a['correlation']:.4f}"
        lines.append(f"| {backbone} | {kind} | {a['pairs']} | {a['permutations']} | {correlation} | "
                     f"{a['mean_abs_difference']:.4f} | {a['monte_carlo_mean_abs_difference']:.4f} | "
                     f"{a['max_abs_difference']:.4f} | {a['same_decision']:.3f} | "
                     f"{a['max_statistic_relative_difference']:.1e} | {a['max_bandwidth_relative_difference']:.1e} |")
    return lines


def flips_lines(flips: dict) -> list[str]:
    thresholds = "/".join(f"{t:g}" for t in flips["guard_thresholds"])
    lines = ["| backbone | method | λ | negative flip rate | worst earlier task per step | worst | "
             f"steps a guard blocks at {thresholds} | positive flip rate | average accuracy | forgetting |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for backbone, entry in flips["backbones"].items():
        for method, result in entry["methods"].items():
            s = result["summary"]
            blocked = " / ".join(f"{v:.2f}" for v in s["blocked"].values())
            lines.append(f"| {backbone} | {method} | {result['lambda']:g} | {_pm(s['negative'])} | "
                         f"{_pm(s['worst_per_step'])} | {s['worst']:.3f} | {blocked} | {_pm(s['positive'])} | "
                         f"{_pm(s['average_accuracy'])} | {_pm(s['forgetting'])} |")
    return lines


def _pm(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def markdown(results: dict) -> str:
    lines = ["# Drift reports and negative flips", "",
             f"Profile `{results['profile']}`; {results['machine']}, {results['workers']} worker processes of one "
             f"thread; wall time {results['seconds'] / 60:.1f} min"
             + ("" if len(results["part_seconds"]) < 2 else " (" + ", ".join(
                 f"{part} {seconds / 60:.1f}" for part, seconds in results["part_seconds"].items()) + ")")
             + ". Command: " + "; ".join(f"`{c}`" for c in results["commands"].values()) + ".", ""]
    if "drift" in results:
        lines += ["## Drift: false alarms and detection", "",
                  f"Every batch tested by `app.drift.service.test_batch` against the task's stored reference at "
                  f"level {DEFAULT_ALPHA} (one task: no correction), permutations seeded with the model's seed; rates "
                  "with their 95 % Clopper–Pearson interval. Null batches: held-out rows of the task's classes. "
                  "Redrawn: each null batch against its own reservoir of the training rows (`mmd_test`), the "
                  "sampling the permutation test's guarantee is over. The batches of a study are drawn "
                  "independently from one pool (two batches of b rows from a pool of n share b²/n rows on average), "
                  "so they are not independent and an interval is somewhat narrower than it should be.", "",
                  *drift_lines(results["drift"]),
                  "## Agreement with an independent implementation", "",
                  "The same batches (the first of each null study, and of each shift at the smallest batch) tested by "
                  "the service's `mmd_test` and by `numpy_mmd_test` (benchmarks/drift.py), each with its own "
                  "permutations: p-values differ by Monte Carlo noise, whose expected size is given beside.", "",
                  *agreement_lines(results["drift"]), ""]
    if "flips" in results:
        flips = results["flips"]
        tasks = len(next(iter(flips["backbones"].values()))["tasks"])
        lines += ["## Negative flips on the paper benchmark's sequences", "",
                  f"mixed_8 ({tasks} tasks) per backbone, the paper benchmark's `{flips['paper_profile']}` data and "
                  "training, "
                  f"{flips['seeds']} seeds, λ as the paper benchmark chose it. After each task from the second, each "
                  "earlier task's negative flip rate against the version before, on its eval set. Rates: mean over "
                  "every step and earlier task; per step the worst earlier task (what `max_negative_flip_rate` "
                  "compares); the share of steps whose worst task exceeds each limit (the versions the guard would "
                  "keep from production). Mean ± std over seeds.", "", *flips_lines(flips), ""]
    return "\n".join(lines) + "\n"


# --- the command ----------------------------------------------------------------------------------------


def rewrite_tables(out: Path) -> None:
    """drift.md again from drift.json, with the agreement's summaries recomputed from its stored pairs."""
    results = json.loads((out / "drift.json").read_text())
    for entry in results.get("drift", {}).values():
        entry["agreement"] = {kind: summarise_agreement(a["batches"], a["permutations"])
                              for kind, a in entry["agreement"].items()}
    (out / "drift.json").write_text(json.dumps(results, indent=1))
    write_markdown(out, "drift", results, markdown(results))


def kept_results(path: Path, profile: str, parts: list[str]) -> dict:
    """The other parts of an earlier run of the same profile, when only some parts run now."""
    if set(parts) == set(PARTS) or not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    if earlier.get("profile") != profile:
        raise SystemExit(f"{path} holds another profile's results: run every part, or use another --out")
    return {part: earlier[part] for part in PARTS if part not in parts and part in earlier} | {
        "part_seconds": earlier.get("part_seconds", {}), "commands": earlier.get("commands", {}),
        "provenance": earlier.get("provenance")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2, help="processes, one torch thread each [2]")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS,
                        help="what to run; the others' results are kept from --out's drift.json")
    parser.add_argument("--tables", action="store_true",
                        help="only rewrite drift.md (and the agreement's summaries) from --out's drift.json")
    args = parser.parse_args()
    if args.tables:
        rewrite_tables(args.out)
        return
    began = provenance()
    profile, started = PROFILES[args.profile], time.perf_counter()
    results = kept_results(args.out / "drift.json", args.profile, args.parts)
    earlier = {"provenance": results.pop("provenance")} if results else None
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="drift-store-") as root:
        try:
            check_data(BACKBONES + (profile["flips"]["backbones"] if "flips" in args.parts else []))
            lambdas = paper_lambdas() if "flips" in args.parts else {}
            if "drift" in args.parts:
                encode_all(profile, args.workers, LocalBlobStore(Path(root)))
            if "flips" in args.parts:
                prepare_flips(profile)
        except MissingData as error:
            print(f"benchmarks.drift: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        jobs = (drift_jobs(profile) if "drift" in args.parts else []) + \
               (flip_jobs(profile, lambdas) if "flips" in args.parts else [])
        done = run_jobs(sorted(jobs, key=lambda job: -estimated_seconds(job)), args.workers)
    part_seconds = results.get("part_seconds", {})
    if "drift" in args.parts:
        results["drift"] = drift_results(profile, done)
    if "flips" in args.parts:
        results["flips"] = flips_results(profile, done, lambdas)
    seconds = time.perf_counter() - started
    part_seconds |= {"+".join(args.parts): seconds}
    command = " ".join(["python -m benchmarks.drift", *sys.argv[1:]])
    commands = results.get("commands", {}) | {"+".join(args.parts): command}
    results |= {"profile": args.profile, "alpha": DEFAULT_ALPHA, "targets": TARGETS, "workers": args.workers,
                "settings": {key: value for key, value in profile.items() if key != "permutations"}
                | {"permutations": {str(k): v for k, v in profile["permutations"].items()}},
                "independent": INDEPENDENT, "machine": f"{platform.machine()}, torch {torch.__version__}",
                "command": "; ".join(commands.values()), "commands": commands, "part_seconds": part_seconds,
                "seconds": sum(part_seconds.values())}
    write_results(args.out, "drift", results, markdown(results), started=began, earlier=earlier)
    print(f"wrote {args.out / 'drift.json'} and drift.md in {seconds / 60:.1f} min")


INDEPENDENT = ("numpy_mmd_test in benchmarks/drift.py. alibi-detect (0.13.0, the newest on the index) was "
               "considered: it requires numpy<2 and numba<0.60 (this environment has numpy 2), so it cannot be "
               "installed beside the service's packages.")


if __name__ == "__main__":
    main()
