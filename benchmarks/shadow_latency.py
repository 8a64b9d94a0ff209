"""Does a shadow slow production down? 1-row prediction latency with and without one, in one run.

    python -m benchmarks.shadow_latency                  # writes benchmarks/results/shadow_latency.*
    python -m benchmarks.shadow_latency --requests 60 --out /tmp/x   # a quick look

A real API and worker (the service's default settings) and two models trained alike on one digits task,
each with a second version kept as `candidate`. One model's candidate shadows production at fraction 1.0:
every prediction is replayed on it by the API's shadow thread. 1-row JSON predictions to the two models
are taken in alternating rounds (benchmarks/service_speed.py's `_latencies`), so the machine's drift
falls on both alike, and the report gives p50 and p99 of each and their ratio, and what the shadow counted
(every sampled row compared, or dropped and counted).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from datetime import datetime
from pathlib import Path

import httpx
import torch

from benchmarks.provenance import provenance, write_results
from benchmarks.service_speed import DEFAULTS, _latencies, _wait_job
from tests.conftest import npz_bytes, start_service, wait_for

RESULTS = Path(__file__).parent / "results"
ARCH = {"kind": "mlp", "input_shape": [64], "hidden": [256, 256]}
TARGET_P50_RATIO = 1.1  # "never adding latency beyond noise": within the run-to-run spread of a p50 here


def _model(http: httpx.Client, name: str, train: str, second: str) -> None:
    """Version 1 in production, version 2 (a second task) kept as candidate."""
    http.post("/v1/models", json={"name": name, "architecture": ARCH, "promotion": {"policy": "manual"}})
    for task, dataset in (("first", train), ("second", second)):
        job = http.post(f"/v1/models/{name}/tasks", json={"task": task, "train": {"dataset": dataset},
                                                          "epochs": 2}).json()
        _wait_job(http, job["id"])
        if task == "first":
            http.put(f"/v1/models/{name}/aliases/production", json={"version": 1}).raise_for_status()


def measure(requests: int) -> dict:
    from app.mas.data import split_digits

    first, second = split_digits(2, seed=0)
    service = start_service(Path(tempfile.mkdtemp(prefix="lifelong-shadow-")) / "var", env=DEFAULTS)
    try:
        with service.client() as http:
            upload = lambda t: http.post("/v1/datasets", files={"file": ("t.npz", npz_bytes(  # noqa: E731
                x=t.x_train.numpy(), y=t.y_train.numpy()))}).json()["id"]
            train, other = upload(first), upload(second)
            for name in ("plain", "shadowed"):
                _model(http, name, train, other)
            http.put("/v1/models/shadowed/shadow", json={"alias": "candidate", "fraction": 1.0}).raise_for_status()
            body = {"task": "first", "inputs": first.x_test[:1].tolist()}
            latencies = _latencies({"without": (http, "/v1/models/plain/predict"),
                                    "with_shadow": (http, "/v1/models/shadowed/predict")}, body, requests)
            sent = requests + 20  # _latencies warms each target up with 20 requests
            shadow = wait_for(lambda: (s := http.get("/v1/models/shadowed/shadow").json())["compared"]
                              + s["dropped"] >= sent and s, deadline_s=60, what="the shadow's counts")
    finally:
        service.close()  # the figures are taken: no warm worker shutdown to wait for (tests/conftest.py)
    ratio = latencies["with_shadow"]["p50_ms"] / latencies["without"]["p50_ms"]
    return {"environment": {"torch": torch.__version__, "cpu": platform.machine(), "date": datetime.now().isoformat()},
            "requests": requests, "latency": latencies, "p50_ratio": ratio,
            "shadow": {key: shadow[key] for key in ("compared", "dropped", "agreement")}, "sent": sent,
            "target": {"p50_ratio_at_most": TARGET_P50_RATIO, "holds": ratio <= TARGET_P50_RATIO,
                       "nothing_lost": shadow["compared"] + shadow["dropped"] == sent}}


def markdown(results: dict) -> str:
    without, shadowed = results["latency"]["without"], results["latency"]["with_shadow"]
    target = results["target"]
    return "\n".join([
        "# Production latency with a shadow", "",
        f"1-row JSON predictions over keep-alive HTTP, {results['requests']} to each model in alternating rounds"
        f" ({results['environment']['cpu']}, torch {results['environment']['torch']},"
        f" {results['environment']['date']}).",
        "", "| model | p50 ms | p99 ms |", "|---|---:|---:|",
        f"| no shadow | {without['p50_ms']:.2f} | {without['p99_ms']:.2f} |",
        f"| shadow at fraction 1.0 | {shadowed['p50_ms']:.2f} | {shadowed['p99_ms']:.2f} |", "",
        f"- p50 with / without: {results['p50_ratio']:.3f} (target ≤ {target['p50_ratio_at_most']}): "
        f"{'holds' if target['holds'] else '**does not hold**'}",
        f"- the shadow compared {results['shadow']['compared']} and dropped {results['shadow']['dropped']} of the"
        f" {results['sent']} rows production answered: {'nothing lost' if target['nothing_lost'] else '**rows lost**'}",
        "", "Command: `python -m benchmarks.shadow_latency`.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="1-row requests to each model [400]")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = provenance()
    results = measure(args.requests)
    write_results(args.out, "shadow_latency", results, markdown(results), started=started, indent=2)
    print((args.out / "shadow_latency.md").read_text())


if __name__ == "__main__":
    main()
