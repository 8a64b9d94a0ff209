"""Issue 25 items 1, 7 (an architecture path with a NUL byte) and 9, over HTTP against a real API and worker.

Item 1: LIFELONG_MAX_MODEL_PARAMETERS counts every parameter a train job would make, the heads included: the
trunk, each earlier task's head and the new task's (num_classes × (features + 1)). Item 9: a task's classes
are capped by LIFELONG_MAX_CLASSES, so a label of 10¹² or 2⁶³−1 is refused at submission instead of failing
in the worker. Every refusal is a 422 naming its setting, and queues nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.conftest import Api, DigitsTask, Service, start_service

MAX_PARAMETERS = 1_000_000
MAX_CLASSES = 5_000
CAPS = {"LIFELONG_MAX_MODEL_PARAMETERS": str(MAX_PARAMETERS), "LIFELONG_MAX_CLASSES": str(MAX_CLASSES)}
WIDTH = 1_000  # the trunk's feature width: 8 → 1000, 9,000 parameters


@pytest.fixture(scope="module")
def capped_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("caps") / "var", env=CAPS)
    yield running
    running.close()


@pytest.fixture(scope="module")
def capped(capped_service: Service, digits: list[DigitsTask]) -> Iterator[Api]:
    with capped_service.client() as http:
        yield Api(http, digits)


def _model(api: Api, width: int = WIDTH) -> str:
    name = api.unique("caps")
    body = {"name": name, "architecture": {"kind": "mlp", "input_shape": [8], "hidden": [width]}, "seed": 0}
    response = api.http.post("/v1/models", json=body)
    assert response.status_code == 201, response.text
    return name


def _task(name: str, labels: list[int], **extra: Any) -> dict[str, Any]:
    inputs = np.random.default_rng(0).normal(size=(len(labels), 8)).round(3).tolist()
    return {"task": name, "train": {"inputs": inputs, "labels": labels}, "epochs": 1, "lambda": 1.0,
            "validation_fraction": 0.0, **extra}


def _refused(api: Api, model: str, body: dict[str, Any], setting: str) -> str:
    response = api.http.post(f"/v1/models/{model}/tasks", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert setting in detail, detail
    return detail


def test_the_new_head_and_the_earlier_ones_count_against_the_parameter_cap(capped: Api) -> None:
    model = _model(capped)
    trunk = 8 * WIDTH + WIDTH
    # 2,000 classes: a head of 2,002,000 parameters on a 9,000-parameter trunk.
    detail = _refused(capped, model, _task("wide", [0, 1] * 5, num_classes=2_000), "LIFELONG_MAX_MODEL_PARAMETERS")
    assert f"{trunk + 2_000 * (WIDTH + 1):,} parameters" in detail and "2,000 classes" in detail, detail
    assert capped.get("/v1/jobs", model=model) == []

    # 900 classes fit (909,900 + 9,000); once learned, that head counts against the next task.
    job = capped.http.post(f"/v1/models/{model}/tasks", json=_task("first", [0, 1] * 5, num_classes=900))
    assert job.status_code == 202, job.text
    assert capped.wait_job(job.json()["id"])["state"] == "succeeded"
    detail = _refused(capped, model, _task("second", [0, 1] * 5, num_classes=100), "LIFELONG_MAX_MODEL_PARAMETERS")
    assert f"{900 * (WIDTH + 1):,} in the heads of 1 earlier tasks" in detail, detail
    assert capped.http.post(f"/v1/models/{model}/tasks", json=_task("small", [0, 1] * 5)).status_code == 202


@pytest.mark.parametrize("labels, eval_labels, extra, named", [
    ([0, 10**12], None, {}, "the largest is 1,000,000,000,000"),
    ([0, 2**63 - 1], None, {}, "the largest is 9,223,372,036,854,775,807"),
    ([0, MAX_CLASSES], None, {}, f"the largest is {MAX_CLASSES:,}"),
    ([0, 1], [0, 10**12], {}, "the largest is 1,000,000,000,000"),  # the eval set's labels make classes too
    ([0, 1], None, {"num_classes": MAX_CLASSES + 1}, "num_classes"),
])
def test_labels_past_the_class_cap_are_refused_at_submission(capped: Api, labels: list[int],
                                                             eval_labels: list[int] | None, extra: dict[str, Any],
                                                             named: str) -> None:
    model = _model(capped)
    body = _task("huge", labels, **extra)
    if eval_labels is not None:
        body["eval"] = _task("e", eval_labels)["train"]
    detail = _refused(capped, model, body, "LIFELONG_MAX_CLASSES")
    assert named in detail and f"0..{MAX_CLASSES - 1:,}" in detail, detail
    assert capped.get("/v1/jobs", model=model) == []


def test_the_largest_label_under_the_cap_is_accepted(capped: Api) -> None:
    model = _model(capped, width=8)  # a head of 5,000 × 9 parameters
    response = capped.http.post(f"/v1/models/{model}/tasks", json=_task("edge", [0, MAX_CLASSES - 1] * 2))
    assert response.status_code == 202, response.text
    assert response.json()["request"]["num_classes"] == MAX_CLASSES
    assert capped.http.post(f"/v1/jobs/{response.json()['id']}/cancel").status_code == 202


def test_an_architecture_path_with_a_nul_byte_is_a_422_naming_it(capped: Api) -> None:
    for kind in ("text-encoder", "image-backbone"):
        body = {"name": capped.unique("nul"), "architecture": {"kind": kind, "path": "/models/mini\x00lm"}}
        response = capped.http.post("/v1/models", json=body)
        assert response.status_code == 422, response.text
        assert "NUL byte" in response.json()["detail"], response.text


def test_an_inline_label_nested_100000_deep_is_a_4xx(capped: Api) -> None:
    """Inline JSON bodies are parsed by FastAPI before any of ours runs: a 400, never a 500."""
    model = _model(capped)
    deep = "[" * 100_000 + "]" * 100_000
    body = '{"task": "t", "train": {"inputs": [[0,0,0,0,0,0,0,0]], "labels": [' + deep + "]}}"
    response = capped.http.post(f"/v1/models/{model}/tasks", content=body,
                                headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
