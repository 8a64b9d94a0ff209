"""Train-job wall time with and without the frozen-prefix cache (issue 24, item 3), on CPU.

    python -m benchmarks.job_speed            # rewrites benchmarks/results/job_speed.{json,md}
    python -m benchmarks.job_speed --quick --out /tmp/x    # tiny stand-ins, what the test suite runs

Two tasks of the README walk-through (scripts/make_examples.py: sentences living → things, images
warm → cool) are learned in-process through `learn_task` with a train job's defaults (TaskRequest:
MAS, λ "auto" over the service's grid on a held-back 10 %, its epochs, batch size and lr, exact Ω on
the training rows), on all-MiniLM-L6-v2 (max_length 128) and on EfficientNet-Lite0 at 224 px, both
with the last 2 blocks trainable, as the train job runs them: once with the trunk's split and the
default cache budget, once without. The second task is the one with the λ search (the first has
nothing to protect). Per run: seconds per task, the ratio cached / uncached, and how far the cached
run's θ, losses and Ω are from the uncached one's (the same run up to fp32 rounding).
`--quick` swaps the networks for tiny random ones (a 3-layer 32-wide BERT, EfficientNet-Lite0 at 32 px
with random weights) and trains 1 epoch over 2 λ.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch

from app.architectures.image import ImageBackbone
from app.architectures.registry import build_network, frozen_names, trunk_split
from app.architectures.text import TextEncoder, TextEncoderTrunk, _hide_broken_torchvision
from app.mas.accumulation import TaskImportance, total_importance
from app.mas.head_warmup import warmup_epochs
from app.mas.learn import ImportanceChoice, LearnedTask, MethodChoice, learn_task
from app.mas.networks import MultiHeadNet, network_state
from app.mas.training import TrainConfig
from app.mas.validation import ValidationSet, split_validation
from app.settings import Settings
from benchmarks.defaults import service_defaults
from benchmarks.provenance import write_results

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent
TEXT_SPEC = {"kind": "text-encoder", "max_length": 128, "trainable": {"last": 2}}
IMAGE_SPEC = {"kind": "image-backbone", "image_size": 224, "trainable": {"last": 2}}
TASKS = {"text": [("living", ["animal", "vehicle"]), ("things", ["fruit", "tool"])],
         "image": [("warm", ["red", "yellow"]), ("cool", ["blue", "green"])]}


def _examples() -> Any:
    spec = importlib.util.spec_from_file_location("make_examples", ROOT / "scripts" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def task_rows(kind: str, spec: dict, classes: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A walk-through task's training rows as the job reads them: tokenised texts, or decoded images."""
    examples = _examples()
    if kind == "text":
        records = examples.text_records(classes, examples.TRAIN_FRAMES)
        inputs = TextEncoder().preprocess(spec, [r["text"] for r in records])
        return inputs, torch.tensor([classes.index(r["label"]) for r in records])
    raw = [examples.png(examples.COLOURS[name], seed * 1000 + i) for name in classes for i in range(12)]
    labels = torch.tensor([index for index in range(len(classes)) for _ in range(12)])
    return ImageBackbone().preprocess(spec, raw), labels


def tiny_network(kind: str) -> tuple[MultiHeadNet, dict]:
    """The quick profile's stand-ins: random weights, the real trunk classes and tokenizer."""
    if kind == "image":
        spec = {**IMAGE_SPEC, "image_size": 32}
        net = MultiHeadNet(*ImageBackbone().build_trunk(spec, pretrained=False, seed=0))
    else:
        _hide_broken_torchvision()
        from transformers import BertConfig, BertModel

        spec = {**TEXT_SPEC, "path": None, "normalize": True, "max_length": 32}
        config = BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=64)
        torch.manual_seed(0)
        trunk = TextEncoderTrunk(BertModel(config, add_pooling_layer=False), pad_id=0, normalize=True)
        from app.mas.networks import InputSpec

        net = MultiHeadNet(trunk, 32, InputSpec((32,), torch.int64))
    net.architecture = spec
    net.freeze(frozen_names(spec, net))
    return net.eval(), spec


def run_sequence(net: MultiHeadNet, kind: str, spec: dict, defaults: dict, *, cached: bool,
                 epochs: int, grid: list[float]) -> dict[str, Any]:
    """Both tasks learned as train jobs learn them; seconds per task and what the second learned."""
    omega: dict[str, torch.Tensor] = {}
    validation: list[ValidationSet] = []
    seconds: dict[str, float] = {}
    learned: LearnedTask | None = None
    budget = Settings().prefix_cache_bytes if cached else 0
    options = defaults["importance"]
    for index, (task, classes) in enumerate(TASKS[kind]):
        x, y = task_rows(kind, spec, classes, seed=1 + 2 * index)
        train_rows, held = split_validation(len(y), defaults["validation_fraction"], index)
        validation = [*validation, ValidationSet(task, x[held], y[held])]
        started = time.perf_counter()
        learned = learn_task(
            net, task, len(classes), x[train_rows], y[train_rows],
            method=MethodChoice(defaults["method"], 1.0, defaults["penalty"]), theta_star=network_state(net),
            omega=omega, config=TrainConfig(epochs=epochs, batch_size=defaults["batch_size"],
                                            optimizer=defaults["optimizer"], lr=defaults["lr"],
                                            momentum=defaults["momentum"], seed=index,
                                            head_warmup=warmup_epochs(defaults["head_warmup"], pretrained=True)),
            importance=ImportanceChoice(options["variant"], options["output"], options["reduction"]),
            lambda_grid=grid, validation=validation, prefix=trunk_split(spec, net), prefix_budget=budget)
        seconds[task] = time.perf_counter() - started
        net = learned.net
        assert learned.estimate is not None
        parts = [TaskImportance(omega, 1)] if omega else []
        omega = total_importance([*parts, learned.estimate])
    assert learned is not None
    return {"seconds": seconds, "trials": len(learned.trials) or 1, "learned": learned}


def _difference(cached: LearnedTask, plain: LearnedTask) -> dict[str, float]:
    theta, expected = network_state(cached.net), network_state(plain.net)
    assert cached.estimate is not None and plain.estimate is not None
    return {
        "theta_max_abs": max(float((theta[k] - v).abs().max()) if v.numel() else 0.0 for k, v in expected.items()),
        "loss_max_abs": max(abs(a - b) for a, b in zip(cached.training.loss_per_epoch,
                                                       plain.training.loss_per_epoch, strict=True)),
        "omega_max_rel": max(float((cached.estimate.sums[k] - v).abs().max() / v.abs().max().clamp(min=1e-30))
                             for k, v in plain.estimate.sums.items() if float(v.abs().max()) > 1e-6),
        "same_lambda": float(cached.lam == plain.lam),
    }


def measure(kind: str, quick: bool, epochs: int | None = None) -> dict[str, Any]:
    defaults = service_defaults()
    epochs = epochs or (1 if quick else defaults["epochs"])
    grid = defaults["lambda_grid"][2:4] if quick else defaults["lambda_grid"]
    start, spec = tiny_network(kind) if quick else _pretrained(kind)
    runs = {}
    for cached in (False, True):
        runs[cached] = run_sequence(copy.deepcopy(start), kind, spec, defaults, cached=cached, epochs=epochs,
                                    grid=grid)
    plain, cached = runs[False], runs[True]
    tasks = list(plain["seconds"])
    return {
        "network": "tiny stand-in" if quick else ("all-MiniLM-L6-v2" if kind == "text" else "EfficientNet-Lite0"),
        "spec": spec, "epochs": epochs, "lambda_grid": grid, "trials_second_task": plain["trials"],
        "uncached_s": plain["seconds"], "cached_s": cached["seconds"],
        "ratio_second_task": cached["seconds"][tasks[1]] / plain["seconds"][tasks[1]],
        "ratio_both_tasks": sum(cached["seconds"].values()) / sum(plain["seconds"].values()),
        "difference": _difference(cached["learned"], plain["learned"]),
    }


def _pretrained(kind: str) -> tuple[MultiHeadNet, dict]:
    spec = TEXT_SPEC if kind == "text" else IMAGE_SPEC
    net = build_network(spec, seed=0)
    return net.eval(), net.architecture


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Train-job wall time with the frozen-prefix cache (CPU)", "",
             "| network | task (trials) | uncached s | cached s | cached / uncached | max abs Δθ | max abs Δloss "
             "| max rel ΔΩ |", "|---|---|---|---|---|---|---|---|"]
    for kind, entry in results["kinds"].items():
        tasks = list(entry["uncached_s"])
        difference = entry["difference"]
        for i, task in enumerate(tasks):
            trials = entry["trials_second_task"] if i else 1
            ratio = entry["cached_s"][task] / entry["uncached_s"][task]
            tail = (f"{difference['theta_max_abs']:.1e} | {difference['loss_max_abs']:.1e} | "
                    f"{difference['omega_max_rel']:.1e}") if i else "| |"
            lines.append(f"| {entry['network']} ({kind}) | {task} ({trials}) | {entry['uncached_s'][task]:.1f} | "
                         f"{entry['cached_s'][task]:.1f} | {ratio:.2f} | {tail} |")
        lines.append(f"| {entry['network']} ({kind}) | both | {sum(entry['uncached_s'].values()):.1f} | "
                     f"{sum(entry['cached_s'].values()):.1f} | {entry['ratio_both_tasks']:.2f} | | | |")
    lines += ["", results["note"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny stand-ins, 1 epoch, 2 λ (the test suite's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--epochs", type=int, help="instead of the job's default (fewer: a cut run, and a "
                        "conservative ratio: the cache saves more the more epochs reuse it)")
    parser.add_argument("--kinds", nargs="+", default=["text", "image"], choices=["text", "image"])
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"profile": "quick" if args.quick else "full",
                               "kinds": {kind: measure(kind, args.quick, args.epochs) for kind in args.kinds},
                               "note": "Target (issue 24): cached / uncached job wall time ≤ 0.4 on CPU. Times are "
                                       "learn_task's (training, λ search, validation, Ω); the job's evaluation and "
                                       "class statistics passes are not included."}
    write_results(args.out, "job_speed", results, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
