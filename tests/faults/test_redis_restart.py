"""The broker (Redis) restarted with jobs queued and running: no job lost, none run twice to completion.

Redis runs with an append-only file (as a production broker should), so the queued messages survive
its restart; the worker reconnects by itself. Each job must end `succeeded` with exactly one version
(a version is keyed by its job id and written once). Skipped where `redis-server` is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port, wait_for
from tests.faults.conftest import FAULT_ENV, finish_scenario

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not on PATH")


def start_redis(port: int, data_dir: Path) -> subprocess.Popen:
    data_dir.mkdir(exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
         "--appendonly", "yes", "--appendfsync", "always"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )

    def answers() -> bool:
        try:
            return redis.Redis(port=port, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    wait_for(answers, deadline_s=20, what="redis-server to answer")
    return process


def test_redis_restart_loses_no_job(service_factory, fault_api, tally, tmp_path) -> None:
    port = free_port()
    broker = start_redis(port, tmp_path / "redis")
    try:
        var_dir = tmp_path / "var"
        service = service_factory(var_dir, env={**FAULT_ENV, "LIFELONG_BROKER_URL": f"redis://127.0.0.1:{port}/0"})
        api = fault_api(service)
        models = [api.create_model(f"redis{i}") for i in range(3)]
        jobs = [api.submit_task(models[0], api.digits[0], epochs=150, batch_size=8)["id"]]
        api.wait_for(lambda: api.get(f"/v1/jobs/{jobs[0]}")["state"] == "running", deadline_s=60,
                     what="the first job to run")
        jobs += [api.submit_task(model, api.digits[1], epochs=2)["id"] for model in models[1:]]
        assert all(api.get(f"/v1/jobs/{job}")["state"] == "queued" for job in jobs[1:])

        broker.terminate()
        broker.wait(timeout=30)
        tally["faults injected: Redis restarted with jobs queued and running"] += 1
        assert api.http.get("/healthz").status_code == 200
        broker = start_redis(port, tmp_path / "redis")

        finished = [api.wait_job(job, deadline_s=120) for job in jobs]
        assert [job["state"] for job in finished] == ["succeeded"] * 3, finished
        assert [job["attempts"] for job in finished] == [1, 1, 1], finished  # none ran twice
        for model, job in zip(models, finished, strict=True):
            versions = api.get(f"/v1/models/{model}/versions")
            assert [v["job"] for v in versions] == [None, job["id"]]
        tally["jobs submitted"] += len(jobs)
        finish_scenario(var_dir, "Redis (append-only) restarted with one job running and two queued: all three"
                        " succeeded, each with exactly one version")
    finally:
        broker.terminate()
        broker.wait(timeout=30)
