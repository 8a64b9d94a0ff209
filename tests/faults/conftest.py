"""Fixtures for the fault tests: services of their own with fast heartbeats, a way to find the worker's
pool process, an integrity check of everything stored, and a tally of what was tried.

The tally (requests sent, faults injected, jobs lost, versions corrupted) is written to the file
named by `LIFELONG_RELIABILITY_REPORT`, when set, at the end of the session
(`LIFELONG_RELIABILITY_REPORT=benchmarks/results/reliability.md .venv/bin/python -m pytest -q tests/faults
tests/security`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api, DigitsTask, Service

FAULT_ENV = {
    "LIFELONG_HEARTBEAT_INTERVAL_S": "0.2",
    "LIFELONG_JOB_STALE_AFTER_S": "3",
    "LIFELONG_SWEEP_INTERVAL_S": "0.5",
}
TALLY: Counter[str] = Counter()
LOAD: dict[str, dict[str, float]] = {}  # the load test's figures, by kind of client (tests/faults/test_load.py)
SCENARIOS: list[str] = []


def pool_processes(worker_pid: int) -> list[int]:
    """The worker's pool (child) processes, which run the jobs."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == worker_pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def check_integrity(var_dir: Path) -> list[str]:
    """Everything wrong with the stored history: versions whose blobs are missing or altered, broken
    lineage, a parent other than the head its job trained on, heads on missing versions, versions of
    jobs that did not succeed."""
    problems = []
    blobs = var_dir / "blobs"
    with sqlite3.connect(var_dir / "lifelong.sqlite3") as db:
        versions = db.execute("SELECT model_id, number, parent, theta_blob, theta_parts, importance_parts, job_id"
                              " FROM versions").fetchall()
        numbers = {(m, n) for m, n, *_ in versions}
        for model_id, number, parent, theta, theta_parts, importance_parts, job_id in versions:
            names = [theta, *json.loads(theta_parts or "{}").values(),
                     *(part["blob"] for part in json.loads(importance_parts))]
            for name in names:
                path = blobs / name[:2] / name
                if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != name:
                    problems.append(f"model {model_id} version {number}: blob {name} missing or altered")
            if parent is not None and ((model_id, parent) not in numbers or parent >= number):
                problems.append(f"model {model_id} version {number}: bad parent {parent}")
            if job_id is not None:
                job = db.execute("SELECT state, base_version FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if job is not None and job[0] != "succeeded":
                    problems.append(f"version {number} was written by job {job_id}, which {job[0]}")
                if job is not None and job[1] != parent:
                    problems.append(f"version {number} has parent {parent}, but its job trained on {job[1]}")
        for model_id, head in db.execute("SELECT id, head FROM models"):
            if (model_id, head) not in numbers:
                problems.append(f"model {model_id}: head {head} is not a stored version")
    return problems


def count_requests(request: httpx.Request) -> None:
    TALLY["requests sent"] += 1


@pytest.fixture
def fault_api(api_factory: Callable[[Service], Api]) -> Callable[[Service], Api]:
    """An `Api` whose requests count in the reliability tally."""

    def make(running: Service) -> Api:
        made = api_factory(running)
        made.http.event_hooks["request"].append(count_requests)
        return made

    return make


@pytest.fixture
def tally() -> Counter[str]:
    return TALLY


@pytest.fixture(scope="session", autouse=True)
def _write_reliability_report() -> Iterator[None]:
    target = os.environ.get("LIFELONG_RELIABILITY_REPORT")
    if target and os.environ.get("PYTEST_XDIST_WORKER"):
        # Each xdist worker would count only its own scenarios and overwrite the others' report.
        pytest.exit("LIFELONG_RELIABILITY_REPORT counts every scenario of one run: run it without -n", returncode=4)
    yield
    if target and TALLY:
        write_report(Path(target))


def write_report(path: Path) -> None:
    lines = [
        "# Reliability: faults injected into the real service, and what survived",
        "",
        f"Written by the test suite on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC:",
        "",
        f"    LIFELONG_LOAD_SECONDS={os.environ.get('LIFELONG_LOAD_SECONDS', '5')}"
        " LIFELONG_RELIABILITY_REPORT=benchmarks/results/reliability.md LIFELONG_FUZZ_EXAMPLES="
        f"{os.environ.get('LIFELONG_FUZZ_EXAMPLES', '8')} \\",
        "      .venv/bin/python -m pytest -q tests/faults tests/security",
        "",
        "Every scenario runs real processes (uvicorn API, Celery worker, SQLite, file broker or Redis) over its own",
        "directory; after each, every stored version's blobs are re-hashed against their names, its lineage is",
        "checked (parent exists, parent = the head its job trained on, only succeeded jobs wrote versions) and",
        "every head is checked to name a stored version. A job is *lost* if it ended in any state other than the",
        "one the scenario demands (succeeded after a retry, or failed with a reason, never stuck `running`), and",
        "the scenario's test fails if one is; *corrupted* counts versions failing any check above. schemathesis",
        "runs every operation of the live OpenAPI (with an admin key) with every check (`--checks all`, the",
        "stateful phase included: status codes, response schemas, content types, headers, use after free …).",
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in sorted(TALLY.items())),
        "",
        *load_section(),
        "## Scenarios",
        "",
        *(f"- {line}" for line in SCENARIOS),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def load_section() -> list[str]:
    if not LOAD:
        return []
    kinds = list(LOAD)
    figures = list(LOAD[kinds[0]])
    seconds = os.environ.get("LIFELONG_LOAD_SECONDS", "5")
    return ["## Under load", "",
            f"tests/faults/test_load.py: 200 clients of one-row GET predictions for {seconds} s against the default",
            "bounds (LIFELONG_PREDICT_WORKERS 8 running, LIFELONG_PREDICT_QUEUE 64 waiting), from a process of",
            "their own on this machine, while the test probes /healthz and /readyz every 50 ms, on the API's port",
            "and on the health port (LIFELONG_HEALTH_PORT, answered by a process beside the API).", "",
            f"| figure | {' | '.join(kinds)} |", "|---|" + "---|" * len(kinds),
            *(f"| {name} | {' | '.join(_figure(LOAD[kind][name]) for kind in kinds)} |" for name in figures), ""]


def _figure(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}"


def finish_scenario(var_dir: Path, description: str, *, jobs_lost: int = 0) -> None:
    problems = check_integrity(var_dir)
    TALLY["versions corrupted"] += len(problems)
    TALLY["jobs lost"] += jobs_lost
    TALLY["scenarios"] += 1
    SCENARIOS.append(description)
    assert problems == []


__all__ = ["DigitsTask", "FAULT_ENV", "check_integrity", "finish_scenario", "pool_processes"]
