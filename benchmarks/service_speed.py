"""The service's part of the speed benchmark: HTTP predictions, job pickup, storage per version.

Starts a real API and worker over a temporary var dir (the same launcher as the e2e tests, with the
service's default settings), trains one small task so there is a model to ask, and measures:
- 1-row prediction latency p50/p99 over keep-alive HTTP, next to a bare FastAPI endpoint that only
  parses the same JSON body (benchmarks/bare_endpoint.py), the two taken in alternating rounds, and a
  bare in-process torch forward;
- throughput in rows/s for JSON batches of 256 rows and raw `.npy` bodies of 256 and 4096 rows;
- job pickup latency (the job row's started_at − created_at) on the embedded file broker, and on
  Redis when `redis-server` is on PATH (`--brokers` names one or both);
- bytes added to the blob store by a train version and by an importance-refresh version.
"""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import torch

from tests.conftest import free_port, npz_bytes, start_service, wait_for

ARCH = {"kind": "mlp", "input_shape": [64], "hidden": [256, 256]}
# The service's own defaults, not the fast polling the tests use.
DEFAULTS = {"LIFELONG_BROKER_POLL_S": "0.2", "LIFELONG_PROGRESS_INTERVAL_S": "0.25",
            "LIFELONG_CANCEL_POLL_S": "0.5", "LIFELONG_MAX_UPLOAD_BYTES": str(256 << 20)}
TARGETS = {"p50_vs_bare": 1.2, "json_rows_per_s": 10_000, "npy_rows_per_s": 50_000}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    return buffer.getvalue()


ROUNDS = 8  # the 1-row latencies of the service and the bare endpoint are taken in turns, in this many rounds


def _latencies(targets: dict[str, tuple[httpx.Client, str]], body: dict, n: int) -> dict[str, dict[str, float]]:
    """p50/p99 of n 1-row requests to each target, taken in alternating rounds: on a shared machine the
    pace drifts over a minute (other processes, CPU frequency), and a ratio of two figures measured one
    after the other measured the drift as much as the endpoints (run to run ±0.15 on this 2-core machine)."""
    for http, url in targets.values():
        for _ in range(20):
            http.post(url, json=body).raise_for_status()
    times: dict[str, list[float]] = {name: [] for name in targets}
    for round_ in range(ROUNDS):
        for name, (http, url) in targets.items():
            for _ in range(n // ROUNDS + (round_ < n % ROUNDS)):
                start = time.perf_counter()
                http.post(url, json=body).raise_for_status()
                times[name].append(time.perf_counter() - start)
    out = {}
    for name, values in times.items():
        values.sort()
        out[name] = {"p50_ms": 1e3 * statistics.median(values), "p99_ms": 1e3 * values[int(0.99 * (len(values) - 1))],
                     "requests": len(values), "rounds": ROUNDS}
    return out


def _throughput(http: httpx.Client, send, rows: int, n: int) -> dict[str, float]:
    send().raise_for_status()
    start = time.perf_counter()
    for _ in range(n):
        send().raise_for_status()
    seconds = time.perf_counter() - start
    return {"rows_per_s": rows * n / seconds, "requests": n, "rows_per_request": rows}


def _blob_bytes(var_dir: Path) -> int:
    return sum(p.stat().st_size for p in (var_dir / "blobs").rglob("*") if p.is_file())


def _wait_job(http: httpx.Client, job_id: str) -> dict:
    def finished() -> dict | None:
        job = http.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, deadline_s=300, what=f"job {job_id}")
    assert job["state"] == "succeeded", job
    return job


def _pickup(http: httpx.Client, model: str, dataset: str, n: int) -> dict[str, float]:
    """started_at − created_at of n small train jobs, one after the other (an idle worker each time)."""
    delays = []
    for i in range(n):
        job = http.post(f"/v1/models/{model}/tasks", json={
            "task": f"pickup-{i}", "train": {"dataset": dataset}, "epochs": 1, "importance": {"on": "none"},
            "method": "finetune"}).json()
        done = _wait_job(http, job["id"])
        delays.append((datetime.fromisoformat(done["started_at"]) - datetime.fromisoformat(done["created_at"]))
                      .total_seconds())
    return {"median_s": statistics.median(delays), "max_s": max(delays), "jobs": n}


def _service_figures(var_dir: Path, env: dict[str, str], profile: str, with_predictions: bool) -> dict:
    from app.mas.data import split_digits

    small = profile == "smoke"
    service = start_service(var_dir, env={**DEFAULTS, **env})
    figures: dict = {}
    try:
        with service.client() as http:
            task = split_digits(1, seed=0)[0]
            x, y = task.x_train.numpy(), task.y_train.numpy()
            http.post("/v1/models", json={"name": "bench", "architecture": ARCH, "seed": 0}).raise_for_status()
            dataset = http.post("/v1/datasets", files={"file": ("t.npz", npz_bytes(x=x, y=y))}).json()["id"]
            before = _blob_bytes(var_dir)
            job = http.post("/v1/models/bench/tasks", json={"task": "digits", "train": {"dataset": dataset},
                                                             "epochs": 2}).json()
            _wait_job(http, job["id"])
            after_train = _blob_bytes(var_dir)
            job = http.post("/v1/models/bench/importance", json={"data": {"dataset": dataset}}).json()
            _wait_job(http, job["id"])
            figures["storage"] = {"train_version_bytes": after_train - before,
                                  "importance_version_bytes": _blob_bytes(var_dir) - after_train,
                                  "theta_bytes": sum(4 * p for p in (64 * 256 + 256, 256 * 256 + 256, 256 * 2 + 2))}
            figures["pickup"] = _pickup(http, "bench", dataset, 2 if small else 5)
            if with_predictions:
                figures["predictions"] = _predictions(http, x, small)
    finally:
        service.close()  # the figures are taken: no warm worker shutdown to wait for (tests/conftest.py)
    return figures


def _predictions(http: httpx.Client, x: np.ndarray, small: bool) -> dict:
    n = 30 if small else 400
    rows = np.resize(x, (4096, 64)).astype(np.float32)
    one = {"task": "digits", "inputs": rows[:1].tolist()}
    batch = {"task": "digits", "inputs": rows[:256].tolist()}
    url = "/v1/models/bench/predict"
    out: dict = {}
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.bare_endpoint:app", "--port", str(port),
                             "--log-level", "warning"], cwd=Path(__file__).resolve().parents[1])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as bare_http:
            wait_for(lambda: _answers(bare_http), deadline_s=30, what="the bare endpoint")
            out |= _latencies({"one_row": (http, url), "bare_one_row": (bare_http, "/predict")}, one, n)
            out["bare_json_256"] = _throughput(bare_http, lambda: bare_http.post("/predict", json=batch), 256, n // 4)
    finally:
        bare.terminate()
        bare.wait()
    out["json_256"] = _throughput(http, lambda: http.post(url, json=batch), 256, n // 4)
    for size in (256, 4096):
        body = _npy(rows[:size])
        out[f"npy_{size}"] = _throughput(
            http, lambda body=body: http.post(url, params={"task": "digits"}, content=body,
                                              headers={"content-type": "application/x-npy"}), size, n // 4)
    from app.mas.networks import build_network

    net = build_network(ARCH, 0)
    net.add_head("digits", 2, 0)
    net.eval()
    tensor = torch.from_numpy(rows)
    for size in (1, 256):
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(n):
                net(tensor[:size], "digits")
        out[f"torch_forward_{size}"] = {"ms": 1e3 * (time.perf_counter() - start) / n,
                                        "rows_per_s": size * n / (time.perf_counter() - start)}
    return out


def _answers(http: httpx.Client) -> bool:
    try:
        return http.post("/predict", json={"task": "x", "inputs": []}).status_code == 200
    except httpx.HTTPError:
        return False


BROKERS = ("embedded", "redis")


@contextmanager
def _broker_settings(broker: str) -> Iterator[dict[str, str] | None]:
    """The service's settings for one broker: the embedded file broker needs none; Redis is a fresh
    `redis-server` on a free port for the measurement (None when no redis-server is on PATH)."""
    redis = shutil.which("redis-server")
    if broker == "embedded" or not redis:
        yield {} if broker == "embedded" else None
        return
    port = free_port()
    server = subprocess.Popen([redis, "--port", str(port), "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    try:
        yield {"LIFELONG_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    finally:
        server.terminate()
        server.wait()


def measure_service(profile: str, brokers: Sequence[str] = BROKERS) -> dict:
    """One service per broker, in the order given; the predictions are taken on the first one (they do not
    go through the broker), job pickup and storage on each."""
    root = Path(tempfile.mkdtemp(prefix="lifelong-speed-"))
    results: dict = {}
    try:
        for broker in brokers:
            with _broker_settings(broker) as settings:
                if settings is not None:
                    results[broker] = _service_figures(root / broker / "var", settings, profile,
                                                       with_predictions=not results)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"results": results, "markdown": [_markdown(results, brokers)], "verdicts": _verdicts(results)}


def _first(results: dict) -> dict:
    """The figures of the service the predictions were taken on."""
    return next(iter(results.values()))


def _markdown(results: dict, brokers: Sequence[str]) -> str:
    p = _first(results)["predictions"]
    lines = ["## Predictions over HTTP (MLP 64-256-256, keep-alive, one client)", "",
             "| figure | the service | bare FastAPI endpoint (parse only) | bare torch forward |", "|---|---|---|---|",
             f"| 1 row, p50 ms | {p['one_row']['p50_ms']:.2f} | {p['bare_one_row']['p50_ms']:.2f} | "
             f"{p['torch_forward_1']['ms']:.3f} |",
             f"| 1 row, p99 ms | {p['one_row']['p99_ms']:.2f} | {p['bare_one_row']['p99_ms']:.2f} | |",
             f"| JSON, 256-row batches, rows/s | {p['json_256']['rows_per_s']:,.0f} | "
             f"{p['bare_json_256']['rows_per_s']:,.0f} | {p['torch_forward_256']['rows_per_s']:,.0f} |",
             f"| .npy body, 256-row batches, rows/s | {p['npy_256']['rows_per_s']:,.0f} | | |",
             f"| .npy body, 4096-row batches, rows/s | {p['npy_4096']['rows_per_s']:,.0f} | | |",
             "", "## Jobs and storage", "", "| figure | embedded file broker | Redis |", "|---|---|---|"]
    for label, key in (("job pickup, median ms", "median_s"), ("job pickup, max ms", "max_s")):
        cells = [f"{1e3 * results[broker]['pickup'][key]:.0f}" if broker in results
                 else "not measured (no redis-server)" if broker in brokers else "not measured"
                 for broker in BROKERS]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    storage = _first(results)["storage"]
    lines += [f"| bytes added by a train version | {storage['train_version_bytes']:,} | |",
              f"| bytes added by an importance refresh (θ shared) | {storage['importance_version_bytes']:,} | |",
              f"| θ alone, float32 | {storage['theta_bytes']:,} | |"]
    return "\n".join(lines)


def _verdicts(results: dict) -> list[tuple[str, float, str, bool]]:
    p = _first(results)["predictions"]
    ratio = p["one_row"]["p50_ms"] / p["bare_one_row"]["p50_ms"]
    storage = _first(results)["storage"]
    return [
        ("1-row p50 / bare endpoint p50", ratio, f"≤ {TARGETS['p50_vs_bare']}", ratio <= TARGETS["p50_vs_bare"]),
        ("JSON rows/s, 256-row batches", p["json_256"]["rows_per_s"], f"≥ {TARGETS['json_rows_per_s']:,}",
         p["json_256"]["rows_per_s"] >= TARGETS["json_rows_per_s"]),
        (".npy rows/s, 4096-row batches", p["npy_4096"]["rows_per_s"], f"≥ {TARGETS['npy_rows_per_s']:,}",
         p["npy_4096"]["rows_per_s"] >= TARGETS["npy_rows_per_s"]),
        ("importance refresh bytes / train version bytes", storage["importance_version_bytes"]
         / storage["train_version_bytes"], "< 1 (θ shared)",
         storage["importance_version_bytes"] < storage["train_version_bytes"]),
    ]
