"""Speed on the device named: exact Ω against the batch estimate, a train step against a plain loop, predictions.

    python -m benchmarks.gpu_speed --device cuda          # writes benchmarks/results/gpu_speed_cuda.{json,md}
    python -m benchmarks.gpu_speed --device cpu
    python -m benchmarks.gpu_speed --device cpu --quick --out /tmp/x   # tiny stand-ins: the CI smoke profile

Every ratio is measured in one run, on one machine, from medians of repeated timings after a warm-up:

1. omega: exact per-sample Ω (`estimate_importance`, chunks sized by the device) against the reference
   libraries' batch estimate (|∇ of the batch's summed ‖F‖²|, one chunk of all rows) and vmap over grad (a
   slice of the rows), on MiniLM and EfficientNet-Lite0 with every block and with the last 2 blocks
   trainable; on EfficientNet both exact forms of depthwise gradients (per_sample_layers.DEPTHWISE_FORM).
2. train: seconds per step of the job's `train_task` fine-tuning and with MAS's proximal penalty, against a
   plain PyTorch loop (the same network, optimizer, batch and autocast; nothing else), last 2 blocks trainable.
3. predict: texts and images per second through the service's forward (`app.predictions.service.forward`,
   bf16 autocast on CUDA, tokenising included for texts) against sentence-transformers' `encode` (fp32,
   batch 256) on the same weights.
4. http: a real API (`python -m app.cli serve`, LIFELONG_PREDICT_DEVICE=<device>) with a learned model:
   one client sending 64-text requests, 32 concurrent clients of 64 texts, and 32 concurrent one-row
   clients, with shared passes on (the default) and off (LIFELONG_PREDICT_BATCH_ROWS=1, as before), and the
   p50 of a lone one-row request both ways. The quick profile learns an MLP on arrays instead of MiniLM.

`--quick` uses the tiny random stand-ins of benchmarks/standins.py and a few rows: it proves every case runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
import torch.nn.functional as functional
from torch import Tensor

from app.architectures import build_network, get_architecture
from app.mas import per_sample_layers
from app.mas.importance import estimate_importance, estimate_importance_vmap
from app.mas.methods import make_method
from app.mas.networks import MultiHeadNet, network_state
from app.mas.training import TrainConfig, precision_for, train_task
from app.predictions import service
from benchmarks.gpu_checks import RunningService, _ok, environment, pick_checked_device, synchronize, wait_job
from benchmarks.provenance import provenance, write_results
from benchmarks.standins import tiny_network

RESULTS = Path(__file__).parent / "results"
CLASSES = 4
SPECS = {
    "minilm_all": {"kind": "text-encoder", "max_length": 128, "trainable": "all"},
    "minilm_last2": {"kind": "text-encoder", "max_length": 128, "trainable": {"last": 2}},
    "efficientnet_all": {"kind": "image-backbone", "image_size": 224, "trainable": "all"},
    "efficientnet_last2": {"kind": "image-backbone", "image_size": 224, "trainable": {"last": 2}},
}
PROFILES = {
    "cuda": {"omega_texts": 1024, "omega_images": 512, "vmap_rows": 32, "train_batch": 64, "train_steps": 20,
             "predict_texts": 8192, "predict_images": 2048, "http_requests": 64, "repeats": 3},
    "cpu": {"omega_texts": 32, "omega_images": 16, "vmap_rows": 2, "train_batch": 16, "train_steps": 4,
            "predict_texts": 256, "predict_images": 32, "http_requests": 8, "repeats": 1},
    "quick": {"omega_texts": 8, "omega_images": 4, "vmap_rows": 2, "train_batch": 4, "train_steps": 3,
              "predict_texts": 16, "predict_images": 4, "http_requests": 4, "repeats": 1},
}
SECTIONS = ("omega", "train", "predict", "http")
WORDS = ("the quick brown fox jumps over a lazy dog while my neighbour reads about cars trains and boats "
         "in a small garden near the river where children play with red balls every sunny afternoon").split()


def texts(n: int, seed: int = 0, words: tuple[int, int] = (4, 40)) -> list[str]:
    """n sentences of 4–40 words drawn from a fixed vocabulary (lengths vary as real requests' do)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(*words)))) for _ in range(n)]


def median_s(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up: allocations, kernels chosen, caches filled
    synchronize(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def network(case: str, quick: bool, device: torch.device) -> MultiHeadNet:
    spec = SPECS[case]
    if quick:
        net = tiny_network(spec)
    else:
        net = build_network(get_architecture(spec["kind"]).validate(spec) | {"trainable": spec["trainable"]}, seed=0)
    net.add_head("t", CLASSES, seed=0)
    return net.to(device).eval()


def case_inputs(net: MultiHeadNet, n: int, seed: int = 0) -> Tensor:
    """Rows as the service would feed them: token ids with every position used (length 128), or images."""
    generator = torch.Generator().manual_seed(seed)
    if net.input_spec.dtype == torch.int64:
        return torch.randint(1000 if net.input_shape[0] > 16 else 1, 2000 if net.input_shape[0] > 16 else 100,
                             (n, *net.input_shape), generator=generator)
    return torch.randn(n, *net.input_shape, generator=generator)


# --- 1. Ω -----------------------------------------------------------------------------------------


def omega_case(case: str, device: torch.device, sizes: dict, quick: bool) -> dict[str, Any]:
    net = network(case, quick, device)
    n = sizes["omega_texts"] if "minilm" in case else sizes["omega_images"]
    x = case_inputs(net, n).to(device)
    small = x[: sizes["vmap_rows"]]
    timed = {
        "exact": partial(estimate_importance, net, "t", x),
        "batch": partial(estimate_importance, net, "t", x, reduction="batch", chunk_size=n),
        "vmap": partial(estimate_importance_vmap, net, "t", small, chunk_size=small.shape[0]),
    }
    rows = {"exact": n, "batch": n, "vmap": small.shape[0]}
    entry: dict[str, Any] = {"rows": n, "parameters": sum(p.numel() for p in net.task_parameters("t").values())}
    for name, fn in timed.items():
        seconds = median_s(fn, device, sizes["repeats"])
        entry[name] = {"seconds": seconds, "samples_per_s": rows[name] / seconds}
    if "efficientnet" in case:
        chosen = per_sample_layers.DEPTHWISE_FORM[device.type]
        for form in ("grouped", "shifted"):
            per_sample_layers.DEPTHWISE_FORM[device.type] = form
            try:
                seconds = median_s(timed["exact"], device, sizes["repeats"])
            finally:
                per_sample_layers.DEPTHWISE_FORM[device.type] = chosen
            entry[f"exact_depthwise_{form}"] = {"seconds": seconds, "samples_per_s": n / seconds}
        entry["depthwise_form_default"] = chosen
    entry["exact_vs_batch"] = entry["exact"]["samples_per_s"] / entry["batch"]["samples_per_s"]
    entry["exact_vs_vmap"] = entry["exact"]["samples_per_s"] / entry["vmap"]["samples_per_s"]
    return entry


# --- 2. the train step ----------------------------------------------------------------------------


def plain_loop_seconds(net: MultiHeadNet, x: Tensor, y: Tensor, batch: int, precision: str) -> list[float]:
    """Per-step seconds of the loop anyone would write: SGD with momentum, cross-entropy, nothing else."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)
    net.train()
    stamps = []
    for start in range(0, x.shape[0], batch):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = functional.cross_entropy(net(x[start : start + batch], "t").float(), y[start : start + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(x.device)
        stamps.append(time.perf_counter())
    net.eval()
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def service_loop_seconds(net: MultiHeadNet, method: Callable[[], object], x: Tensor, y: Tensor, batch: int,
                         precision: str) -> list[float]:
    stamps: list[float] = []

    def stamp(*_: object) -> None:
        synchronize(x.device)
        stamps.append(time.perf_counter())

    config = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, momentum=0.9, seed=0, precision=precision)
    train_task(net, "t", CLASSES, x, y, method(), config, progress=stamp)
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def train_case(case: str, device: torch.device, sizes: dict, quick: bool) -> dict[str, Any]:
    net = network(case, quick, device)
    batch, steps = sizes["train_batch"], sizes["train_steps"]
    x = case_inputs(net, batch * (steps + 1), seed=1).to(device)
    y = torch.randint(0, CLASSES, (x.shape[0],), generator=torch.Generator().manual_seed(2)).to(device)
    precision = precision_for(device)
    start = network_state(net)
    omega = {name: torch.rand_like(p) for name, p in net.task_parameters("t").items() if not name.startswith("heads")}
    loops = {
        "plain": lambda: plain_loop_seconds(net, x, y, batch, precision),
        "finetune": lambda: service_loop_seconds(net, lambda: make_method("finetune"), x, y, batch, precision),
        "mas": lambda: service_loop_seconds(net, lambda: make_method("mas", lam=1.0, theta_star=start, omega=omega),
                                            x, y, batch, precision),
    }
    per_step: dict[str, list[float]] = {name: [] for name in loops}
    for run in loops.values():  # warm-up
        net.load_state_dict(start, strict=False)  # strict=False: training added the task's batch-norm statistics
        run()
    for _ in range(sizes["repeats"]):
        for name, run in loops.items():  # alternated, from the same θ
            net.load_state_dict(start, strict=False)
            per_step[name] += run()
    medians = {name: statistics.median(t) for name, t in per_step.items()}
    return {"batch_size": batch, "precision": precision, "seconds_per_step": medians,
            "finetune_vs_plain": medians["finetune"] / medians["plain"],
            "mas_vs_finetune": medians["mas"] / medians["finetune"]}


# --- 3. predictions in-process --------------------------------------------------------------------


def predict_texts(device: torch.device, sizes: dict, quick: bool) -> dict[str, Any]:
    sentences = texts(sizes["predict_texts"])
    if quick:
        net, arch = network("minilm_last2", True, device), None
        ids = case_inputs(net, len(sentences)).to(device)
        encode_ours = partial(service.forward, net=net, task="t", x=ids, probabilities=False)
    else:
        arch = get_architecture("text-encoder").validate({"kind": "text-encoder"})
        net = network("minilm_last2", False, device)
        encode_ours = lambda: service.forward(  # noqa: E731
            net=net, task="t", x=service.model_inputs(architecture=arch, inputs=sentences), probabilities=False)
    ours = median_s(encode_ours, device, sizes["repeats"])
    entry: dict[str, Any] = {"texts": len(sentences), "ours_texts_per_s": len(sentences) / ours}
    if quick:
        entry["sentence_transformers"] = "not run: the quick profile's stand-in is not a sentence-transformers model"
        return entry
    from app.architectures.text import _hide_broken_torchvision, model_directory

    _hide_broken_torchvision()
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_directory(arch)), device=str(device))
    reference_s = median_s(lambda: reference.encode(sentences, batch_size=256), device, sizes["repeats"])
    entry["sentence_transformers_texts_per_s"] = len(sentences) / reference_s
    entry["ours_vs_sentence_transformers"] = reference_s / ours
    return entry


def predict_images(device: torch.device, sizes: dict, quick: bool) -> dict[str, Any]:
    net = network("efficientnet_last2", quick, device)
    x = case_inputs(net, sizes["predict_images"])
    seconds = median_s(partial(service.forward, net=net, task="t", x=x, probabilities=False), device, sizes["repeats"])
    return {"images": x.shape[0], "image_size": net.input_shape[-1], "ours_images_per_s": x.shape[0] / seconds}


# --- 4. over HTTP ---------------------------------------------------------------------------------


def _learn(http: httpx.Client, quick: bool) -> None:
    """The model `speed` with one learned task "t" (an MLP on arrays for the quick profile, else MiniLM)."""
    from scripts.make_examples import TRAIN_FRAMES, jsonl, text_records

    if quick:
        architecture = {"kind": "mlp", "input_shape": [8], "hidden": [16]}
        x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=(x[:, 0] > 0).astype(np.int64))
        train, name = buffer.getvalue(), "train.npz"
    else:
        architecture = {"kind": "text-encoder", "trainable": {"last": 2}}
        train, name = jsonl(text_records(["animal", "vehicle"], TRAIN_FRAMES)), "train.jsonl"
    _ok(http.post("/v1/models", json={"name": "speed", "architecture": architecture}), 201)
    dataset = _ok(http.post("/v1/datasets", files={"file": (name, train)}), 201)["id"]
    job = _ok(http.post("/v1/models/speed/tasks", json={"task": "t", "train": {"dataset": dataset}, "epochs": 1,
                                                         "batch_size": 8, "lambda": 0.0}), 202)
    finished = wait_job(http, job["id"])
    if finished["state"] != "succeeded":
        raise RuntimeError(f"the model's job ended {finished['state']}: {finished['error']}")


def _rate(url: str, bodies: list[dict], clients: int) -> dict[str, float]:
    """Rows per second and request latencies with `clients` concurrent clients sending `bodies`."""
    def send(body: dict, http: httpx.Client) -> float:
        started = time.perf_counter()
        _ok(http.post("/v1/models/speed/predict", json=body), 200)
        return time.perf_counter() - started

    with httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        send(bodies[0], http)  # warm: the network is loaded and cached
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            latencies = list(pool.map(lambda b: send(b, http), bodies))
        wall = time.perf_counter() - started
    rows = sum(len(b.get("texts", b.get("inputs", []))) for b in bodies)
    return {"rows_per_s": rows / wall, "requests": len(bodies), "p50_s": statistics.median(latencies),
            "p99_s": float(np.quantile(latencies, 0.99))}


def http_section(device: torch.device, sizes: dict, quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        for sharing in ("on", "off"):
            env = {"LIFELONG_PREDICT_DEVICE": str(device)} | ({} if sharing == "on" else
                                                              {"LIFELONG_PREDICT_BATCH_ROWS": "1"})
            running = RunningService(Path(root), device, env)
            try:
                running.wait_healthy()
                if sharing == "on":  # the first server learns the model; the second reads the same var dir
                    with httpx.Client(base_url=running.url, timeout=120) as http:
                        _learn(http, quick)
                body = _body_of(quick)
                n = sizes["http_requests"]
                results[sharing] = {
                    "one_client_64_rows": _rate(running.url, [body(64, i) for i in range(n)], 1),
                    "32_clients_64_rows": _rate(running.url, [body(64, i) for i in range(2 * n)], 32),
                    "32_clients_1_row": _rate(running.url, [body(1, i) for i in range(8 * n)], 32),
                    "lone_1_row": _rate(running.url, [body(1, i) for i in range(2 * n)], 1),
                }
            finally:
                running.close()
    results["32_clients_1_row_on_vs_off"] = (results["on"]["32_clients_1_row"]["rows_per_s"]
                                            / results["off"]["32_clients_1_row"]["rows_per_s"])
    results["lone_1_row_p50_on_vs_off"] = results["on"]["lone_1_row"]["p50_s"] / results["off"]["lone_1_row"]["p50_s"]
    return results


def _body_of(quick: bool) -> Callable[[int, int], dict]:
    """A function making a seeded request body of n rows for the model `speed`."""
    if quick:
        return lambda n, seed: {"task": "t", "inputs": np.random.default_rng(seed).normal(size=(n, 8)).tolist()}
    return lambda n, seed: {"task": "t", "texts": texts(n, seed)}


# --- the run --------------------------------------------------------------------------------------


def run(device: torch.device, quick: bool, sections: list[str],
        save: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
    """Every section asked for, in order; `save` is handed the results after each (a run cut short keeps them)."""
    sizes = PROFILES["quick" if quick else device.type if device.type in PROFILES else "cpu"]
    results: dict[str, Any] = {"device": str(device), "profile": "quick" if quick else "full", "sizes": sizes,
                               "environment": environment(device) | {"weights": _weights_note(quick)}}
    steps: dict[str, Callable[[], Any]] = {
        "omega": lambda: {case: omega_case(case, device, sizes, quick) for case in SPECS},
        "train": lambda: {case: train_case(case, device, sizes, quick) for case in ("minilm_last2",
                                                                                     "efficientnet_last2")},
        "predict": lambda: {"texts": predict_texts(device, sizes, quick), "images": predict_images(device, sizes,
                                                                                                  quick)},
        "http": lambda: http_section(device, sizes, quick),
    }
    for name in sections:
        started = time.perf_counter()
        try:
            results[name] = steps[name]()
        except Exception as error:  # noqa: BLE001 - a section that cannot run says why; the others still run
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results.setdefault("section_seconds", {})[name] = time.perf_counter() - started
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
        save(results)
    return results


def _weights_note(quick: bool) -> str:
    if quick:
        return "tiny random stand-ins (benchmarks/standins.py)"
    return os.environ.get("LIFELONG_BENCH_WEIGHTS", "pretrained packages as installed")


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [f"# Speed on {results['device']} ({results['profile']} profile)", "",
             f"Environment: `{json.dumps(env)}`", "", "| figure | value |", "|---|---|"]
    for case, entry in results.get("omega", {}).items():
        if isinstance(entry, dict) and "exact" in entry:
            lines.append(f"| Ω exact / batch, {case} ({entry['rows']} rows) | {entry['exact_vs_batch']:.2f} "
                         f"({entry['exact']['samples_per_s']:.0f} vs {entry['batch']['samples_per_s']:.0f} samples/s;"
                         f" vmap {entry['vmap']['samples_per_s']:.1f}) |")
            if "exact_depthwise_grouped" in entry:
                default = entry["depthwise_form_default"]
                lines.append(f"| Ω exact, {case}, depthwise grouped · shifted (default {default})"
                             f" | {entry['exact_depthwise_grouped']['samples_per_s']:.0f} · "
                             f"{entry['exact_depthwise_shifted']['samples_per_s']:.0f} samples/s |")
    for case, entry in results.get("train", {}).items():
        if isinstance(entry, dict) and "seconds_per_step" in entry:
            lines.append(f"| train step {case} ({entry['precision']}, batch {entry['batch_size']}): fine-tune / plain"
                         f" · MAS / fine-tune | {entry['finetune_vs_plain']:.2f} · {entry['mas_vs_finetune']:.2f} |")
    predict = results.get("predict", {})
    if "texts" in predict and "ours_texts_per_s" in predict["texts"]:
        t = predict["texts"]
        versus = (f"; sentence-transformers {t['sentence_transformers_texts_per_s']:.0f}, ratio "
                  f"{t['ours_vs_sentence_transformers']:.2f}" if "ours_vs_sentence_transformers" in t else "")
        lines.append(f"| text predictions in-process ({t['texts']} texts) | {t['ours_texts_per_s']:.0f} texts/s"
                     f"{versus} |")
    if "images" in predict and "ours_images_per_s" in predict["images"]:
        lines.append(f"| image predictions in-process | {predict['images']['ours_images_per_s']:.0f} images/s |")
    http = results.get("http", {})
    for sharing in ("on", "off"):
        for name, figure in http.get(sharing, {}).items():
            label = name.replace("_", " ")
            lines.append(f"| HTTP, shared passes {sharing}, {label} | {figure['rows_per_s']:.0f} rows/s,"
                         f" p50 {figure['p50_s'] * 1000:.1f} ms, p99 {figure['p99_s'] * 1000:.1f} ms |")
    if "32_clients_1_row_on_vs_off" in http:
        lines.append(f"| HTTP 32 one-row clients, shared / not shared | {http['32_clients_1_row_on_vs_off']:.2f} |")
        lines.append(f"| HTTP lone one-row p50, shared / not shared | {http['lone_1_row_p50_on_vs_off']:.2f} |")
    errors = [f"- {name}: {entry['error']}" for name, entry in results.items()
              if isinstance(entry, dict) and "error" in entry]
    if errors:
        lines += ["", "Sections that failed:", *errors]
    seconds = results.get("section_seconds", {})
    lines += ["", "Section wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu [cuda]")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for the results [{RESULTS}]")
    parser.add_argument("--quick", action="store_true", help="tiny stand-ins and a few rows (the CI smoke profile)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    device = pick_checked_device(args.device)
    sections = [s for s in args.sections.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_speed_{device.type}" + ("_quick" if args.quick else "")

    started = provenance(argv)

    def save(results: dict[str, Any]) -> None:
        write_results(args.out, stem, results, markdown(results), started=started)

    results = run(device, args.quick, sections, save)
    print(markdown(results))
    return 1 if any(isinstance(v, dict) and "error" in v for v in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
