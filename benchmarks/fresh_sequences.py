"""Fresh sequences: how often the service's defaults hold on task sequences nobody tuned them on.

    python -m benchmarks.fresh_sequences                          # MLP and CNN, 20 sequences each
    python -m benchmarks.fresh_sequences --networks efficientnet --rules constrained --out /tmp/e
    python -m benchmarks.fresh_sequences --merge /tmp/a /tmp/e --out benchmarks/results   # runs made apart
    python -m benchmarks.fresh_sequences --networks mlp --count 5 --out /tmp/x
    python -m benchmarks.fresh_sequences --profile quick --out /tmp/x   # seconds: what the test suite runs

The defaults (20 epochs, lr 0.05, λ "auto" over six decades, the λ selection rule) were chosen on the
fixed sequences of benchmarks/defaults.py and benchmarks/paper; a figure measured on those says how well
they fit what they were fitted to. Here every sequence is drawn from a seed: the data source (scikit-learn's
8×8 digits or Fashion-MNIST from the Debian package), the kind (class-incremental: disjoint random class
sets, 2–4 classes a task, 2–5 tasks, in a random order, each task with its own rows; domain-incremental:
one random set of 2–10 classes, 2–4 tasks, each seeing other rows through its own transformation:
rotation, inversion, noise, a pixel permutation, a shift, a contrast curve, shuffled quadrants), how many
training rows a class has, and in class-incremental sequences one transformation for the whole sequence or
none. A drawn sequence whose class sets equal a fixed benchmark sequence's (or the start of one) with no
transformation is drawn again (`is_fixed`), so none of them is a sequence the defaults were chosen on.

Per sequence, fine-tune and MAS run as `TaskRequest` fills in a request that gives only task, train and
eval (benchmarks.defaults.service_defaults, through `learn_sequence`, i.e. `learn_task` as a train job does);
MAS runs once with each λ selection rule (`constrained`, the default, and `mean`, the rule before issue 27;
`--rules` picks) so that the rules are compared on the same sequences. EfficientNet-Lite0 (ImageNet weights,
64 px, its last 2 blocks trained, as in the paper benchmark) takes the same images as RGB, its frozen blocks
computed once per sequence (benchmarks/paper/tails.py); the MLP and CNN learn from scratch. all-MiniLM-L6-v2
(max_length 32, last 2 layers trained, as in the paper benchmark) learns class-incremental sequences of
WordNet noun categories (Debian's wordnet-base: definition → category; 2–5 tasks of 2–4 of its 24 large
categories, 16, 32 or 64 train and 30 eval definitions a category), none of them the paper's. Reported per
network and rule: the distribution over sequences of MAS's forgetting over fine-tune's and of MAS − FT
accuracy on each new task just after learning it (mean over the tasks from the second, in points): median,
10th and 90th percentile, and how many
sequences meet each target of benchmarks.defaults (forgetting at most a third of fine-tune's, or one eval
row per earlier task where that is more; new task at least −3 points). The issue's bar: both targets on at
least 90 % of the sequences, and the 10th percentile of MAS − FT new-task accuracy at least −3 points.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from app.mas.data import TaskData, digits_arrays
from app.mas.networks import MultiHeadNet, build_network
from app.mas.sequence import SequenceResult, run_sequence
from app.mas.training import TrainConfig
from app.mas.validation import Selection
from benchmarks.defaults import TARGETS, forgetting_allowed, forgetting_resolution, service_defaults, train_config
from benchmarks.provenance import merge_runs, provenance, write_results

if TYPE_CHECKING:
    from benchmarks.paper.tails import SplitNetwork

RESULTS = Path(__file__).parent / "results"
SOURCES = ("digits", "fashion")
KINDS = ("class", "domain")
TRANSFORMS = ("rotate", "invert", "noise", "permute", "shift", "contrast", "quadrants")
NETWORKS = {
    "mlp": {"kind": "mlp", "hidden": [256, 256]},  # the continual benchmark's MLP
    "cnn": {"kind": "cnn", "channels": [16, 32], "hidden": [128]},  # the service's default CNN
    "efficientnet": {"kind": "image-backbone", "image_size": 64, "trainable": {"last": 2}},  # the paper's
    "minilm": {"kind": "text-encoder", "max_length": 32, "trainable": {"last": 2}},  # the paper's
}
PRETRAINED = ("efficientnet", "minilm")  # trained as a tail on its frozen blocks' cached output
_NETWORK_SALT = {"mlp": 1, "cnn": 2, "efficientnet": 3, "minilm": 4}  # each network gets sequences of its own
# WordNet's noun categories (lexicographer files) with hundreds of definitions or more: motive (42) and
# tops (51) have too few for the largest draw (64 train and 30 eval definitions a category).
TEXT_CATEGORIES = ("act", "animal", "artifact", "attribute", "body", "cognition", "communication", "event",
                   "feeling", "food", "group", "location", "object", "person", "phenomenon", "plant",
                   "possession", "process", "quantity", "relation", "shape", "state", "substance", "time")
TEXT_EVAL_PER_CLASS = 30  # as the paper benchmark's default profile
RULES = ("constrained", "mean")
EFFNET_QUICK_SEED = 1  # a digits draw for EfficientNet (tests/benchmarks/test_fresh_sequences.py checks it)
BAR = {"share_of_sequences": 0.9, "p10_new_task_points_min": TARGETS["new_task_points_min"]}
PROFILES = {
    "full": {"count": 20, "epochs": None, "max_tasks": None, "max_rows": None, "grid": None, "seeds": None},
    # Two digits sequences per network (seeds whose draw is digits: no Fashion-MNIST to read), one epoch.
    "quick": {"count": 2, "epochs": 1, "max_tasks": 2, "max_rows": 40, "grid": [0.01, 10.0],
              "seeds": {"mlp": [4, 9], "cnn": [7, 8], "efficientnet": [EFFNET_QUICK_SEED], "minilm": [0]}},
}


@dataclass(frozen=True)
class TaskSpec:
    classes: tuple[int, ...]  # the source's labels, in the task's label order
    transform: str  # "none" or one of TRANSFORMS
    parameter: float  # the transform's: an angle, a noise level, a seed, a shift, a gamma


@dataclass(frozen=True)
class SequenceSpec:
    seed: int
    network: str
    source: str
    kind: str
    train_per_class: int
    tasks: tuple[TaskSpec, ...]

    def signature(self) -> tuple:
        return self.source, tuple((tuple(sorted(t.classes)), t.transform) for t in self.tasks)

    def describe(self) -> str:
        def name(c: int) -> str:
            return TEXT_CATEGORIES[c] if self.source == "wordnet" else str(c)

        tasks = " → ".join("/".join(map(name, t.classes)) + ("" if t.transform == "none" else f" {t.transform}")
                           for t in self.tasks)
        return f"{self.source} {self.kind}: {tasks}"


def _fixed_class_sequences() -> dict[str, list[tuple[tuple[int, ...], ...]]]:
    """The class sets of every fixed sequence the defaults were chosen on, per source, untransformed."""
    from benchmarks.paper.data import FASHION_CLASSES
    from benchmarks.paper.sequences import IMAGE_TASKS, TEXT_TASKS, sequences_of

    digits = [tuple((2 * i, 2 * i + 1) for i in range(5)), tuple((tuple(range(10)),) * 8)]
    index = {name: i for i, name in enumerate(FASHION_CLASSES)}
    fashion = [tuple((2 * i, 2 * i + 1) for i in range(5))]
    for names in sequences_of(IMAGE_TASKS).values():
        fashion.append(tuple(tuple(sorted(index[c] for c in IMAGE_TASKS[n].classes)) for n in names))
    wordnet = [tuple(tuple(sorted(TEXT_CATEGORIES.index(c) for c in TEXT_TASKS[n].classes)) for n in names)
               for names in sequences_of(TEXT_TASKS).values()]
    return {"digits": digits, "fashion": fashion, "wordnet": wordnet}


def is_fixed(spec: SequenceSpec) -> bool:
    """Whether the sequence is (the start of) a fixed benchmark sequence: the same class sets in the same
    order on the same source, with no transformation but a pixel permutation (permuted digits')."""
    if any(t.transform not in ("none", "permute") for t in spec.tasks):
        return False
    sets = tuple(tuple(sorted(t.classes)) for t in spec.tasks)
    return any(sets == fixed[: len(sets)] for fixed in _fixed_class_sequences()[spec.source])


def draw_sequence(seed: int, network: str) -> SequenceSpec:
    """The fresh sequence of `seed` for `network`: every choice from one generator; drawn again while it
    is a fixed benchmark sequence."""
    rng = np.random.default_rng([seed, _NETWORK_SALT[network]])
    while True:
        spec = _draw(rng, seed, network)
        if not is_fixed(spec):
            return spec


def _draw(rng: np.random.Generator, seed: int, network: str) -> SequenceSpec:
    if network == "minilm":
        return _draw_text(rng, seed, network)
    source, kind = SOURCES[rng.integers(2)], KINDS[rng.integers(2)]
    train_per_class = int(rng.choice([40, 100, 250])) if source == "fashion" else 0  # digits: all it has
    if kind == "class":
        sizes = [int(s) for s in rng.integers(2, 5, size=int(rng.integers(2, 6)))]
        while sum(sizes) > 10:
            sizes.pop()
        order = [int(c) for c in rng.permutation(10)]
        whole = _transform(rng) if rng.random() < 0.5 else ("none", 0.0)
        tasks, start = [], 0
        for size in sizes:
            tasks.append(TaskSpec(tuple(order[start:start + size]), *whole))
            start += size
    else:
        classes = tuple(int(c) for c in rng.permutation(10)[: int(rng.integers(2, 11))])
        names = rng.permutation(TRANSFORMS)[: int(rng.integers(2, 5))]
        tasks = [TaskSpec(classes, *_transform(rng, str(name))) for name in names]
        if rng.random() < 0.5:
            tasks[0] = TaskSpec(classes, "none", 0.0)
    return SequenceSpec(seed, network, source, kind, train_per_class, tuple(tasks))


def _draw_text(rng: np.random.Generator, seed: int, network: str) -> SequenceSpec:
    """A class-incremental sequence of WordNet categories (definitions have no transformations): 2–5 tasks
    of 2–4 categories each, in a random order, 16, 32 or 64 train definitions a category."""
    sizes = [int(s) for s in rng.integers(2, 5, size=int(rng.integers(2, 6)))]
    order = [int(c) for c in rng.permutation(len(TEXT_CATEGORIES))]
    train_per_class = int(rng.choice([16, 32, 64]))
    tasks, start = [], 0
    for size in sizes:
        tasks.append(TaskSpec(tuple(order[start:start + size]), "none", 0.0))
        start += size
    return SequenceSpec(seed, network, "wordnet", "class", train_per_class, tuple(tasks))


def _transform(rng: np.random.Generator, name: str | None = None) -> tuple[str, float]:
    name = name or str(TRANSFORMS[rng.integers(len(TRANSFORMS))])
    parameter = {"rotate": lambda: float(rng.choice([-1, 1]) * rng.uniform(20, 90)),
                 "invert": lambda: 0.0, "noise": lambda: float(rng.uniform(0.1, 0.3)),
                 "permute": lambda: float(rng.integers(1 << 30)), "shift": lambda: float(rng.integers(1, 4)),
                 "contrast": lambda: float(rng.choice([0.4, 2.5])), "quadrants": lambda: float(rng.integers(1, 24))}
    return name, parameter[name]()


def apply_transform(images: np.ndarray, transform: str, parameter: float) -> np.ndarray:
    """images [n, h, w] in [0, 1], transformed alike (the noise seeded by the row count and level)."""
    if transform == "none":
        return images
    if transform == "rotate":
        from scipy.ndimage import rotate

        return np.clip(rotate(images, parameter, axes=(1, 2), reshape=False, order=1), 0, 1).astype(np.float32)
    if transform == "invert":
        return 1.0 - images
    if transform == "noise":
        noise = np.random.default_rng(len(images)).normal(0, parameter, images.shape)
        return np.clip(images + noise, 0, 1).astype(np.float32)
    n, h, w = images.shape
    if transform == "permute":
        order = np.random.default_rng(int(parameter)).permutation(h * w)
        return images.reshape(n, -1)[:, order].reshape(n, h, w)
    if transform == "shift":
        step = int(parameter) * (1 if h <= 8 else 2)
        return np.roll(images, (step, -step), axis=(1, 2))
    if transform == "contrast":
        return images ** parameter
    if transform == "quadrants":
        import itertools

        order = list(itertools.permutations(range(4)))[int(parameter)]
        quads = [images[:, : h // 2, : w // 2], images[:, : h // 2, w // 2 :], images[:, h // 2 :, : w // 2],
                 images[:, h // 2 :, w // 2 :]]
        q = [quads[i] for i in order]
        return np.concatenate([np.concatenate(q[:2], axis=2), np.concatenate(q[2:], axis=2)], axis=1)
    raise ValueError(f"unknown transform {transform!r}")


@cache
def _source(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(train images, labels, test images, labels) in [0, 1]; digits has no fixed test side (None)."""
    if name == "digits":
        x, y = digits_arrays()
        return x.reshape(-1, 8, 8), y, None, None
    from benchmarks.paper.data import load_fashion_mnist

    images = load_fashion_mnist()
    return (images.x_train.astype(np.float32) / 255, images.y_train,
            images.x_test.astype(np.float32) / 255, images.y_test)


@cache
def _definitions() -> dict[str, list[str]]:
    from benchmarks.paper.data import load_wordnet_definitions

    return load_wordnet_definitions()


def text_sequence_tasks(spec: SequenceSpec, *, max_rows: int | None = None) -> list[TaskData]:
    """The tasks of a WordNet sequence as its network takes them: per category `train_per_class` train and
    TEXT_EVAL_PER_CLASS eval definitions, from one seeded permutation of the category (no row in two tasks:
    a class-incremental sequence's categories are disjoint)."""
    definitions = _definitions()
    rng = np.random.default_rng([spec.seed, 77])
    tasks = []
    for index, task in enumerate(spec.tasks):
        train: list[tuple[str, int]] = []
        held: list[tuple[str, int]] = []
        for label, c in enumerate(task.classes):
            texts = definitions[TEXT_CATEGORIES[c]]
            rows = rng.permutation(len(texts))[: spec.train_per_class + TEXT_EVAL_PER_CLASS]
            train += [(texts[i], label) for i in rows[: spec.train_per_class]]
            held += [(texts[i], label) for i in rows[spec.train_per_class:]]

        def part(chosen: list[tuple[str, int]]) -> tuple[torch.Tensor, torch.Tensor]:
            order = np.random.default_rng([spec.seed, len(chosen)]).permutation(len(chosen))[:max_rows]
            picked = [chosen[i] for i in order]
            return (network_inputs(spec.network, [text for text, _ in picked]),
                    torch.tensor([label for _, label in picked], dtype=torch.int64))

        tasks.append(TaskData(f"t{index}", *part(train), *part(held)))
    return tasks


def sequence_tasks(spec: SequenceSpec, *, max_rows: int | None = None) -> list[TaskData]:
    """The tasks of `spec` as the network takes them: [n, h·w] for an MLP, [n, 1, h, w] for a CNN. No row
    is in two tasks; labels are the task's own class indices."""
    if spec.source == "wordnet":
        return text_sequence_tasks(spec, max_rows=max_rows)
    x, y, x_test, y_test = _source(spec.source)
    rng = np.random.default_rng([spec.seed, 77])
    pools = {c: list(rng.permutation(np.flatnonzero(y == c))) for c in range(10)}
    test_pools = None if x_test is None else {c: list(rng.permutation(np.flatnonzero(y_test == c))) for c in range(10)}
    share = {c: sum(c in t.classes for t in spec.tasks) for c in range(10)}
    tasks = []
    for index, task in enumerate(spec.tasks):
        rows, test_rows = [], []
        for label, c in enumerate(task.classes):
            if test_pools is None:  # digits: this task's share of the class, 30 % of it for eval
                take = len(y[y == c]) // share[c]
                mine, pools[c] = pools[c][:take], pools[c][take:]
                cut = int(round(0.3 * len(mine)))
                rows.append((mine[cut:], label))
                test_rows.append((mine[:cut], label))
            else:
                mine, pools[c] = pools[c][: spec.train_per_class], pools[c][spec.train_per_class:]
                held, test_pools[c] = test_pools[c][:100], test_pools[c][100:]
                rows.append((mine, label))
                test_rows.append((held, label))
        tasks.append(_task_data(f"t{index}", spec, task, x, rows, x if x_test is None else x_test, test_rows,
                                max_rows))
    return tasks


def _task_data(name: str, spec: SequenceSpec, task: TaskSpec, x: np.ndarray, rows: list, x_test: np.ndarray,
               test_rows: list, max_rows: int | None) -> TaskData:
    def part(images: np.ndarray, chosen: list) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in chosen])
        labels = np.concatenate([np.full(len(r), k, dtype=np.int64) for r, k in chosen])
        order = np.random.default_rng([spec.seed, len(index)]).permutation(len(index))[:max_rows]
        data = apply_transform(images[index[order]], task.transform, task.parameter).astype(np.float32)
        return network_inputs(spec.network, data), torch.from_numpy(labels[order])

    return TaskData(name, *part(x, rows), *part(x_test, test_rows))


def network_inputs(network: str, images: np.ndarray | list[str]) -> torch.Tensor:
    """images [n, h, w] in [0, 1] (or texts) as `network` takes them: [n, h·w] (MLP), [n, 1, h, w] (CNN), or the
    output of a pretrained network's frozen blocks on the images as 8-bit RGB, or on the texts (preprocessed
    as the service does)."""
    if network in PRETRAINED:
        split = _split(network)
        if isinstance(images, list):
            return split.features(split.preprocess(images))
        pixels = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
        return split.features(split.preprocess(list(pixels)))
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{network} takes images, not texts")
    shaped = images.reshape(len(images), -1) if network == "mlp" else images[:, None]
    return torch.from_numpy(np.ascontiguousarray(shaped))


@cache
def _split(network: str) -> SplitNetwork:
    from benchmarks.paper.tails import split_network

    return split_network(NETWORKS[network])


def architecture_of(network: str, tasks: list[TaskData]) -> dict:
    return {**NETWORKS[network], "input_shape": list(tasks[0].x_train.shape[1:])}


def run_method(tasks: list[TaskData], network: str, method: str, settings: dict, seed: int,
               selection: Selection) -> SequenceResult:
    """One sequence as a train job runs it with the service's defaults (benchmarks.defaults.run_method's
    settings), with `selection` choosing λ; fine-tune holds back the same rows (it has no λ to search)."""
    net, config, options = starting_point(tasks, network, settings, seed)
    return run_sequence(tasks, method=method, lam=settings["lambda"], config=config, seed=seed,
                        importance_options=options, validation_fraction=settings["validation_fraction"],
                        lambda_grid=tuple(settings["lambda_grid"]), selection=selection, net=net)


def starting_point(tasks: list[TaskData], network: str, settings: dict,
                   seed: int) -> tuple[MultiHeadNet, TrainConfig, dict[str, str]]:
    """The network a sequence starts from, the training settings and the importance options, as a train job
    with `settings` has them."""
    config = train_config(settings, seed, pretrained=network in PRETRAINED)
    options = {key: value for key, value in settings["importance"].items() if key != "on"}
    net = _split(network).fresh_tail() if network in PRETRAINED else build_network(architecture_of(network, tasks),
                                                                                    seed)
    return net, config, options


def _run_record(result: SequenceResult) -> dict:
    new_task = [row[task] for task, row in zip(result.tasks, result.matrix, strict=True)][1:]
    return {"matrix": result.matrix, **result.summary, "new_task_accuracy": statistics.fmean(new_task),
            "lambdas": result.lambdas, "seconds": result.seconds,
            "bases": [c.basis for c in result.choices if c is not None],
            "admissible": [list(c.admissible) for c in result.choices if c is not None]}


def judge(finetune: dict, mas: dict, eval_rows: list[int]) -> dict:
    """One sequence against the targets: the forgetting ratio (None where fine-tune forgot nothing), the
    new-task difference in points, and whether each target holds (forgetting with benchmarks.defaults'
    resolution rule: at most a third of fine-tune's, or one eval row per earlier task where that is more)."""
    resolution = forgetting_resolution(eval_rows)
    ft, ours = finetune["forgetting"], mas["forgetting"]
    points = 100 * (mas["new_task_accuracy"] - finetune["new_task_accuracy"])
    forgetting_holds = ours <= forgetting_allowed(ft, resolution) + 1e-12
    new_task_holds = points >= TARGETS["new_task_points_min"] - 1e-9
    return {"forgetting_ratio": ours / ft if ft > 0 else None, "new_task_points": points,
            "forgetting_resolution": resolution, "forgetting_holds": forgetting_holds,
            "new_task_holds": new_task_holds, "both_hold": forgetting_holds and new_task_holds}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (no interpolation: a value some sequence really had)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(np.ceil(q / 100 * len(ordered))) - 1))]


def distribution(judged: list[dict]) -> dict:
    """Median, 10th and 90th percentile of the ratio (fine-tune forgetting nothing: left out, counted) and the
    points, and how many sequences meet each target, against the issue's bar."""
    ratios = [j["forgetting_ratio"] for j in judged if j["forgetting_ratio"] is not None]
    points = [j["new_task_points"] for j in judged]
    n = len(judged)
    counts = {key: sum(j[key] for j in judged) for key in ("forgetting_holds", "new_task_holds", "both_hold")}
    p10 = percentile(points, 10)
    return {
        "sequences": n,
        "forgetting_ratio": {"median": statistics.median(ratios), "p10": percentile(ratios, 10),
                             "p90": percentile(ratios, 90), "finetune_forgot_nothing": n - len(ratios)}
        if ratios else None,
        "new_task_points": {"median": statistics.median(points), "p10": p10, "p90": percentile(points, 90)},
        **counts,
        "bar_both_share": counts["both_hold"] >= BAR["share_of_sequences"] * n,
        "bar_p10_new_task": p10 >= BAR["p10_new_task_points_min"],
    }


def benchmark_network(network: str, seeds: list[int], settings: dict, profile: dict,
                      save: Callable[[dict], None] = lambda partial: None, rules: tuple[str, ...] = RULES) -> dict:
    """Every seed's sequence on `network`; `save` gets the results so far after each sequence (a long run
    that is stopped keeps what it finished)."""
    sequences: list[dict] = []
    for seed in seeds:
        spec = draw_sequence(seed, network)
        tasks = sequence_tasks(spec, max_rows=profile["max_rows"])[: profile["max_tasks"]]
        eval_rows = [len(t.y_test) for t in tasks]
        runs = {"finetune": _run_record(run_method(tasks, network, "finetune", settings, seed, Selection()))}
        for rule in rules:
            runs[rule] = _run_record(run_method(tasks, network, settings["method"], settings, seed, Selection(rule)))
        judged = {rule: judge(runs["finetune"], runs[rule], eval_rows) for rule in rules}
        sequences.append({"seed": seed, "spec": asdict(spec), "describe": spec.describe(), "eval_rows": eval_rows,
                          "train_rows": [len(t.y_train) for t in tasks], "runs": runs, "judged": judged})
        save(_network_results(network, sequences, rules))
        first = rules[0]
        others = " ".join(f"({rule} rule {judged[rule]['new_task_points']:+.1f})" for rule in rules[1:])
        print(f"{network} seed {seed:3d} {spec.describe()[:70]:70s} FT forg {runs['finetune']['forgetting']:.3f} "
              f"MAS {runs[first]['forgetting']:.3f} new {judged[first]['new_task_points']:+.1f} pts ({first}) "
              f"{others} λ {runs[first]['lambdas'][1:]}", flush=True)
    return _network_results(network, sequences, rules)


def _network_results(network: str, sequences: list[dict], rules: tuple[str, ...] = RULES) -> dict:
    return {"architecture": NETWORKS[network], "sequences": sequences,
            "rules": {rule: distribution([s["judged"][rule] for s in sequences]) for rule in rules}}


def effective_settings(profile: dict, head_warmup: int | str | None = None) -> dict:
    defaults = service_defaults()
    overrides = {key: value for key, value in (("epochs", profile["epochs"]), ("lambda_grid", profile["grid"]),
                                               ("head_warmup", head_warmup)) if value is not None}
    return defaults | overrides | {"overrides": overrides}


def _cell(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    done = [n for n in results["networks"] if n in results["by_network"]]  # a run in progress: those begun
    not_run = [n for n in (*results["not_run"], *results["networks"]) if n not in done]
    counts = ", ".join(f"{n}: {len(results['by_network'][n]['sequences'])} sequences" for n in done)
    lines = [
        "# Fresh sequences: the defaults on sequences nobody tuned on",
        "",
        f"Profile `{results['profile']}`; networks run: {', '.join(done) or 'none'}"
        f" ({counts})"
        f"; not run: {', '.join(not_run) or 'none'}. Settings: the service's defaults as a request with "
        f"only task, train and eval gets them{_overrides(results['settings'])}. Each sequence is drawn from its "
        "seed by benchmarks/fresh_sequences.py (source, class-incremental or domain-incremental, class sets, order, "
        "rows per class, transformations), none of them a fixed benchmark sequence. MAS runs once per λ selection "
        "rule on the same sequences; `constrained` is the service's default.",
        "",
        "Per sequence: MAS/FT = MAS's forgetting over fine-tune's; MAS − FT = accuracy on each new task just "
        "after learning it, mean over the tasks from the second, in points. A sequence meets the forgetting target "
        "when MAS forgets at most a third of what fine-tune forgets (or one eval row per earlier task where that "
        "is more), the new-task target at −3 points or better. The bar: both on at least 90 % of the sequences, "
        "and a 10th percentile of MAS − FT at −3 or better.",
        "",
        "| network | rule | sequences | MAS/FT median | MAS/FT p90 | MAS − FT median | MAS − FT p10 | "
        "forgetting target | new-task target | both | both on ≥ 90 % | p10 ≥ −3 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for network in done:
        for rule, d in results["by_network"][network]["rules"].items():
            ratio = d["forgetting_ratio"] or {}
            n = d["sequences"]
            lines.append(
                f"| {network} | {rule} | {n} | {_cell(ratio.get('median'))} | {_cell(ratio.get('p90'))} | "
                f"{d['new_task_points']['median']:+.2f} | {d['new_task_points']['p10']:+.2f} | "
                f"{d['forgetting_holds']}/{n} | {d['new_task_holds']}/{n} | {d['both_hold']}/{n} | "
                f"{'yes' if d['bar_both_share'] else '**no**'} | {'yes' if d['bar_p10_new_task'] else '**no**'} |")
    for network in done:
        lines += ["", f"## {network}: every sequence", "",
                  "| seed | sequence | train rows | FT forgetting | MAS forgetting (constrained / mean) | "
                  "MAS − FT points (constrained / mean) | λ chosen (constrained) | basis |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in results["by_network"][network]["sequences"]:
            runs, judged = s["runs"], s["judged"]
            bases = sorted(set(runs["constrained"]["bases"]))
            mean_rule = judged.get("mean")  # a run of the constrained rule alone (`--rules constrained`) has none
            lines.append(
                f"| {s['seed']} | {s['describe']} | {'/'.join(map(str, s['train_rows']))} | "
                f"{runs['finetune']['forgetting']:.3f} | {runs['constrained']['forgetting']:.3f} / "
                f"{'–' if mean_rule is None else format(runs['mean']['forgetting'], '.3f')} | "
                f"{judged['constrained']['new_task_points']:+.1f} / "
                f"{'–' if mean_rule is None else format(mean_rule['new_task_points'], '+.1f')} | "
                f"{', '.join(f'{lam:g}' for lam in runs['constrained']['lambdas'][1:])} | {', '.join(bases)} |")
    return "\n".join(lines) + "\n"


def _overrides(settings: dict) -> str:
    overrides = settings.get("overrides") or {}
    return "" if not overrides else " except " + ", ".join(f"{k} {v}" for k, v in overrides.items())


def _warmup(value: str) -> int | str:
    return value if value == "auto" else int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--networks", default="mlp,cnn", help="comma-separated, of " + ", ".join(NETWORKS))
    parser.add_argument("--rules", default=",".join(RULES),
                        help="λ selection rules MAS runs with, comma-separated, the first of them constrained")
    parser.add_argument("--count", type=int, help="sequences per network (default: the profile's)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--head-warmup", type=_warmup, help="'auto' or passes: instead of the service's default")
    parser.add_argument("--merge", type=Path, nargs="+",
                        help="combine these runs' fresh_sequences.json (one network each, run apart) into --out")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    started = provenance(None if argv is None else ["benchmarks/fresh_sequences.py", *argv])
    torch.set_num_threads(1)  # as benchmarks.defaults: small networks, a shared machine
    profile = PROFILES[args.profile]
    networks = [n for n in args.networks.split(",") if n]
    rules = tuple(r for r in args.rules.split(",") if r)
    if unknown := [n for n in networks if n not in NETWORKS] + [r for r in rules if r not in RULES]:
        parser.error(f"unknown network or rule: {', '.join(unknown)}")
    if not rules or rules[0] != "constrained":
        parser.error("--rules must start with constrained, the service's default")
    count = args.count or profile["count"]
    seeds = list(range(args.first_seed, args.first_seed + count))
    settings = effective_settings(profile, args.head_warmup)
    results = {"profile": args.profile, "settings": settings, "targets": TARGETS, "bar": BAR, "networks": networks,
               "not_run": [n for n in ("mlp", "cnn", "efficientnet", "minilm") if n not in networks],
               "by_network": {}}
    for network in networks:
        clock = time.perf_counter()

        def save(partial: dict, network: str = network, clock: float = clock) -> None:
            results["by_network"][network] = partial | {"seconds": time.perf_counter() - clock}
            write_results(args.out, "fresh_sequences", results, markdown(results), started=started)

        save(benchmark_network(network, profile["seeds"].get(network, seeds) if profile["seeds"] else seeds,
                               settings, profile, save, rules))
    print(f"wrote {args.out / 'fresh_sequences.json'} and {args.out / 'fresh_sequences.md'}")


def _joined(first: dict | None, other: dict, network: str) -> dict:
    """One network's results from two runs (other seeds of the same network: their sequences together, the
    distributions over all of them, under the rules both ran)."""
    if first is None:
        return other
    seeds = [s["seed"] for s in first["sequences"]]
    if any(s["seed"] in seeds for s in other["sequences"]):
        raise SystemExit(f"two runs measured the same {network} seeds")
    rules = tuple(rule for rule in first["rules"] if rule in other["rules"])
    sequences = sorted(first["sequences"] + other["sequences"], key=lambda s: s["seed"])
    return _network_results(network, sequences, rules) | {"seconds": first["seconds"] + other["seconds"]}


def merge(paths: list[Path], out: Path) -> None:
    """One results file from runs of one network each (run side by side): the first run's provenance, the
    others' under `parts`."""
    def join(results: dict, other: dict) -> None:
        for network, entry in other["by_network"].items():
            results["by_network"][network] = _joined(results["by_network"].get(network), entry, network)
        results["networks"] = [n for n in NETWORKS if n in results["by_network"]] + \
            [n for n in results["by_network"] if n not in NETWORKS]
        results["not_run"] = [n for n in ("mlp", "cnn", "efficientnet", "minilm") if n not in results["networks"]]

    merge_runs(paths, out, "fresh_sequences", join, markdown)


if __name__ == "__main__":
    main()
