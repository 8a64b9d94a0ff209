"""Predictions that name no task, over HTTP against the real service: every class learned, "unknown",
class statistics in the version, the task-free column of the accuracy matrix, and the promotion guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors

from app.mas.networks import load_network
from tests.conftest import Api


@pytest.fixture(scope="module")
def learned(api: Api) -> tuple[str, int, int]:
    """A model with the first two digits tasks learned: (name, version after task 1, after task 2)."""
    model = api.create_model("taskfree", promotion={"policy": "auto"})
    first = api.learn(model, api.digits[0])
    second = api.learn(model, api.digits[1])
    return model, first, second


def test_a_prediction_without_a_task_answers_over_every_class_learned(api: Api, learned) -> None:
    model, _, version = learned
    first, second = api.digits[0], api.digits[1]
    x = np.concatenate([first.x_test, second.x_test])
    truth = [f"{first.name}/{int(y)}" for y in first.y_test] + [f"{second.name}/{int(y)}" for y in second.y_test]
    response = api.http.post(f"/v1/models/{model}/predict", json={"inputs": x.tolist(), "probabilities": True})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["version"] == version and "task" not in answer and answer["predictor"] == "ridge"
    assert len(answer["predictions"]) == len(x) == len(answer["labels"]) == len(answer["tasks"])
    assert [c["label"] for c in answer["classes"]] == [f"{first.name}/0", f"{first.name}/1",
                                                       f"{second.name}/0", f"{second.name}/1"]
    assert all(label.split("/")[0] == task for label, task in zip(answer["labels"], answer["tasks"], strict=True))
    assert np.mean([p == t for p, t in zip(answer["labels"], truth, strict=True)]) > 0.9
    assert all(0 <= c <= 1 for c in answer["confidence"])
    probs = np.array(answer["probabilities"])
    assert probs.shape == (len(x), 4) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert np.allclose(probs.max(1), answer["confidence"], atol=1e-5)
    # At most 5 % of in-distribution rows are unknown on held-back rows; the eval rows are alike.
    assert np.mean(answer["unknown"]) < 0.2
    assert all((s < answer["threshold"]) == u for s, u in zip(answer["score"], answer["unknown"], strict=True))


def test_inputs_unlike_every_class_are_unknown_and_a_named_task_never_is(api: Api, learned) -> None:
    model, _, _ = learned
    far = np.full((20, 64), 16.0) + np.random.default_rng(0).normal(0, 8, (20, 64))
    answer = api.http.post(f"/v1/models/{model}/predict", json={"inputs": far.tolist()}).json()
    assert all(answer["unknown"])
    named = api.predict(model, api.digits[0].name, far)
    assert "unknown" not in named and named["task"] == api.digits[0].name


def test_with_a_task_the_answer_is_as_before(api: Api, learned) -> None:
    """The named task's head answers, as it always did: the checkpoint's θ (its task-free tensors left out)
    rebuilt here gives the same probabilities, and the answer has no task-free field."""
    model, _, version = learned
    task = api.digits[0]
    answer = api.predict(model, task.name, task.x_test[:5], probabilities=True)
    assert set(answer) == {"model", "version", "task", "predictions", "probabilities"}
    stored = load_safetensors(api.http.get(f"/v1/models/{model}/versions/{version}/checkpoint").content)
    theta = {k: v for k, v in stored.items() if not k.startswith(("task_free.", "class_statistics."))}
    net = load_network(api.get(f"/v1/models/{model}")["architecture"], theta).eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(task.x_test[:5]).float(), task.name).softmax(1)
    assert np.allclose(answer["probabilities"], expected.numpy(), atol=1e-6)
    assert answer["predictions"] == expected.argmax(1).tolist()


def test_every_route_answers_without_a_task(api: Api, learned) -> None:
    model, _, version = learned
    x = api.digits[1].x_test[:3]
    by_json = api.http.post(f"/v1/models/{model}/predict", json={"inputs": x.tolist()}).json()
    by_npy = api.http.post(f"/v1/models/{model}/predict", content=api.npy_bytes(x.astype(np.float32)),
                           headers={"content-type": "application/x-npy"})
    assert by_npy.status_code == 200, by_npy.text
    by_get = api.http.get(f"/v1/models/{model}/predict", params={"inputs": json.dumps(x.tolist())})
    assert by_get.status_code == 200, by_get.text
    old = api.http.post(f"/v1/models/{model}/predict", json={"inputs": x.tolist(), "version": 1})
    for answer in (by_npy.json(), by_get.json()):
        assert answer["labels"] == by_json["labels"] and answer["version"] == version
    assert old.status_code == 200 and {t for t in old.json()["tasks"]} == {api.digits[0].name}


def test_version_0_cannot_answer_without_a_task(api: Api, learned) -> None:
    model, _, _ = learned
    response = api.http.post(f"/v1/models/{model}/predict", json={"inputs": api.digits[0].x_test[:1].tolist(),
                                                                    "version": 0})
    assert response.status_code == 409 and "no task" in response.json()["detail"]


def test_the_version_details_show_the_predictor_and_its_statistics(api: Api, learned) -> None:
    model, first, second = learned
    details = api.get(f"/v1/models/{model}/versions/{second}")["task_free"]
    assert details["predictor"] == "ridge" and details["held_back_from"] == "validation"
    assert details["held_back_rows"] > 0 and 0 <= details["accuracy"] <= 1 and details["ece"] is not None
    assert set(details["predictors"]) == {"max_softmax", "energy", "ncm", "ridge", "ridge_routed"}
    assert details["unknown_rate"] == 0.05 and details["threshold"] is not None
    tasks = details["tasks"]
    assert list(tasks) == [api.digits[0].name, api.digits[1].name]
    # The trunk moved when the second task trained: the first task's statistics were measured again.
    assert tasks[api.digits[0].name] | {"blob": None} == {"n": tasks[api.digits[0].name]["n"], "at_this_trunk": True,
                                                           "remeasured": True, "blob": None,
                                                           "reference_rows": tasks[api.digits[0].name]["n"],
                                                           "kept_because": None}
    assert tasks[api.digits[1].name]["remeasured"] is False
    before = api.get(f"/v1/models/{model}/versions/{first}")["task_free"]["tasks"][api.digits[0].name]
    assert before["blob"] != tasks[api.digits[0].name]["blob"]


def test_the_evaluation_matrix_has_a_task_free_column(api: Api, learned) -> None:
    model, _, _ = learned
    rows = api.get(f"/v1/models/{model}/evaluation")["rows"]
    assert [set(row["task_free"]) for row in rows] == [{"accuracy", "task_accuracy", "ece"}] * 2
    assert rows[0]["task_free"]["accuracy"] >= 0.9 and rows[1]["task_free"]["accuracy"] > 0.8


def test_a_refresh_keeps_the_statistics_and_a_patch_changes_the_predictor(api: Api, learned) -> None:
    model, _, second = learned
    refreshed = api.refresh(model, data={"inputs": api.digits[1].x_test[:20].tolist()})["result"]["version"]
    kept = api.get(f"/v1/models/{model}/versions/{refreshed}")["task_free"]
    assert kept["tasks"] == api.get(f"/v1/models/{model}/versions/{second}")["task_free"]["tasks"]
    response = api.http.patch(f"/v1/models/{model}", json={"task_free": {"predictor": "ncm", "unknown_rate": 0.2}})
    assert response.status_code == 200 and response.json()["task_free"]["predictor"] == "ncm"
    answer = api.http.post(f"/v1/models/{model}/predict", json={"inputs": api.digits[0].x_test.tolist()}).json()
    assert answer["predictor"] == "ncm" and answer["threshold"] > kept["threshold"]
    bad = api.http.patch(f"/v1/models/{model}", json={"task_free": {"predictor": "oracle"}})
    assert bad.status_code == 422
    bad = api.http.patch(f"/v1/models/{model}", json={"task_free": {"projection": 64}})
    assert bad.status_code == 422
    api.http.patch(f"/v1/models/{model}", json={"task_free": {"predictor": "ridge", "unknown_rate": 0.05}})


def test_the_checkpoint_and_the_blob_collector_cover_the_statistics(api: Api, learned, tmp_path) -> None:
    model, _, version = learned
    response = api.http.get(f"/v1/models/{model}/versions/{version}/checkpoint")
    path = tmp_path / "v.safetensors"
    path.write_bytes(response.content)
    with safe_open(str(path), framework="pt") as opened:
        keys = set(opened.keys())
        metadata = opened.metadata()
    assert {f"class_statistics.{api.digits[0].name}.gram", "task_free.ridge", "task_free.projection"} <= keys
    assert json.loads(metadata["task_free"])["meta"]["tasks"] == [api.digits[0].name, api.digits[1].name]


def test_the_guard_can_require_a_task_free_accuracy(api: Api) -> None:
    model = api.create_model("tfguard", promotion={"policy": "guarded", "max_forgetting": 1.0,
                                                   "min_task_free_accuracy": 0.999})
    first = api.submit_task(model, api.digits[0])
    job = api.wait_job(first["id"])
    second = api.wait_job(api.submit_task(model, api.digits[1])["id"])
    accuracy = api.get(f"/v1/models/{model}/evaluation")
    promotion = second["result"]["promotion"]
    measured = api.get(f"/v1/models/{model}/versions/{second['result']['version']}")["task_free"]["eval"]["ridge"]
    if measured["accuracy"] < 0.999:
        assert promotion["promoted"] is False
        assert promotion["violations"][0]["rule"] == "min_task_free_accuracy"
        assert promotion["violations"][0]["after"] == measured["accuracy"]
    else:
        assert promotion["promoted"] is True
    assert job["state"] == "succeeded" and accuracy is not None


@pytest.mark.parametrize("body, status", [
    ({"inputs": [[0.0] * 63]}, 422),
    ({"inputs": [[0.0] * 64], "task": "Bad Name"}, 422),
    ({"inputs": [[0.0] * 64], "task": "nope"}, 404),
])
def test_bad_task_free_requests_are_clear_4xx(api: Api, learned, body, status) -> None:
    model, _, _ = learned
    response = api.http.post(f"/v1/models/{model}/predict", json=body)
    assert response.status_code == status and response.json()["detail"]


def test_evaluate_without_a_task_scores_every_class(api: Api, learned) -> None:
    model, _, version = learned
    first, second = api.digits[0], api.digits[1]
    x = np.concatenate([first.x_test, second.x_test])
    y = np.concatenate([first.y_test, second.y_test + 2])  # global class indices: tasks in the order learned
    response = api.http.post(f"/v1/models/{model}/evaluate",
                             json={"data": {"inputs": x.tolist(), "labels": y.tolist()}, "version": version})
    assert response.status_code == 200, response.text
    scored = response.json()
    assert scored["version"] == version and scored["task"] is None and scored["n"] == len(x)
    assert set(scored["task_free"]) == {"accuracy", "task_accuracy", "ece", "unknown"}
    assert scored["task_free"]["accuracy"] == scored["accuracy"] > 0.8
    assert scored["task_free"]["task_accuracy"] >= scored["task_free"]["accuracy"]
    assert len(scored["confusion_matrix"]) == 4 and [c["label"] for c in scored["per_class"]][2] == f"{second.name}/0"
    # The matrix's task-free column is the same predictor on the same eval sets: the same answers; the ECE
    # within float32 rounding (the job and the API run the rows in passes of other sizes: 2e-9 seen).
    row = api.get(f"/v1/models/{model}/evaluation")["rows"][-1]["task_free"]
    assert abs(row["accuracy"] - scored["accuracy"]) < 1e-9 and abs(row["ece"] - scored["task_free"]["ece"]) < 1e-6
    out_of_range = api.http.post(f"/v1/models/{model}/evaluate",
                                 json={"data": {"inputs": x[:2].tolist(), "labels": [0, 4]}})
    assert out_of_range.status_code == 422 and out_of_range.json()["detail"]
