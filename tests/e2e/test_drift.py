"""Drift reports over HTTP with a real worker and a real webhook receiver: a batch like a task's training
rows is not drift, one of other classes or of noise is, with a signed `drift.detected` event; reports are
kept newest first (refreshes add theirs), and exported as a Prometheus gauge."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import Api, DigitsTask, Service, start_service, wait_for
from tests.e2e.test_webhooks import WEBHOOK_ENV
from tests.receiver import Receiver


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory, digits: list[DigitsTask]) -> Iterator[tuple[Api, str]]:
    running: Service = start_service(tmp_path_factory.mktemp("drift") / "var", env=WEBHOOK_ENV)
    with running.client() as http:
        api = Api(http, digits)
        model = api.create_model("drift", promotion={"policy": "auto"})
        api.learn(model, digits[0])
        api.learn(model, digits[1])
        yield api, model
    running.close()


def _drift(api: Api, model: str, rows: np.ndarray, **extra) -> dict:
    response = api.http.post(f"/v1/models/{model}/drift", json={"data": {"inputs": rows.tolist()}, **extra})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}" and response.json()["kind"] == "drift"
    job = api.wait_job(response.json()["id"])
    assert job["state"] == "succeeded", job
    return job


def test_a_batch_like_a_tasks_rows_is_not_drift_and_other_classes_are(drifting) -> None:
    api, model = drifting
    first, second = api.digits[0], api.digits[1]
    job = _drift(api, model, first.x_test)  # held-out rows of the first task's own classes
    report = job["result"]
    assert report["version"] == 2 and report["n"] == len(first.x_test) and report["alpha"] == 0.01
    tasks = report["tasks"]
    assert set(tasks) == {first.name, second.name} and report["nearest_task"] == first.name
    assert tasks[first.name]["drift"] is False and tasks[first.name]["p_value"] > 0.01 / 2
    assert tasks[second.name]["drift"] is True  # digits 0-1 are not what the second task learned
    assert tasks[first.name]["reference_rows"] > 2 and tasks[first.name]["at_this_trunk"] is True


def test_noise_is_drift_everywhere_and_the_event_is_signed(drifting) -> None:
    api, model = drifting
    secret = "drift secret"
    with Receiver() as receiver:
        hook = api.http.post(f"/v1/models/{model}/webhooks",
                             json={"url": receiver.url(), "events": ["drift.detected"], "secret": secret})
        assert hook.status_code == 201, hook.text
        noise = np.random.default_rng(0).uniform(0, 16, size=(60, 64))
        job = _drift(api, model, noise)
        assert all(verdict["drift"] for verdict in job["result"]["tasks"].values())
        sent = wait_for(lambda: receiver.deliveries(), deadline_s=30, what="the drift.detected delivery")
    [request] = [first for first, *_ in sent.values()]
    assert request.signed_with(secret) and request.payload["event"] == "drift.detected"
    data = request.payload["data"]
    assert data["job"] == job["id"] and sorted(data["drifted"]) == sorted(job["result"]["tasks"])


def test_reports_are_listed_newest_first_with_refreshes_and_in_the_metrics(drifting) -> None:
    api, model = drifting
    # its own report first: the tests above may run on another worker (pytest-xdist), each with its own service
    checked = _drift(api, model, api.digits[0].x_test)
    refreshed = api.refresh(model, data={"inputs": api.digits[1].x_test[:40].tolist()})
    assert refreshed["state"] == "succeeded"
    reports = api.get(f"/v1/models/{model}/drift")
    assert [r["source"] for r in reports[:1]] == ["importance"] and reports[0]["job"] == refreshed["id"]
    assert reports[0]["n"] == 40 and reports[0]["version"] == 2  # tested at the refresh's base
    assert [r["id"] for r in reports] == sorted((r["id"] for r in reports), reverse=True)
    assert checked["id"] in [r["job"] for r in reports[1:]]
    assert len(api.get(f"/v1/models/{model}/drift", limit=1)) == 1
    metrics = api.http.get("/metrics").text
    gauge = [line for line in metrics.splitlines() if line.startswith("lifelong_drift_p_value{")
             and f'model="{model}"' in line]
    assert len(gauge) == 2  # one series per task, from the latest report


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"data": {"inputs": [[0.0] * 64]}}, 422, "at least 2"),
    ({"data": {"inputs": [[0.0] * 3, [1.0] * 3]}}, 422, "shape"),
    ({"data": {"inputs": [[0.0] * 64] * 2}, "version": 0}, 409, "no task"),
    ({"data": {"inputs": [[0.0] * 64] * 2}, "version": 9}, 404, "9"),
    ({"data": {"inputs": [[0.0] * 64] * 2}, "version": 1, "alias": "production"}, 422, "not both"),
])
def test_bad_drift_requests_are_clear_4xx(drifting, body, status, words) -> None:
    api, model = drifting
    response = api.http.post(f"/v1/models/{model}/drift", json=body)
    assert response.status_code == status and words in response.json()["detail"], response.text
