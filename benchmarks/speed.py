"""Speed benchmark: how fast the implementation is next to its limits, with ratios measured in one run.

    python -m benchmarks.speed                     # rewrites benchmarks/results/speed.{json,md}
    python -m benchmarks.speed --profile smoke --out /tmp/x
    python -m benchmarks.speed --service --brokers embedded   # the service too, on the file broker only

Sections (each figure is the median of repeated timings, min and max kept in the JSON):
- Ω throughput in samples/s: exact `per_sample` (outer-product factorisation / unfolded convolutions)
  vs the reference `batch` estimate vs vmap over grad vs a Python loop of single-sample backward
  passes, for MLP 64-256-256, MLP 784-1000-1000 and the small CNN (1×8×8, channels 16-32, hidden 128).
- one training step (batch 64, SGD momentum) with the MAS proximal penalty vs plain fine-tune.
- the service (`--service`, see benchmarks/service_speed.py): prediction latency and throughput
  over HTTP, job pickup latency, storage per version.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as functional

from app.mas.importance import estimate_importance, estimate_importance_vmap
from app.mas.methods import make_method
from app.mas.networks import MultiHeadNet, build_network, network_state
from benchmarks.provenance import provenance, write_results
from benchmarks.service_speed import BROKERS, measure_service

RESULTS = Path(__file__).parent / "results"

NETWORKS = {
    "mlp_64_256_256": ({"kind": "mlp", "input_shape": [64], "hidden": [256, 256]}, 4096),
    "mlp_784_1000_1000": ({"kind": "mlp", "input_shape": [784], "hidden": [1000, 1000]}, 1024),
    "cnn_1x8x8_16_32": ({"kind": "cnn", "input_shape": [1, 8, 8], "channels": [16, 32], "hidden": [128]}, 2048),
}
TARGETS = {
    "per_sample_vs_batch_mlp": 0.8, "per_sample_vs_batch_cnn": 0.3, "per_sample_vs_vmap": 20.0,
    "mas_step_vs_finetune": 1.10,
}


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """Seconds per call: one warm-up call, then `repeats` timed calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def _network(arch: dict, classes: int = 10) -> MultiHeadNet:
    net = build_network(arch, seed=0)
    net.add_head("t", classes, seed=0)
    return net


def naive_loop(net: MultiHeadNet, x: torch.Tensor) -> None:
    """What the authors' code does per sample (batch size 1): one forward and one backward per sample."""
    net.eval()
    params = list(net.task_parameters("t").values())
    total = [torch.zeros_like(p) for p in params]
    for k in range(x.shape[0]):
        for t, g in zip(total, torch.autograd.grad(net(x[k : k + 1], "t").square().sum(), params), strict=True):
            t += g.abs()


def _throughput(samples: int, fn: Callable[[], object], repeats: int) -> dict:
    seconds = timed(fn, repeats)
    return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds["median"]}


def importance_throughput(profile: dict) -> dict:
    results = {}
    for name, (arch, n) in NETWORKS.items():
        n = max(64, n // profile["shrink"])
        net = _network(arch)
        x = torch.randn(n, *arch["input_shape"], generator=torch.Generator().manual_seed(0))
        small = x[: max(32, n // 8)]  # the slow paths run on fewer samples
        repeats = profile["repeats"]
        entry = {
            "per_sample": _throughput(n, partial(estimate_importance, net, "t", x, chunk_size=n), repeats),
            "batch": _throughput(
                n, partial(estimate_importance, net, "t", x, reduction="batch", chunk_size=n), repeats
            ),
            "vmap_over_grad": _throughput(len(small), partial(estimate_importance_vmap, net, "t", small), 3),
            "python_loop": _throughput(len(small), partial(naive_loop, net, small), 3),
        }
        speed = {k: v["samples_per_s"] for k, v in entry.items()}
        entry["ratios"] = {
            "per_sample_vs_batch": speed["per_sample"] / speed["batch"],
            "per_sample_vs_vmap": speed["per_sample"] / speed["vmap_over_grad"],
            "per_sample_vs_loop": speed["per_sample"] / speed["python_loop"],
        }
        results[name] = entry
        print(name, {k: round(v, 2) for k, v in entry["ratios"].items()}, flush=True)
    return results


def _steps(net: MultiHeadNet, method_name: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[int], None]:
    """A closure running n training steps of one method (the loop of app.mas.training, without data loading)."""
    params = net.task_parameters("t")
    state = network_state(net)
    omega = {k: torch.rand_like(v) for k, v in state.items()}
    method = make_method(method_name, lam=1.0, theta_star=state, omega=omega)
    optimizer = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9, foreach=True)
    method.begin_task(net, "t", params, 0.01, x)

    def run(n: int) -> None:
        for _ in range(n):
            loss = functional.cross_entropy(net(x, "t"), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.before_step()
            optimizer.step()
            method.after_step(optimizer)

    return run


def training_step(profile: dict) -> dict:
    """Seconds per training step, MAS (proximal) vs fine-tune, on the same model and data."""
    results = {}
    for name, (arch, _) in NETWORKS.items():
        x = torch.randn(64, *arch["input_shape"], generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(2))
        timings = {
            m: timed(partial(_steps(_network(arch), m, x, y), profile["steps"]), profile["repeats"])
            for m in ("finetune", "mas")
        }
        results[name] = {
            "seconds_per_step": {k: v["median"] / profile["steps"] for k, v in timings.items()},
            "raw": timings,
            "mas_vs_finetune": timings["mas"]["median"] / timings["finetune"]["median"],
        }
        print(name, "mas/finetune step", round(results[name]["mas_vs_finetune"], 3), flush=True)
    return results


def verdicts(results: dict) -> list[tuple[str, float, str, bool]]:
    rows = []
    for name, entry in results["importance"].items():
        target = TARGETS["per_sample_vs_batch_cnn" if name.startswith("cnn") else "per_sample_vs_batch_mlp"]
        ratio = entry["ratios"]["per_sample_vs_batch"]
        rows.append((f"Ω per_sample / batch, {name}", ratio, f"≥ {target}", ratio >= target))
        ratio = entry["ratios"]["per_sample_vs_vmap"]
        rows.append((f"Ω per_sample / vmap over grad, {name}", ratio, f"≥ {TARGETS['per_sample_vs_vmap']}",
                     ratio >= TARGETS["per_sample_vs_vmap"]))
    for name, entry in results["training_step"].items():
        ratio = entry["mas_vs_finetune"]
        rows.append((f"training step MAS / fine-tune, {name}", ratio, f"≤ {TARGETS['mas_step_vs_finetune']}",
                     ratio <= TARGETS["mas_step_vs_finetune"]))
    return rows


def markdown(results: dict) -> str:
    lines = ["# Speed benchmark", "", f"Profile `{results['profile']}`, {results['machine']}.", "",
             "## Importance Ω throughput (samples/s, median)", "",
             "| network | per_sample (exact) | batch (reference) | vmap over grad | Python loop | exact / batch |"
             " exact / vmap | exact / loop |", "|---|---|---|---|---|---|---|---|"]
    for name, e in results["importance"].items():
        lines.append(
            f"| {name} | {e['per_sample']['samples_per_s']:,.0f} | {e['batch']['samples_per_s']:,.0f} | "
            f"{e['vmap_over_grad']['samples_per_s']:,.0f} | {e['python_loop']['samples_per_s']:,.0f} | "
            f"{e['ratios']['per_sample_vs_batch']:.2f} | {e['ratios']['per_sample_vs_vmap']:.1f} | "
            f"{e['ratios']['per_sample_vs_loop']:.1f} |"
        )
    lines += ["", "## Training step, batch 64 (ms per step, median)", "",
              "| network | fine-tune | MAS (proximal) | MAS / fine-tune |", "|---|---|---|---|"]
    for name, e in results["training_step"].items():
        s = e["seconds_per_step"]
        lines.append(f"| {name} | {s['finetune'] * 1e3:.3f} | {s['mas'] * 1e3:.3f} | {e['mas_vs_finetune']:.3f} |")
    for section in results.get("service_markdown", []):
        lines += ["", section]
    lines += ["", "## Against the targets", "", "| figure | measured | target | met |", "|---|---|---|---|"]
    for label, value, target, met in results["verdicts"]:
        lines.append(f"| {label} | {value:.3g} | {target} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def _brokers(value: str) -> tuple[str, ...]:
    brokers = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not brokers or not set(brokers) <= set(BROKERS):
        raise argparse.ArgumentTypeError(f"choose one or more of {', '.join(BROKERS)}, separated by commas")
    return brokers


PROFILES = {"full": {"shrink": 1, "repeats": 15, "steps": 50}, "smoke": {"shrink": 16, "repeats": 1, "steps": 2}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--service", action="store_true", help="also measure the running service (HTTP, jobs, storage)")
    parser.add_argument("--brokers", default=",".join(BROKERS), type=_brokers,
                        help="with --service: the brokers to start a service on, in order (default: %(default)s; "
                             "Redis only when redis-server is on PATH); predictions are taken on the first")
    args = parser.parse_args()
    started = provenance()
    profile = PROFILES[args.profile]
    results: dict = {
        "profile": args.profile,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "importance": importance_throughput(profile),
        "training_step": training_step(profile),
    }
    results["verdicts"] = verdicts(results)
    if args.service:
        service = measure_service(args.profile, args.brokers)
        results["service"] = service["results"]
        results["service_markdown"] = service["markdown"]
        results["verdicts"] += service["verdicts"]
    write_results(args.out, "speed", results, markdown(results), started=started)
    print((args.out / "speed.md").read_text())


if __name__ == "__main__":
    main()
