"""Deleting datasets, end to end: a real API over HTTP, a real worker, a real SQLite file, and each blob store
(a local directory and moto's S3-compatible server, as tests/api/test_blob_gc.py starts it).

The lifecycle is the issue's: upload, train, delete, `lifelong blobs gc`, then predict, evaluate, export,
refresh Ω from new data and train the next task, all without the data; no blob of the deleted datasets is
left anywhere in the store. Then the 409 while a job needs the data, a blob shared by two dataset rows,
and retention by the sweeper.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.store import BlobStore, FsspecBlobStore, LocalBlobStore
from scripts.cluster import Server, s3_settings, start_s3
from tests.conftest import Api, DigitsTask, Service, npz_bytes, service_env, unique

FAST = {"epochs": 2, "batch_size": 64, "lr": 0.05, "validation_fraction": 0.2}


@pytest.fixture(scope="module")
def s3() -> Iterator[Server]:
    server = start_s3()
    yield server
    server.stop()


@dataclass
class Deployment:
    service: Service
    api: Api
    store: BlobStore

    def blob_of(self, dataset_id: str) -> str:
        with sqlite3.connect(self.service.var_dir / "lifelong.sqlite3") as database:
            return database.execute("SELECT blob FROM datasets WHERE id = ?", (dataset_id,)).fetchone()[0]

    def anywhere(self, blob: str) -> bool:
        """Whether the blob is in the store, in place or in its trash."""
        return self.store.exists(blob) or any(entry.name == blob for entry in self.store.trash())

    def gc(self) -> dict:
        done = subprocess.run([sys.executable, "-m", "app.cli", "blobs", "gc", "--json"], capture_output=True,
                              text=True, env=service_env(self.service.var_dir, **self.service.env), timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(params=["local", "s3"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path, service_factory: Callable[..., Service],
               api_factory: Callable[[Service], Api]) -> Deployment:
    env: dict[str, str] = {}
    if request.param == "s3":
        env = s3_settings(request.getfixturevalue("s3"), prefix=f"deletion-{tmp_path.name}")
    running = service_factory(env=env)
    if env:
        store: BlobStore = FsspecBlobStore(env["LIFELONG_BLOB_URL"], json.loads(env["LIFELONG_BLOB_OPTIONS"]))
    else:
        store = LocalBlobStore(running.var_dir / "blobs")
    return Deployment(running, api_factory(running), store)


def _model(api: Api) -> str:
    name = unique("forget")
    response = api.http.post("/v1/models", json={"name": name, "promotion": {"policy": "auto"}, "seed": 0,
                                                 "architecture": {"kind": "mlp", "input_shape": [64], "hidden": [32]}})
    assert response.status_code == 201, response.text
    return name


def _learn(api: Api, model: str, task: DigitsTask, train: str, evaluation: str) -> dict:
    response = api.http.post(f"/v1/models/{model}/tasks", json={
        "task": task.name, "train": {"dataset": train}, "eval": {"dataset": evaluation}, **FAST})
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["state"] == "succeeded", job
    return job


def _accuracy(api: Api, model: str, task: DigitsTask, version: int) -> float:
    answer = api.predict(model, task.name, task.x_test, version=version)
    return float(np.mean(np.array(answer["predictions"]) == task.y_test))


def test_a_model_keeps_working_after_its_data_is_deleted(deployment: Deployment, digits: list[DigitsTask]) -> None:
    api, first, second = deployment.api, digits[0], digits[1]
    model = _model(api)
    train, evaluation = api.upload_task_data(first)
    blobs = [deployment.blob_of(train), deployment.blob_of(evaluation)]
    job = _learn(api, model, first, train, evaluation)
    v1 = job["result"]["version"]
    before = _accuracy(api, model, first, v1)

    for dataset in (train, evaluation):
        assert api.http.delete(f"/v1/datasets/{dataset}").status_code == 204
        gone = api.http.get(f"/v1/datasets/{dataset}")
        assert gone.status_code == 404 and "was deleted at" in gone.json()["detail"], gone.text
    assert not any(deployment.anywhere(blob) for blob in blobs)  # the delete itself purged them
    assert deployment.gc()["dataset_blobs_purged"] == 0
    assert not any(deployment.anywhere(blob) for blob in blobs)

    # The job and the version still name the data, and say it was deleted.
    shown = api.get(f"/v1/jobs/{job['id']}")
    assert shown["request"]["train_dataset"] == train
    assert shown["datasets"]["train_dataset"]["exists"] is False
    assert shown["datasets"]["train_dataset"]["deleted_by"] == "request"
    assert shown["datasets"]["train_dataset"]["deleted_at"] is not None
    data = api.get(f"/v1/models/{model}/versions/{v1}")["data"]
    deleted_at = shown["datasets"]["train_dataset"]["deleted_at"]
    assert data["theta"] == [{"task": first.name, "id": train, "exists": False, "deleted_at": deleted_at,
                              "deleted_by": "request"}]
    assert data["importance"][first.name][0]["id"] == train
    assert data["accuracy"][first.name]["id"] == evaluation and not data["accuracy"][first.name]["exists"]
    assert sorted(data["deleted"]) == sorted([train, evaluation])

    # Predictions, evaluation history, scoring, export and the checkpoint need none of it.
    assert _accuracy(api, model, first, v1) == before > 0.5
    assert api.get(f"/v1/models/{model}/evaluation")["rows"][0]["accuracy"][first.name] > 0.5
    scored = api.http.post(f"/v1/models/{model}/evaluate", json={
        "task": first.name, "data": {"inputs": first.x_test.tolist(), "labels": first.y_test.tolist()}})
    assert scored.status_code == 200 and scored.json()["accuracy"] == pytest.approx(before), scored.text
    exported = api.http.get(f"/v1/models/{model}/versions/{v1}/export",
                            params={"task": first.name, "format": "torchscript"})
    assert exported.status_code == 200 and len(exported.content) > 1000
    assert api.http.get(f"/v1/models/{model}/versions/{v1}/checkpoint").status_code == 200

    # Ω refreshed from new data, then the next task learned on top.
    refreshed = api.refresh(model, data={"inputs": first.x_test[:100].tolist()}, task=first.name)
    assert refreshed["state"] == "succeeded", refreshed
    train2, evaluation2 = api.upload_task_data(second)
    v3 = _learn(api, model, second, train2, evaluation2)["result"]["version"]
    details = api.get(f"/v1/models/{model}/versions/{v3}")
    assert _accuracy(api, model, second, v3) > 0.5
    assert _accuracy(api, model, first, v3) > 0.3  # still answers the first task (MAS keeps most of it)
    assert set(details["accuracy"]) == {second.name}  # the first task's eval set is gone: not measured again
    history = api.get(f"/v1/models/{model}/evaluation")
    assert [row["version"] for row in history["rows"]] == [v1, v3]
    kept = details["task_free"]["tasks"][first.name]
    assert kept["at_this_trunk"] is False and "deleted" in kept["kept_because"]
    assert details["data"]["class_statistics"][first.name]["kept_because"] == kept["kept_because"]
    assert details["data"]["class_statistics"][second.name]["at_this_trunk"] is True
    refresh_data = details["data"]["importance"][first.name]
    assert [d["id"] for d in refresh_data][0] == train and len(refresh_data) == 2 and refresh_data[1]["exists"]

    # Drift reports fall back to the kept reference features of the first task.
    drift = api.http.post(f"/v1/models/{model}/drift", json={"data": {"inputs": first.x_test[:60].tolist()}})
    assert drift.status_code == 202, drift.text
    report = api.wait_job(drift.json()["id"])
    assert report["state"] == "succeeded", report
    assert report["result"]["tasks"][first.name]["at_this_trunk"] is False


def test_a_dataset_a_job_needs_is_refused_with_the_job_named(api: Api, digits: list[DigitsTask]) -> None:
    model = _model(api)
    train, evaluation = api.upload_task_data(digits[0])
    _learn(api, model, digits[0], train, evaluation)
    # A long job on the next task: it reads its own data and the first task's eval set.
    body = {**api.task_body(digits[1], epochs=500), "base_version": 1}
    response = api.http.post(f"/v1/models/{model}/tasks", json=body)
    assert response.status_code == 202, response.text
    job = response.json()["id"]
    try:
        for dataset in (body["train"]["dataset"], evaluation, train):
            refused = api.http.delete(f"/v1/datasets/{dataset}")
            assert refused.status_code == 409, refused.text
            assert job in refused.json()["detail"]
        assert api.http.get(f"/v1/datasets/{train}").status_code == 200
    finally:
        api.http.post(f"/v1/jobs/{job}/cancel")
    assert api.wait_job(job)["state"] == "cancelled"
    assert api.http.delete(f"/v1/datasets/{evaluation}").status_code == 204
    again = api.http.delete(f"/v1/datasets/{evaluation}")
    assert again.status_code == 404 and "was deleted" in again.json()["detail"]
    unknown = api.http.delete("/v1/datasets/0123456789abcdef01234567")
    assert unknown.status_code == 404 and "no dataset" in unknown.json()["detail"]
    later = api.http.post(f"/v1/models/{model}/tasks", json={
        "task": "later", "train": {"dataset": evaluation}, **FAST})
    assert later.status_code == 404 and "was deleted at" in later.json()["detail"], later.text


def _compressed(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_a_blob_two_datasets_share_goes_with_the_last_of_them(service: Service, api: Api) -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(40, 64)).astype(np.float32), rng.integers(0, 3, 40)
    plain, packed = api.upload(npz_bytes(x=x, y=y)), api.upload(_compressed(x=x, y=y), "packed.npz")
    assert plain["id"] != packed["id"]  # other bytes: another dataset, with the same parsed content
    store = LocalBlobStore(service.var_dir / "blobs")
    with sqlite3.connect(service.var_dir / "lifelong.sqlite3") as database:
        blobs = {row[0] for row in database.execute("SELECT blob FROM datasets WHERE id IN (?, ?)",
                                                    (plain["id"], packed["id"]))}
    assert len(blobs) == 1
    blob = blobs.pop()

    assert api.http.delete(f"/v1/datasets/{plain['id']}").status_code == 204
    assert store.exists(blob)  # the other row still names it
    assert api.get(f"/v1/datasets/{packed['id']}")["n"] == 40
    assert api.http.delete(f"/v1/datasets/{packed['id']}").status_code == 204
    assert not store.exists(blob)

    # The same bytes uploaded after the purge: the same id, a live row again, and its blob written again.
    back = api.upload(npz_bytes(x=x, y=y))
    assert back["id"] == plain["id"] and store.exists(blob)


def test_retention_deletes_datasets_past_their_time_in_the_sweeper(service_factory: Callable[..., Service],
                                                                   api_factory: Callable[[Service], Api]) -> None:
    running = service_factory(env={"LIFELONG_DATASET_RETENTION_DAYS": str(2 / 86400),  # two seconds
                                   "LIFELONG_SWEEP_INTERVAL_S": "0.2"})
    api = api_factory(running)
    rng = np.random.default_rng(3)
    keep_until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    kept = api.http.post("/v1/datasets", files={"file": ("kept.npz", npz_bytes(x=rng.normal(size=(5, 4))))},
                         data={"retain_until": keep_until})
    assert kept.status_code == 201 and kept.json()["retain_until"] is not None, kept.text
    expiring = api.upload(npz_bytes(x=rng.normal(size=(5, 4))))
    past = api.http.post("/v1/datasets", files={"file": ("p.npz", npz_bytes(x=rng.normal(size=(5, 4))))},
                         data={"retain_until": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and "in the past" in past.text

    api.wait_for(lambda: api.http.get(f"/v1/datasets/{expiring['id']}").status_code == 404, deadline_s=30,
                 what="the sweeper to delete the expired dataset")
    assert "(retention)" in api.http.get(f"/v1/datasets/{expiring['id']}").json()["detail"]
    assert api.http.get(f"/v1/datasets/{kept.json()['id']}").status_code == 200
    with sqlite3.connect(running.var_dir / "lifelong.sqlite3") as database:
        blob, reason = database.execute("SELECT blob, reason FROM dataset_deletions WHERE dataset_id = ?",
                                        (expiring["id"],)).fetchone()
    assert reason == "retention"
    store = LocalBlobStore(running.var_dir / "blobs")
    api.wait_for(lambda: not store.exists(blob), deadline_s=10, what="the sweeper to purge the blob")
    api.wait_for(lambda: f"dataset {expiring['id']} deleted by retention" in running.logs(), deadline_s=10,
                 what="the sweeper's log line")
    metrics = api.http.get("/metrics").text
    assert 'lifelong_datasets_deleted_total{reason="retention"} 1.0' in metrics
