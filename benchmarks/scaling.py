"""Jobs per minute of the scaled deployment with 1 and 2 workers, and what the database sees per job.

Each configuration is a fresh native cluster (scripts/cluster.py: PostgreSQL, Redis, the API and
N worker processes on this machine, blobs in a local directory). The workload is the same each
time: `--jobs` independent models, one train job each (split-digits task 1, an MLP 64-256-256,
`--epochs` epochs, Ω measured after), all submitted at once over HTTP; the clock runs from the
first submission to the last job's finish (its `finished_at`). PostgreSQL's own counters (pg_stat_database) give the
transactions and rows written during the run; they include the client's polls (counted and listed).

    .venv/bin/python -m benchmarks.scaling            # writes benchmarks/results/scaling.{json,md}
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from app.mas.data import split_digits
from benchmarks.provenance import provenance, write_results
from scripts.cluster import Cluster, start_cluster
from tests.conftest import npz_bytes

RESULTS = Path(__file__).parent / "results"
CONFIGS = [  # (workers, torch threads per worker)
    (1, 1),
    (1, 2),
    (2, 1),
]
POLL_S = 0.5


def _database_counters(cluster: Cluster) -> dict[str, int]:
    url = cluster.env["LIFELONG_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_fetched FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return dict(zip(("commits", "rows_inserted", "rows_updated", "rows_fetched"), row, strict=True))


def _run_workload(cluster: Cluster, jobs: int, epochs: int) -> dict[str, Any]:
    task = split_digits(n_tasks=5, seed=0)[0]
    with httpx.Client(base_url=cluster.api_url, timeout=60.0) as http:
        train = http.post("/v1/datasets", files={"file": ("train.npz", npz_bytes(x=task.x_train.numpy(),
                                                                             y=task.y_train.numpy()))}).json()
        evaluation = http.post("/v1/datasets", files={"file": ("eval.npz", npz_bytes(x=task.x_test.numpy(),
                                                                               y=task.y_test.numpy()))}).json()
        names = [f"scale-{i}" for i in range(jobs)]
        for name in names:
            architecture = {"kind": "mlp", "input_shape": [64], "hidden": [256, 256]}
            assert http.post("/v1/models", json={"name": name, "architecture": architecture}).status_code == 201
        time.sleep(2.0)  # let the stats collector settle before reading the counters
        before = _database_counters(cluster)
        body = {"task": task.name, "train": {"dataset": train["id"]}, "eval": {"dataset": evaluation["id"]},
                "epochs": epochs, "batch_size": 32, "lr": 0.05}
        start = time.time()
        ids = [http.post(f"/v1/models/{name}/tasks", json=body).json()["id"] for name in names]
        polls = 0
        while True:
            time.sleep(POLL_S)
            polls += 1
            listed = http.get("/v1/jobs", params={"limit": jobs}).json()
            if all(job["state"] in ("succeeded", "failed", "cancelled") for job in listed):
                break
        finished = [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]
    # The clock stops at the last job's own finish time, not at the poll that saw it (same host, same clock).
    elapsed = max(datetime.fromisoformat(job["finished_at"]).timestamp() for job in finished) - start
    time.sleep(2.0)
    after = _database_counters(cluster)
    assert all(job["state"] == "succeeded" for job in finished), finished
    run_seconds = [
        (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
        for job in finished
    ]
    per_worker: dict[str, int] = {}
    for job in finished:
        per_worker[job["worker"]] = per_worker.get(job["worker"], 0) + 1
    delta = {key: (after[key] - before[key]) / jobs for key in after}
    return {
        "jobs": jobs, "seconds": elapsed, "jobs_per_minute": 60.0 * jobs / elapsed,
        "job_run_seconds_median": float(np.median(run_seconds)), "jobs_per_worker": per_worker,
        "database_per_job": delta, "client_polls": polls,
    }


def measure(jobs: int, epochs: int, repeats: int,
            configs: list[tuple[int, int]] = CONFIGS) -> list[dict[str, Any]]:
    """Each configuration `repeats` times, each on a fresh cluster; jobs/min as median and range."""
    rows = []
    for workers, threads in configs:
        runs = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="lifelong-scaling-") as root:
                cluster = start_cluster(Path(root), workers=workers, s3=False,
                                        extra_env={"LIFELONG_TORCH_THREADS": str(threads)})
                try:
                    runs.append(_run_workload(cluster, jobs, epochs))
                finally:
                    cluster.stop()
        rates = sorted(run["jobs_per_minute"] for run in runs)
        middle = runs[[run["jobs_per_minute"] for run in runs].index(rates[len(rates) // 2])]
        rows.append({"workers": workers, "torch_threads": threads, **middle,
                     "jobs_per_minute_min": rates[0], "jobs_per_minute_max": rates[-1], "runs": runs})
        print(f"{workers} worker(s) x {threads} thread(s): {rates} jobs/min", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], jobs: int, epochs: int) -> str:
    lines = [
        f"Scaling on this machine ({os.cpu_count()} cores, {platform.machine()}): {jobs} independent train jobs"
        f" (split-digits task 1, MLP 64-256-256, {epochs} epochs + Ω), PostgreSQL + Redis, native processes.",
        "",
        "| workers × torch threads | jobs/min, median (min–max) | median job run (s) | jobs per worker |"
        " DB commits/job | rows written/job |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        db = row["database_per_job"]
        spread = ", ".join(f"{name.split('@')[0]}: {count}" for name, count in sorted(row["jobs_per_worker"].items()))
        lines.append(
            f"| {row['workers']} × {row['torch_threads']} | {row['jobs_per_minute']:.1f}"
            f" ({row['jobs_per_minute_min']:.1f}–{row['jobs_per_minute_max']:.1f}) |"
            f" {row['job_run_seconds_median']:.2f} | {spread} | {db['commits']:.0f} |"
            f" {db['rows_inserted'] + db['rows_updated']:.0f} |"
        )
    lines += ["", "Jobs per worker, DB figures and job run time are those of the median run. DB commits include"
              f" the benchmark's own polls of the job list every {POLL_S} s"
              f" ({', '.join(str(row['client_polls']) for row in rows)} polls in those runs)."]
    return "\n".join(lines) + "\n"


def _configs(text: str) -> list[tuple[int, int]]:
    try:
        pairs = [tuple(int(n) for n in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WORKERSxTHREADS,… such as 2x1,1x2; got {text!r}") from None
    if any(len(pair) != 2 or min(pair) < 1 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected WORKERSxTHREADS,… such as 2x1,1x2; got {text!r}")
    return pairs  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--configs", type=_configs, default=CONFIGS,
                        help="workers×threads to run, e.g. 2x1,1x2 (default: " +
                             ",".join(f"{w}x{t}" for w, t in CONFIGS) + ")")
    args = parser.parse_args()
    started = provenance()
    rows = measure(args.jobs, args.epochs, args.repeats, args.configs)
    results = {"jobs": args.jobs, "epochs": args.epochs, "repeats": args.repeats, "rows": rows}
    write_results(args.out, "scaling", results, markdown(rows, args.jobs, args.epochs), started=started)
    print((args.out / "scaling.md").read_text())


if __name__ == "__main__":
    main()
