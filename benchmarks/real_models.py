"""Real-model benchmark: exact per-sample Ω and the MAS training step on all-MiniLM-L6-v2 and EfficientNet-Lite0.

    python -m benchmarks.real_models                  # rewrites benchmarks/results/real_models.{json,md}
    python -m benchmarks.real_models --quick --out /tmp/x                 # the real networks, few samples
    python -m benchmarks.real_models --profile smoke --out /tmp/x         # tiny random stand-ins (CI, seconds)

benchmarks/speed.py measures the same ratios on small MLPs and CNNs; here the networks are the service's
pretrained kinds (MAS.md §6: linear layers on sequences, embeddings, layer norm, depthwise convolutions,
eval-mode batch norm), built by the architecture registry exactly as a model of that kind is, with the
trunk learning all of its blocks or the last two. Every figure is a ratio of two timings taken in the
same run (alternated, median of the repeats), on whatever CPU runs it with torch.set_num_threads(2).

- Ω throughput in samples/s: exact `per_sample` vs the reference `batch` estimate (one backward per
  chunk) vs torch.func vmap over grad, Opacus' GradSampleModule and BackPACK's BatchGrad on the same
  measured parameters (the slow ones on fewer samples: throughput is per sample). A library that cannot
  handle a layer is recorded with its error message, not worked around. Agreement with the exact sums
  is reported as Σ|a − b| / Σ|b| over all measured parameters (per-parameter relative errors mean
  nothing for attention key biases, whose true gradient is zero: softmax ignores a shift shared by all keys).
- Training step: ms per step of app.mas.training.train_task (the service's loop, timed between its
  progress callbacks, first step left out, median over all timed steps) with MAS (proximal, Ω from one
  estimate, θ* = current θ) against fine-tune, same data, batch size and starting θ.

Inputs: MiniLM reads random token ids, full length 64 with no padding ([CLS], 62 ids drawn from the
word-piece range of its vocabulary, [SEP]); no WordNet is installed here, and the cost does not depend
on which tokens they are. EfficientNet reads N(0, 1) images at 96×96 (the kind's normalised range).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import Tensor

from app.architectures import build_network
from app.mas.importance import estimate_importance, estimate_importance_vmap
from app.mas.methods import make_method
from app.mas.networks import MultiHeadNet, network_state
from app.mas.training import TrainConfig, train_task
from benchmarks.provenance import cpu_model, provenance, write_results
from benchmarks.standins import tiny_network

RESULTS = Path(__file__).parent / "results"
THREADS = 2
TARGETS = {"exact_vs_batch": 0.5, "mas_vs_finetune": 1.05}
TEXT = {"kind": "text-encoder", "max_length": 64}
IMAGE = {"kind": "image-backbone", "image_size": 96}
CASES: dict[str, dict] = {
    "minilm_l6_len64_all": {**TEXT, "trainable": "all"},
    "minilm_l6_len64_last2": {**TEXT, "trainable": {"last": 2}},
    "efficientnet_lite0_96_all": {**IMAGE, "trainable": "all"},
    "efficientnet_lite0_96_last2": {**IMAGE, "trainable": {"last": 2}},
}
# samples for exact/batch Ω, for the per-sample libraries, training steps of batch 16
SIZES = {"full": {"exact": 64, "library": 8, "steps": 5}, "quick": {"exact": 8, "library": 2, "steps": 2},
         "smoke": {"exact": 4, "library": 2, "steps": 2}}
BATCH = 16
CLASSES = 4
WORD_PIECES = (1996, 30522)  # bert-base-uncased's vocabulary after its [unused] and single-character entries
CLS, SEP = 101, 102


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """Seconds per call of each function, the functions alternated within each repeat so that drift of the
    machine (turbo, other load) hits every one alike; warm-ups are the caller's."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"min": min(t), "median": statistics.median(t), "max": max(t), "all": t} for name, t in times.items()}


def sample_inputs(net: MultiHeadNet, n: int, seed: int = 0) -> Tensor:
    """n inputs the trunk takes: full-length token ids, or N(0, 1) images."""
    generator = torch.Generator().manual_seed(seed)
    shape = net.input_shape
    if net.input_spec.dtype == torch.int64:
        vocab = net.trunk.embeddings.word_embeddings.num_embeddings
        low, high = (WORD_PIECES[0], min(WORD_PIECES[1], vocab)) if vocab > WORD_PIECES[0] else (3, vocab)
        ids = torch.randint(low, high, (n, *shape), generator=generator)
        if vocab > SEP:
            ids[:, 0], ids[:, -1] = CLS, SEP
        return ids
    return torch.randn(n, *shape, generator=generator)


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"


def agreement(sums: dict[str, Tensor], reference: dict[str, Tensor]) -> float:
    """Σ|a − b| / Σ|b| over the parameters both measured."""
    names = [name for name in reference if name in sums]
    difference = sum(float((sums[n] - reference[n]).abs().sum()) for n in names)
    return difference / max(sum(float(reference[n].abs().sum()) for n in names), 1e-30)


# --- per-sample gradients from the libraries, on a private copy of the network ------------------


def _measured(net: MultiHeadNet, task: str) -> dict[str, torch.nn.Parameter]:
    return net.task_parameters(task)


def opacus_sums(net: MultiHeadNet, task: str, x: Tensor) -> dict[str, Tensor]:
    """Σ_k |g_k| from Opacus' GradSampleModule (hooks per layer type, loss_reduction "sum").

    Opacus captures activations only in modules in training mode: the network stays in eval mode
    (dropout off, batch norm on running statistics) and only the layers that Opacus hooks (leaves with
    parameters: linear, embedding, layer norm, which compute the same in both modes) are flagged as training."""
    from opacus import GradSampleModule

    net.eval()
    module = GradSampleModule(net, loss_reduction="sum", batch_first=True, strict=False)
    try:
        for layer in net.modules():
            if next(layer.children(), None) is None and any(p.requires_grad for p in layer.parameters(recurse=False)):
                layer.training = True
        module(x, task).square().sum().backward()
        sums, wrong = {}, []
        for name, p in _measured(net, task).items():
            sample = getattr(p, "grad_sample", None)
            if sample is None or sample.shape[0] != x.shape[0]:
                wrong.append(name)
                continue
            sums[name] = sample.abs().sum(0)
        if wrong:
            raise RuntimeError(f"no per-sample gradient of the batch's size for {len(wrong)} parameters, "
                               f"e.g. {wrong[:3]}")
        return sums
    finally:
        module.zero_grad(set_to_none=True)
        module._close()


def backpack_sums(net: MultiHeadNet, task: str, x: Tensor) -> dict[str, Tensor]:
    """Σ_k |g_k| from BackPACK's BatchGrad extension (first-order, one backward with module hooks)."""
    from backpack import backpack, extend
    from backpack.extensions import BatchGrad

    net.eval()
    extended = extend(net)
    output = extended(x, task).square().sum()
    with backpack(BatchGrad()):
        output.backward()
    measured = _measured(net, task)
    missing = [name for name, p in measured.items() if getattr(p, "grad_batch", None) is None]
    if missing:
        raise RuntimeError(f"BackPACK gave no grad_batch for {len(missing)} parameters, e.g. {missing[:3]}")
    return {name: p.grad_batch.abs().sum(0) for name, p in measured.items()}


def vmap_sums(net: MultiHeadNet, task: str, x: Tensor) -> dict[str, Tensor]:
    return estimate_importance_vmap(net, task, x, chunk_size=x.shape[0]).sums


LIBRARIES: dict[str, Callable[[MultiHeadNet, str, Tensor], dict[str, Tensor]]] = {
    "vmap_over_grad": vmap_sums, "opacus": opacus_sums, "backpack": backpack_sums,
}


def library_entry(
    net: MultiHeadNet, x: Tensor, reference: dict[str, Tensor], repeats: int, library: str
) -> dict:
    """One library's throughput and agreement, or the error it raised on this network."""
    measure = LIBRARIES[library]
    private = net if library == "vmap_over_grad" else copy.deepcopy(net)  # hooks and extensions stay on the copy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sums = measure(private, "t", x)  # also the warm-up
            seconds = median_seconds({library: partial(measure, private, "t", x)}, repeats)[library]
    except Exception as error:  # noqa: BLE001 - a layer the library does not handle: the finding is the message
        return {"error": error_text(error)}
    return {"samples": int(x.shape[0]), "seconds": seconds, "samples_per_s": x.shape[0] / seconds["median"],
            "relative_l1_difference_to_exact": agreement(sums, reference)}


def importance_throughput(net: MultiHeadNet, n: int, n_library: int, repeats: int) -> dict:
    """Exact and batch Ω on n samples (one chunk), and the per-sample libraries on n_library samples."""
    x = sample_inputs(net, n)
    runs = {
        reduction: partial(estimate_importance, net, "t", x, reduction=reduction, chunk_size=n)
        for reduction in ("per_sample", "batch")
    }
    for run in runs.values():  # warm-up at full size: the first pass pays page faults for its large buffers
        run()
    seconds = median_seconds(runs, repeats)
    entry: dict = {
        name: {"samples": n, "seconds": s, "samples_per_s": n / s["median"]} for name, s in seconds.items()
    }
    fallback = estimate_importance(net, "t", x[:2]).fallback
    entry["per_sample"]["vmap_fallback_parameters"] = list(fallback)
    small = x[:n_library]
    reference = estimate_importance(net, "t", small, chunk_size=n).sums
    for library in LIBRARIES:
        entry[library] = library_entry(net, small, reference, repeats, library)
    exact = entry["per_sample"]["samples_per_s"]
    entry["ratios"] = {"exact_vs_batch": exact / entry["batch"]["samples_per_s"],
                       "exact_vs_batch_fastest": seconds["batch"]["min"] / seconds["per_sample"]["min"]}
    for library in LIBRARIES:
        if "samples_per_s" in entry[library]:
            entry["ratios"][f"exact_vs_{library}"] = exact / entry[library]["samples_per_s"]
    return entry


# --- the training step ----------------------------------------------------------------------------


def step_seconds(start: MultiHeadNet, method_of: Callable[[], object], x: Tensor, y: Tensor) -> list[float]:
    """Seconds of each step but the first (which creates the momentum buffers) of one train_task epoch on a
    copy of `start`, timed between its progress callbacks.

    A copy, not `start` reloaded: training adds per-task batch-norm statistics (app/mas/task_statistics.py)
    that a state taken before it does not name, so it would not load back."""
    net = copy.deepcopy(start)
    stamps: list[float] = []
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3, momentum=0.9, seed=0)
    train_task(net, "t", CLASSES, x, y, method_of(), config, progress=lambda *_: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def training_step(net: MultiHeadNet, steps: int, repeats: int) -> dict:
    """ms per step, MAS (proximal) vs fine-tune, alternated, from the same θ on the same data.

    Ω is measured through an earlier task's head, as in the service: the new head "t" carries none."""
    x = sample_inputs(net, BATCH * (steps + 1), seed=1)
    y = torch.randint(0, CLASSES, (x.shape[0],), generator=torch.Generator().manual_seed(2))
    net.add_head("old", CLASSES, seed=1)
    importance = estimate_importance(net, "old", x[:4])
    omega = {name: s / importance.n for name, s in importance.sums.items()}
    start = network_state(net)
    methods = {
        "finetune": lambda: make_method("finetune"),
        "mas": lambda: make_method("mas", lam=1.0, theta_star=start, omega=omega),
    }
    per_step: dict[str, list[float]] = {name: [] for name in methods}
    for method_of in methods.values():  # warm-up: the first epoch in a process allocates the optimizer state
        step_seconds(net, method_of, x[: 2 * BATCH], y[: 2 * BATCH])
    for _ in range(repeats):
        for name, method_of in methods.items():
            per_step[name] += step_seconds(net, method_of, x, y)
    del net.heads["old"]
    medians = {name: statistics.median(t) for name, t in per_step.items()}  # over every timed step of every repeat
    return {
        "batch_size": BATCH, "steps_timed_per_repeat": steps, "seconds_per_step_all": per_step,
        "seconds_per_step": medians, "anchored_parameters": len(omega) - 2,
        "omega_mean": float(torch.cat([o.flatten() for o in omega.values()]).mean()),
        "mas_vs_finetune": medians["mas"] / medians["finetune"],
        "mas_vs_finetune_fastest": min(per_step["mas"]) / min(per_step["finetune"]),
    }


# --- the run --------------------------------------------------------------------------------------


def case_network(spec: dict, profile: str = "full") -> MultiHeadNet:
    """The kind's network as the service builds it, or (profile smoke) its tiny random stand-in."""
    net = tiny_network(spec) if profile == "smoke" else build_network(spec, seed=0)
    net.add_head("t", CLASSES, seed=0)
    return net.eval()


def run_case(net: MultiHeadNet, sizes: dict[str, int], repeats: int) -> dict:
    """Both sections on one network (with a head "t"); an error in exact Ω is recorded, not raised."""
    entry: dict = {"parameters_measured": sum(p.numel() for p in net.task_parameters("t").values())}
    try:
        entry["importance"] = importance_throughput(net, sizes["exact"], sizes["library"], repeats)
    except Exception as error:  # noqa: BLE001 - a network the exact path cannot measure: the finding is the message
        entry["importance"] = {"error": error_text(error)}
    entry["training_step"] = training_step(net, sizes["steps"], repeats)
    return entry


def environment() -> dict:
    packages = {}
    for name in ("torch", "transformers", "opacus", "backpack-for-pytorch"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "cpu": cpu_model(),
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average_1_5_15": os.getloadavg(),
            "python": platform.python_version(), "packages": packages}


def verdicts(cases: dict) -> list[tuple[str, float | None, str, bool]]:
    rows: list[tuple[str, float | None, str, bool]] = []
    for name, entry in cases.items():
        ratio = entry["importance"].get("ratios", {}).get("exact_vs_batch")
        rows.append((f"Ω exact / batch throughput, {name}", ratio, f"≥ {TARGETS['exact_vs_batch']}",
                     ratio is not None and ratio >= TARGETS["exact_vs_batch"]))
    for name, entry in cases.items():
        ratio = entry["training_step"]["mas_vs_finetune"]
        rows.append((f"training step MAS / fine-tune, {name}", ratio, f"≤ {TARGETS['mas_vs_finetune']}",
                     ratio <= TARGETS["mas_vs_finetune"]))
    return rows


def _rate(entry: dict) -> str:
    return f"{entry['samples_per_s']:.2f}" if "samples_per_s" in entry else "error"


def importance_rows(cases: dict) -> list[str]:
    lines = ["| network | exact (per_sample) | batch | vmap over grad | Opacus | BackPACK | exact / batch |"
             " exact / vmap | exact / Opacus | exact / BackPACK | exact / batch, fastest runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    errors = []
    for name, case in cases.items():
        e = case["importance"]
        if "error" in e:
            lines.append(f"| {name} | error | | | | | | | | | |")
            errors.append(f"- {name}, exact Ω: `{e['error']}`")
            continue
        rates = " | ".join(_rate(e[k]) for k in ("per_sample", "batch", *LIBRARIES))
        ratios = " | ".join(f"{e['ratios'][k]:.2f}" if k in e["ratios"] else "–"
                            for k in ("exact_vs_batch", *(f"exact_vs_{library}" for library in LIBRARIES)))
        lines.append(f"| {name} | {rates} | {ratios} | {e['ratios']['exact_vs_batch_fastest']:.2f} |")
        for library in LIBRARIES:
            if "error" in e[library]:
                errors.append(f"- {name}, {library}: `{e[library]['error']}`")
            else:
                errors.append(f"- {name}, {library}: Σ|Ω − Ω_exact| / Σ|Ω_exact| = "
                              f"{e[library]['relative_l1_difference_to_exact']:.1e}")
    return lines + ["", "Agreement with the exact sums, or why a library gave none:", "", *errors]


def markdown(results: dict) -> str:
    env, sizes = results["environment"], results["sizes"]
    lines = ["# Real-model benchmark", "",
             f"Profile {results.get('profile', 'quick' if results['quick'] else 'full')}"
             f"{' (tiny random stand-ins: the code path, not figures)' if results.get('profile') == 'smoke' else ''}"
             f", {env['date']}: "
             f"{env['cpu']}, {env['torch_threads']} torch threads, torch {env['packages']['torch']}, "
             f"median of {results['repeats']} repeat(s), alternated within each repeat. Load average (1/5/15 min) "
             f"before the run {results['load_before']}, after it {env['load_average_1_5_15']} on {env['cpus']} CPUs: "
             "other processes on the machine slow every figure, the ratios less.", "",
             "## Importance Ω throughput (samples/s)", "",
             f"Exact and batch on {sizes['exact']} samples in one chunk (one backward); vmap, Opacus and BackPACK "
             f"on {sizes['library']} samples. MiniLM: random token ids, full length 64 (no padding).", "",
             *importance_rows(results["cases"]), "",
             f"## Training step, batch {BATCH} (ms per step; train_task, SGD momentum 0.9; median over every timed "
             "step of every repeat, after a warm-up epoch)", "",
             "| network | fine-tune | MAS (proximal) | MAS / fine-tune | MAS / fine-tune, fastest steps |",
             "|---|---|---|---|---|"]
    for name, case in results["cases"].items():
        t = case["training_step"]
        s = t["seconds_per_step"]
        lines.append(f"| {name} | {s['finetune'] * 1e3:.1f} | {s['mas'] * 1e3:.1f} | {t['mas_vs_finetune']:.3f} | "
                     f"{t['mas_vs_finetune_fastest']:.3f} |")
    lines += ["", "## Against the targets", "", "| figure | measured | target | met |", "|---|---|---|---|"]
    for label, value, target, met in results["verdicts"]:
        shown = "error" if value is None else f"{value:.3g}"
        lines.append(f"| {label} | {shown} | {target} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timings per figure (median); default 3, else 1")
    parser.add_argument("--profile", choices=list(SIZES), default="full",
                        help="full; quick: the real networks on few samples; smoke: tiny random stand-ins")
    parser.add_argument("--quick", action="store_true", help="the same as --profile quick")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = provenance()
    profile = "quick" if args.quick else args.profile
    torch.set_num_threads(1 if profile == "smoke" else THREADS)  # smoke: tiny tensors, where threads only contend
    sizes = SIZES[profile]
    repeats = args.repeats or (3 if profile == "full" else 1)
    cases, load_before = {}, [round(v, 2) for v in os.getloadavg()]
    for name, spec in CASES.items():
        started_case = time.perf_counter()
        cases[name] = run_case(case_network(spec, profile), sizes, repeats)
        cases[name]["spec"] = spec
        print(name, f"{time.perf_counter() - started_case:.0f} s",
              cases[name]["importance"].get("ratios", cases[name]["importance"].get("error")),
              "mas/finetune", round(cases[name]["training_step"]["mas_vs_finetune"], 3), flush=True)
    results = {"quick": profile != "full", "profile": profile, "repeats": repeats, "load_before": load_before,
               "sizes": sizes, "environment": environment(), "targets": TARGETS, "cases": cases}
    results["verdicts"] = verdicts(cases)
    write_results(args.out, "real_models", results, markdown(results), started=started)
    print((args.out / "real_models.md").read_text())


if __name__ == "__main__":
    main()
