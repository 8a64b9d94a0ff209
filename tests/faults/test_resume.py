"""Issue 11 item 7: a train job killed mid-training resumes from its last checkpoint on its next attempt,
and on the CPU makes bit for bit the version that an uninterrupted run of the same request makes."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from tests.faults.conftest import FAULT_ENV, finish_scenario, pool_processes

# Long enough to be killed mid-way (about 1,300 steps), checkpointed every step after the first 0.2 s.
REQUEST = {"epochs": 40, "batch_size": 8, "seed": 7, "lambda": 1.0, "checkpoint_interval_s": 0.2}


def _checkpoint_step(var_dir: Path, job_id: str) -> int | None:
    with sqlite3.connect(var_dir / "lifelong.sqlite3") as db:
        row = db.execute("SELECT checkpoint_step FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row[0] if row else None


def test_a_job_killed_mid_training_resumes_and_makes_the_uninterrupted_version(service_factory, fault_api, tally,
                                                                              tmp_path) -> None:
    var_dir = tmp_path / "var"
    service = service_factory(var_dir, env=FAULT_ENV)
    api = fault_api(service)
    worker = service.processes["worker"].pid
    first, second = api.digits[0], api.digits[1]
    models = {name: api.create_model(name) for name in ("whole", "killed")}
    for model in models.values():  # the same first task, then the second with the long request
        api.learn(model, first, epochs=2, seed=7)

    whole_job = api.wait_job(api.submit_task(models["whole"], second, **REQUEST)["id"], deadline_s=300)
    assert whole_job["state"] == "succeeded", whole_job
    total = whole_job["progress"]["total"]

    job_id = api.submit_task(models["killed"], second, **REQUEST)["id"]
    step = api.wait_for(lambda: (s if (s := _checkpoint_step(var_dir, job_id)) and total // 4 < s < total else None),
                        deadline_s=120, what="a checkpoint a quarter of the way in")
    [pool] = api.wait_for(lambda: pool_processes(worker), deadline_s=30, what="a pool process")
    os.kill(pool, signal.SIGKILL)
    tally["faults injected: SIGKILL of the training process"] += 1
    resumed_job = api.wait_job(job_id, deadline_s=300)
    assert resumed_job["state"] == "succeeded" and resumed_job["attempts"] == 2, resumed_job
    assert resumed_job["result"]["resumed_from_step"] >= step and resumed_job["checkpoint"]["step"] >= step

    whole, resumed = (api.get(f"/v1/models/{m}/versions/2") for m in models.values())
    assert resumed["made_by"]["attempts"] == 2 and resumed["made_by"]["resumed_from_step"] >= step
    assert whole["made_by"]["resumed_from_step"] is None
    assert resumed["theta_sha256"] == whole["theta_sha256"]  # θ bit for bit (content-addressed parts)
    assert resumed["importance"]["tasks"] == whole["importance"]["tasks"]  # Ω too
    assert resumed["accuracy"] == whole["accuracy"]
    assert resumed["made_by"]["loss_per_epoch"] == whole["made_by"]["loss_per_epoch"]
    tally["jobs submitted"] += 4
    finish_scenario(var_dir, f"SIGKILL of the pool process at a checkpoint (step {step} of {total}): the job resumed"
                    " from it on its next attempt; its version equals an uninterrupted run's bit for bit")
