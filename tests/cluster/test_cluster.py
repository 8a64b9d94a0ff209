"""The scaled deployment, natively: PostgreSQL + Redis + an S3 blob store + the API + several workers.

What separate hosts would share is all these processes share: a database URL, a broker URL and a
blob store URL (scripts/cluster.py). Two models learn task sequences at once; both CPU workers must
take jobs, every version must be right (lineage, tasks, accuracies that predictions reproduce), and
jobs must go to the queue their model or request names. Needs `redis-server`, PostgreSQL and
`moto_server`; .ci/run installs the first two from Debian, `make install` the third.
"""

from __future__ import annotations

import io
import math
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from scripts.cluster import BUCKET, Cluster, start_cluster
from tests.conftest import FAST_ENV, Api, DigitsTask

CLUSTER_ENV = {key: FAST_ENV[key] for key in ("LIFELONG_PROGRESS_INTERVAL_S", "LIFELONG_CANCEL_POLL_S",
                                              "LIFELONG_TORCH_THREADS")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("cluster"), workers=2, queues="cpu", extra_env=CLUSTER_ENV)
    try:
        running.start_worker("g1", "gpu")  # a gpu-queue worker; on this CPU-only machine it trains on the CPU
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(cluster: Cluster, digits: list[DigitsTask]) -> Iterator[Api]:
    with httpx.Client(base_url=cluster.api_url, timeout=30.0) as http:
        yield Api(http, digits)


def _learn_sequence(api: Api, model: str, jobs: list[dict[str, Any]], errors: list[BaseException]) -> None:
    try:
        for task in api.digits:
            jobs.append(api.wait_job(api.submit_task(model, task, epochs=8)["id"]))
        jobs.append(api.refresh(model, data={"dataset": api.upload_task_data(api.digits[0])[1]}))
    except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
        errors.append(error)


def _check_versions(api: Api, model: str) -> None:
    versions = api.get(f"/v1/models/{model}/versions")
    assert [(v["version"], v["parent"], v["kind"]) for v in versions] == [
        (0, None, "init"), (1, 0, "train"), (2, 1, "train"), (3, 2, "train"), (4, 3, "importance")]
    assert api.get(f"/v1/models/{model}")["head"] == 4
    names = [task.name for task in api.digits]
    for number in (1, 2, 3):
        detail = api.get(f"/v1/models/{model}/versions/{number}")
        assert detail["tasks"] == names[:number]
        assert set(detail["accuracy"]) == set(names[:number])
    head = api.get(f"/v1/models/{model}/versions/4")
    # The last task's estimate: its training rows (10 % are held back for validation), plus the refresh's.
    trained = len(api.digits[-1].x_train) - math.ceil(0.1 * len(api.digits[-1].x_train))
    assert head["importance"]["n_open"] == trained + len(api.digits[0].x_test)
    for task in api.digits:  # the stored accuracy is what predictions through the API give
        predicted = np.array(api.predict(model, task.name, task.x_test, version=4)["predictions"])
        assert head["accuracy"][task.name] == pytest.approx(float((predicted == task.y_test).mean()), abs=1e-6)
        assert head["accuracy"][task.name] > 0.8, head["accuracy"]
    checkpoint = api.http.get(f"/v1/models/{model}/versions/4/checkpoint")
    assert checkpoint.status_code == 200, checkpoint.text
    heads = {key.split(".")[1] for key in load_safetensors(checkpoint.content) if key.startswith("heads.")}
    assert heads == set(names)


def test_two_models_learn_at_once_on_two_workers(api: Api, cluster: Cluster) -> None:
    models = [api.create_model("cluster"), api.create_model("cluster")]
    jobs: dict[str, list[dict[str, Any]]] = {model: [] for model in models}
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_learn_sequence, args=(api, model, jobs[model], errors)) for model in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    every_job = [job for model_jobs in jobs.values() for job in model_jobs]
    assert len(every_job) == 8 and all(job["state"] == "succeeded" for job in every_job), every_job
    assert {job["worker"].split("@")[0] for job in every_job} == {"w1", "w2"}, cluster.logs()
    assert {(job["queue"], job["device"]) for job in every_job} == {("cpu", "cpu")}
    for model in models:
        _check_versions(api, model)


def test_blobs_live_in_the_shared_s3_store(api: Api, cluster: Cluster) -> None:
    api.create_model("s3")
    s3 = next(server for server in cluster.servers if server.name == "s3")
    listing = httpx.get(f"{s3.url}/{BUCKET}", params={"list-type": "2", "prefix": "blobs/"}, timeout=10)
    keys = [element.text for element in ElementTree.parse(io.BytesIO(listing.content)).iter()
            if element.tag.endswith("Key")]
    assert len(keys) >= 2 and all(len(key.rsplit("/", 1)[-1]) == 64 for key in keys), keys
    local = Path(cluster.process_env()["LIFELONG_VAR_DIR"]) / "blobs"
    assert not local.exists() or not any(path.is_file() for path in local.rglob("*"))


def test_jobs_go_to_the_queue_of_their_model_or_request(api: Api) -> None:
    response = api.http.post("/v1/models", json={
        "name": api.unique("gpu"), "architecture": {"kind": "mlp", "input_shape": [64], "hidden": [16]},
        "queue": "gpu"})
    assert response.status_code == 201 and response.json()["queue"] == "gpu", response.text
    gpu_model = response.json()["name"]
    cpu_model = api.create_model("cpu")
    assert api.get(f"/v1/models/{cpu_model}")["queue"] == "cpu"

    on_gpu = api.wait_job(api.submit_task(gpu_model, api.digits[0], epochs=2)["id"])
    moved = api.wait_job(api.submit_task(cpu_model, api.digits[0], epochs=2, queue="gpu")["id"])
    stayed = api.wait_job(api.submit_task(cpu_model, api.digits[1], epochs=2)["id"])
    for job in (on_gpu, moved):
        assert job["state"] == "succeeded" and job["queue"] == "gpu" and job["worker"].startswith("g1@"), job
        assert job["device"] == "cpu"  # the job says where it really ran: this machine has no GPU
    assert stayed["queue"] == "cpu" and stayed["worker"].split("@")[0] in ("w1", "w2"), stayed
    refused = api.http.post(f"/v1/models/{cpu_model}/tasks", json={**api.task_body(api.digits[2]), "queue": "tpu"})
    assert refused.status_code == 422 and "queue" in refused.text
