"""Issue 25 item 2 over HTTP, against a real API and worker: evaluate never draws a classes² matrix.

Up to LIFELONG_MAX_CONFUSION_CLASSES classes the answer is as before (the whole [labeled][predicted] matrix,
every class in per_class); above it `confusion_matrix` is null, `truncated` true, and per_class and
top_confusions each list at most that many entries: the classes with the most support, and the largest
off-diagonal cells. Every count is checked against one made here from the service's own predictions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.conftest import Api, DigitsTask, Service, start_service

CAP = 4


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory, digits: list[DigitsTask]) -> Iterator[Api]:
    running: Service = start_service(tmp_path_factory.mktemp("confusion") / "var",
                                     env={"LIFELONG_MAX_CONFUSION_CLASSES": str(CAP)})
    with running.client() as http:
        yield Api(http, digits)
    running.close()


def _rows(labels: list[int]) -> list[list[float]]:
    rng = np.random.default_rng(1)
    return (rng.normal(size=(len(labels), 8)) + np.asarray(labels)[:, None] * 0.3).round(3).tolist()


def _learned(api: Api, task: str, labels: list[int]) -> str:
    name = api.unique("conf")
    body = {"name": name, "architecture": {"kind": "mlp", "input_shape": [8], "hidden": [16]}, "seed": 0}
    assert api.http.post("/v1/models", json=body).status_code == 201
    job = api.http.post(f"/v1/models/{name}/tasks", json={
        "task": task, "train": {"inputs": _rows(labels), "labels": labels}, "epochs": 2, "lambda": 1.0,
        "validation_fraction": 0.0})
    assert job.status_code == 202, job.text
    assert api.wait_job(job.json()["id"])["state"] == "succeeded"
    return name


def _scored(api: Api, model: str, task: str, labels: list[int]) -> tuple[dict[str, Any], Counter]:
    inputs = _rows(labels)
    answer = api.http.post(f"/v1/models/{model}/evaluate",
                           json={"task": task, "data": {"inputs": inputs, "labels": labels}})
    assert answer.status_code == 200, answer.text
    predicted = api.predict(model, task, np.asarray(inputs, dtype=np.float32))["predictions"]
    return answer.json(), Counter(zip(labels, predicted, strict=True))


def test_a_task_over_the_cap_answers_the_top_confusions_and_the_most_supported_classes(bounded: Api) -> None:
    # Supports 9, 8, 7, 6 for classes 0–3, then 2 each for classes 4–11.
    labels = [k for k, rows in enumerate([9, 8, 7, 6] + [2] * 8) for _ in range(rows)]
    model = _learned(bounded, "many", labels)
    scores, cells = _scored(bounded, model, "many", labels)

    assert scores["truncated"] is True and scores["confusion_matrix"] is None and scores["classes"] == 12
    assert scores["n"] == len(labels)
    assert [c["index"] for c in scores["per_class"]] == [0, 1, 2, 3]
    for entry in scores["per_class"]:
        k = entry["index"]
        assert entry["support"] == sum(n for (a, _), n in cells.items() if a == k)
        assert entry["predicted"] == sum(n for (_, b), n in cells.items() if b == k)
    off = sorted(((-n, a, b) for (a, b), n in cells.items() if a != b))[:CAP]
    assert [(c["labeled"], c["predicted"], c["count"]) for c in scores["top_confusions"]] == [
        (a, b, -n) for n, a, b in off]
    assert scores["accuracy"] == pytest.approx(sum(n for (a, b), n in cells.items() if a == b) / len(labels))


def test_a_task_within_the_cap_answers_the_whole_matrix(bounded: Api) -> None:
    labels = [k for k in range(3) for _ in range(10)]
    model = _learned(bounded, "few", labels)
    scores, cells = _scored(bounded, model, "few", labels)
    assert scores["truncated"] is False and scores["classes"] == 3
    assert scores["confusion_matrix"] == [[cells[(a, b)] for b in range(3)] for a in range(3)]
    assert [c["index"] for c in scores["per_class"]] == [0, 1, 2]
    assert len(scores["top_confusions"]) == min(CAP, sum(1 for a, b in cells if a != b))
