"""End to end through a real worker: learn split-digits tasks, predict, evaluate, refresh Ω, roll back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from app.mas.methods import METHODS
from tests.conftest import mlp_payload


def trained_rows(rows: int) -> int:
    """Rows a task trains on (and measures Ω on): 10 % are held back as its validation slice by default."""
    return rows - math.ceil(0.1 * rows)


def _importance(api, model: str, version: int, part: str) -> dict[str, np.ndarray]:
    response = api.http.get(f"/v1/models/{model}/versions/{version}/importance", params={"part": part})
    assert response.status_code == 200, response.text
    return load_safetensors(response.content)


def test_two_tasks_predictions_and_accuracy_matrix(api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("two")
    v1 = api.learn(model, first)
    v2 = api.learn(model, second)
    assert (v1, v2) == (1, 2)

    info = api.get(f"/v1/models/{model}")
    assert info["head"] == 2 and info["tasks"] == [first.name, second.name]
    detail = api.get(f"/v1/models/{model}/versions/2")
    assert detail["parent"] == 1 and detail["kind"] == "train" and detail["task"] == second.name
    assert detail["tasks"] == [first.name, second.name]
    assert set(detail["accuracy"]) == {first.name, second.name}
    assert detail["importance"]["n_open"] == trained_rows(len(second.x_train))
    assert any(layer["max"] > 0 for layer in detail["importance"]["layers"].values())

    for task in (first, second):
        result = api.predict(model, task.name, task.x_test, probabilities=True)
        assert result["model"] == model and result["version"] == 2 and result["task"] == task.name
        predictions = np.array(result["predictions"])
        assert (predictions == task.y_test).mean() > 0.9
        assert np.allclose(np.array(result["probabilities"]).sum(axis=1), 1.0, atol=1e-5)
        assert np.array_equal(np.array(result["probabilities"]).argmax(axis=1), predictions)

    evaluation = api.get(f"/v1/models/{model}/evaluation")
    assert evaluation["tasks"] == [first.name, second.name]
    assert [(row["version"], row["task"]) for row in evaluation["rows"]] == [(1, first.name), (2, second.name)]
    assert list(evaluation["rows"][0]["accuracy"]) == [first.name]
    last = evaluation["rows"][1]["accuracy"]
    assert evaluation["average_accuracy"] == (last[first.name] + last[second.name]) / 2
    assert evaluation["bwt"] == last[first.name] - evaluation["rows"][0]["accuracy"][first.name]
    assert evaluation["forgetting"] is not None and evaluation["average_accuracy"] > 0.9

    job = api.get("/v1/jobs", model=model)[0]
    assert job["state"] == "succeeded" and job["progress"]["done"] == job["progress"]["total"] > 0
    assert job["progress"]["unit"] == "steps" and job["attempts"] == 1


def test_three_ways_to_predict_agree(api) -> None:
    task = api.digits[0]
    model = api.create_model("ways")
    api.learn(model, task)
    # The most rows a GET takes, with values short enough for httpx's 64 KiB URLs.
    rows = np.round(task.x_test[:100].astype(np.float64), 2)
    compact = json.dumps(rows.tolist(), separators=(",", ":"))
    posted = api.predict(model, task.name, rows, probabilities=True)
    queried = api.get(f"/v1/models/{model}/predict", task=task.name, inputs=compact, probabilities="true")
    raw = api.http.post(f"/v1/models/{model}/predict", params={"task": task.name, "probabilities": "true"},
                        content=api.npy_bytes(rows.astype(np.float32)), headers={"content-type": "application/x-npy"})
    assert raw.status_code == 200, raw.text
    assert posted == queried == raw.json()
    without = api.predict(model, task.name, rows)
    assert "probabilities" not in without and without["predictions"] == posted["predictions"]


def test_inline_data_and_importance_off(api) -> None:
    task = api.digits[2]
    model = api.create_model("inline")
    response = api.http.post(f"/v1/models/{model}/tasks", json={
        "task": task.name, "epochs": 3, "method": "finetune", "num_classes": 2, "importance": {"on": "none"},
        "train": {"inputs": task.x_train[:60].tolist(), "labels": task.y_train[:60].tolist()},
        "eval": {"inputs": task.x_test[:30].tolist(), "labels": task.y_test[:30].tolist()},
    })
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["state"] == "succeeded", job
    detail = api.get(f"/v1/models/{model}/versions/1")
    assert detail["importance"]["n_open"] == 0 and list(detail["accuracy"]) == [task.name]


def test_refresh_accumulate_in_two_requests_equals_one_request(api) -> None:
    task = api.digits[0]
    model = api.create_model("accumulate")
    trained = api.learn(model, task)
    part_a, part_b = task.x_test[:40], task.x_test[40:]
    first = api.refresh(model, data={"inputs": part_a.tolist()}, mode="accumulate")
    second = api.refresh(model, data={"inputs": part_b.tolist()}, mode="accumulate")
    assert first["state"] == second["state"] == "succeeded"
    two_requests = second["result"]["version"]

    assert api.http.put(f"/v1/models/{model}/head", json={"version": trained}).status_code == 200
    whole = api.refresh(model, data={"dataset": api.upload(api.npz_bytes(x=task.x_test))["id"]}, mode="accumulate")
    one_request = whole["result"]["version"]

    split, joined = (api.get(f"/v1/models/{model}/versions/{v}") for v in (two_requests, one_request))
    expected = trained_rows(len(task.x_train)) + len(task.x_test)
    assert split["importance"]["n_open"] == joined["importance"]["n_open"] == expected
    split_open = _importance(api, model, two_requests, "open")
    joined_open = _importance(api, model, one_request, "open")
    assert split_open.keys() == joined_open.keys()
    for name in split_open:
        np.testing.assert_allclose(split_open[name], joined_open[name], rtol=1e-5, atol=1e-7)
    # A refresh shares θ with its parent: same blob, same predictions, same accuracy.
    parent = api.get(f"/v1/models/{model}/versions/{trained}")
    assert split["theta_sha256"] == joined["theta_sha256"] == parent["theta_sha256"]
    assert split["accuracy"] == parent["accuracy"] and split["kind"] == "importance" and split["task"] == task.name
    assert [v["parent"] for v in api.get(f"/v1/models/{model}/versions")] == [None, 0, 1, 2, 1]


def test_refresh_replace_restarts_the_open_estimate(api) -> None:
    task = api.digits[1]
    model = api.create_model("replace")
    trained = api.learn(model, task)
    added = api.refresh(model, data={"inputs": task.x_test.tolist()})["result"]["version"]
    replaced = api.refresh(model, data={"inputs": task.x_test.tolist(), "labels": task.y_test.tolist()},
                           mode="replace", task=task.name)["result"]["version"]
    assert api.get(f"/v1/models/{model}/versions/{replaced}")["importance"]["n_open"] == len(task.x_test)
    # accumulate added exactly what replace now holds alone: Ω_open(added) − Ω_open(trained) = Ω_open(replaced).
    before, after, alone = (_importance(api, model, v, "open") for v in (trained, added, replaced))
    for name in alone:
        np.testing.assert_allclose(after[name] - before[name], alone[name], rtol=1e-4, atol=1e-6)
    tasks = {v: api.get(f"/v1/models/{model}/versions/{v}")["importance"]["tasks"] for v in (trained, replaced)}
    assert list(tasks[trained]) == list(tasks[replaced]) == [task.name]


def test_a_refresh_naming_an_earlier_task_changes_only_that_tasks_estimate(api) -> None:
    """MAS.md §4: the old design added such samples to the *last* task's open estimate (halving it)."""
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("pertask")
    api.learn(model, first)
    trained = api.learn(model, second)
    refreshed = api.refresh(model, data={"inputs": first.x_test.tolist()}, task=first.name)["result"]["version"]
    before, after = (api.get(f"/v1/models/{model}/versions/{v}")["importance"] for v in (trained, refreshed))
    assert list(after["tasks"]) == [first.name, second.name]
    assert after["tasks"][second.name] == before["tasks"][second.name]  # same blob, same n: untouched
    assert after["tasks"][first.name]["n"] == trained_rows(len(first.x_train)) + len(first.x_test)
    assert after["tasks"][first.name]["sha256"] != before["tasks"][first.name]["sha256"]
    assert after["tasks"][first.name]["measure"] == "mas" and after["n_open"] == trained_rows(len(second.x_train))

    # The total the next task is trained against is the sum of the per-task means (S_t / n_t).
    response = api.http.get(f"/v1/models/{model}/versions/{refreshed}/importance", params={"task": first.name})
    assert response.status_code == 200 and response.headers["x-lifelong-n"] == str(after["tasks"][first.name]["n"])
    first_mean = load_safetensors(response.content)
    second_mean = load_safetensors(api.http.get(f"/v1/models/{model}/versions/{refreshed}/importance",
                                                params={"task": second.name}).content)
    total = _importance(api, model, refreshed, "total")
    for name, value in total.items():
        expected = first_mean.get(name, 0) + second_mean.get(name, 0)
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-9)
    assert any(layer["max"] > 0 for layer in after["tasks"][first.name]["layers"].values())
    missing = api.http.get(f"/v1/models/{model}/versions/{refreshed}/importance", params={"task": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_a_version_says_how_it_was_made(api) -> None:
    task = api.digits[0]
    model = api.create_model("provenance")
    version = api.learn(model, task, epochs=3, lr=0.02, batch_size=16)
    made_by = api.get(f"/v1/models/{model}/versions/{version}")["made_by"]
    job = api.get(f"/v1/jobs/{made_by['job']}")
    assert made_by["request"] == job["request"]
    request = made_by["request"]
    assert (request["method"], request["lambda"], request["penalty"], request["optimizer"]) == ("mas", "auto",
                                                                                                 "proximal", "sgd")
    assert (request["lr"], request["momentum"], request["epochs"], request["batch_size"]) == (0.02, 0.9, 3, 16)
    assert request["train_dataset"] and request["importance"]["on"] == "train" and request["seed"] is not None
    assert made_by["lifelong"] and made_by["worker"] == job["worker"] and made_by["device"] == "cpu"
    assert made_by["precision"] == "fp32" and made_by["wall_s"] > 0
    # The first task has nothing to protect: λ "auto" trains once, with λ = 1.
    assert made_by["lambda"] == 1.0 and made_by["lambda_search"] == [] and made_by["resumed_from_step"] is None
    assert made_by["trained_rows"] == trained_rows(len(task.x_train))
    assert made_by["validation_rows"] == len(task.x_train) - made_by["trained_rows"]
    losses = made_by["loss_per_epoch"]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert api.get(f"/v1/models/{model}/versions/0")["made_by"] is None


def test_rollback_gives_identical_predictions(api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("rollback")
    v1 = api.learn(model, first)
    before = api.predict(model, first.name, first.x_test, probabilities=True)
    checkpoint_v1 = api.http.get(f"/v1/models/{model}/versions/{v1}/checkpoint")
    api.learn(model, second)
    moved = api.predict(model, first.name, first.x_test, probabilities=True)
    assert moved["version"] == 2 and moved["probabilities"] != before["probabilities"]

    response = api.http.put(f"/v1/models/{model}/head", json={"version": v1})
    assert response.status_code == 200 and response.json()["head"] == v1 and response.json()["tasks"] == [first.name]
    assert api.predict(model, first.name, first.x_test, probabilities=True) == before
    assert api.predict(model, first.name, first.x_test, probabilities=True, version=v1) == before
    # The rolled-back head no longer knows the second task, but its version can still be asked by number.
    assert api.http.post(f"/v1/models/{model}/predict",
                         json={"task": second.name, "inputs": second.x_test[:2].tolist()}).status_code == 404
    assert api.predict(model, second.name, second.x_test[:2], version=2)["version"] == 2
    assert api.get(f"/v1/models/{model}/evaluation")["tasks"] == [first.name]

    assert checkpoint_v1.status_code == 200
    theta = load_safetensors(checkpoint_v1.content)
    assert f"heads.{first.name}.weight" in theta and f"heads.{second.name}.weight" not in theta
    # Roll forward again.
    assert api.http.put(f"/v1/models/{model}/head", json={"version": 2}).json()["head"] == 2


@pytest.mark.parametrize("method", METHODS)
def test_every_method_learns_a_second_task(api, method: str) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model(method)
    api.learn(model, first, epochs=2)
    version = api.learn(model, second, epochs=2, method=method)
    detail = api.get(f"/v1/models/{model}/versions/{version}")
    assert detail["tasks"] == [first.name, second.name] and detail["importance"]["n_open"] > 0


def test_the_models_lambda_selection_is_the_default_of_its_requests(api) -> None:
    first, second, third = api.digits
    name = api.unique("selection")
    body = {**mlp_payload(name), "lambda_selection": {"rule": "mean"}}
    created = api.http.post("/v1/models", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["lambda_selection"] == {"rule": "mean", "new_task_tolerance": 0.02}
    api.learn(name, first, epochs=1)
    job = api.wait_job(api.submit_task(name, second, epochs=1, lambda_grid=[0.01, 1.0])["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["lambda_selection"]["rule"] == "mean"  # the model's rule: the request named none

    refused = api.http.post(f"/v1/models/{name}/tasks", json=api.task_body(third, new_task_tolerance=0.1))
    assert refused.status_code == 422 and "'mean'" in refused.json()["detail"], refused.text

    patched = api.http.patch(f"/v1/models/{name}", json={"lambda_selection": {"rule": "constrained",
                                                                              "new_task_tolerance": 0.1}})
    assert patched.json()["lambda_selection"] == {"rule": "constrained", "new_task_tolerance": 0.1}
    patched = api.http.patch(f"/v1/models/{name}", json={"lambda_selection": {"new_task_tolerance": 0.05}})
    assert patched.json()["lambda_selection"] == {"rule": "constrained", "new_task_tolerance": 0.05}  # rule stays
    job = api.wait_job(api.submit_task(name, third, epochs=1, lambda_grid=[0.01, 1.0])["id"])
    assert job["state"] == "succeeded", job
    choice = job["result"]["lambda_selection"]
    assert (choice["rule"], choice["new_task_tolerance"]) == ("constrained", 0.05)
    assert api.http.get(f"/v1/models/{name}").json()["lambda_selection"]["new_task_tolerance"] == 0.05

    for bad in ({"rule": "best"}, {"new_task_tolerance": 1.5}, {"new_task_tolerance": "0.1"}, {"other": 1}):
        assert api.http.patch(f"/v1/models/{name}", json={"lambda_selection": bad}).status_code == 422, bad
        refused = api.http.post("/v1/models", json={**mlp_payload(api.unique("bad")), "lambda_selection": bad})
        assert refused.status_code == 422, bad
    plain = api.create_model("plain")
    assert api.http.get(f"/v1/models/{plain}").json()["lambda_selection"] == {"rule": "constrained",
                                                                                 "new_task_tolerance": 0.02}


def test_lambda_auto_chooses_on_validation_rows_and_says_what_it_tried(api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("auto")
    api.learn(model, first)
    job = api.wait_job(api.submit_task(model, second, lambda_grid=[0.01, 1.0, 100.0])["id"])
    assert job["state"] == "succeeded", job
    detail = api.get(f"/v1/models/{model}/versions/{job['result']['version']}")
    made_by = detail["made_by"]
    search = made_by["lambda_search"]
    assert [trial["lambda"] for trial in search] == [0.01, 1.0, 100.0]
    for trial in search:  # scored on both tasks' held-back rows, never on eval sets
        assert set(trial["validation"]) == {first.name, second.name}
        assert trial["mean"] == (trial["validation"][first.name] + trial["validation"][second.name]) / 2
        assert set(trial["validation_loss"]) == {first.name, second.name} and trial["mean_loss"] > 0
    # The constrained rule (the default) on the validation loss: each slice holds fewer than 50 rows, so one row
    # is a coarser step than the 0.02 tolerance. Admissible: exp(−new-task loss) within 0.02 of the best; of
    # those, the lowest loss on the first task's slice.
    rows = math.ceil(0.1 * len(second.x_train))
    assert rows < 50
    fit = {trial["lambda"]: math.exp(-trial["validation_loss"][second.name]) for trial in search}
    admissible = [trial for trial in search if fit[trial["lambda"]] >= max(fit.values()) - 0.02]
    best = max(admissible, key=lambda trial: (-trial["validation_loss"][first.name],
                                              trial["validation"][first.name], trial["lambda"]))
    assert made_by["lambda"] == best["lambda"]
    assert job["result"]["lambda"] == best["lambda"] and job["result"]["lambda_search"] == search  # the job says so too
    choice = job["result"]["lambda_selection"]
    assert choice["rule"] == "constrained" and choice["new_task_tolerance"] == 0.02 and choice["basis"] == "loss"
    assert choice["admissible"] == [trial["lambda"] for trial in admissible] and choice["lambda"] == best["lambda"]
    assert f"{rows} rows" in choice["reason"] and made_by["lambda_selection"] == choice
    assert job["progress"]["total"] == 3 * 5 * math.ceil(trained_rows(len(second.x_train)) / 32)  # every trial's steps
    progress = job["progress"]  # where the last step stands: the last epoch of the last trial
    assert (progress["epoch"], progress["epochs"], progress["trial"], progress["trials"]) == (5, 5, 3, 3)

    refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]), "lambda": 2,
                                                                "lambda_selection": "mean"})
    assert refused.status_code == 422 and "lambda_selection" in refused.text
    refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]),
                                                                "lambda_selection": "mean", "new_task_tolerance": 0.1})
    assert refused.status_code == 422 and "new_task_tolerance" in refused.text
    for bad in ({"lambda_selection": "best"}, {"new_task_tolerance": 1.5}, {"new_task_tolerance": "0.1"}):
        refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]), **bad})
        assert refused.status_code == 422, bad
    refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]), "method": "finetune",
                                                                "new_task_tolerance": 0.1})
    assert refused.status_code == 422 and "new_task_tolerance" in refused.text
    refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]),
                                                                "validation_fraction": 0})
    assert refused.status_code == 422 and "validation_fraction" in refused.text
    refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]), "lambda": 2,
                                                                "lambda_grid": [1, 2]})
    assert refused.status_code == 422 and "lambda_grid" in refused.text
    refused = api.http.post(f"/v1/models/{model}/tasks", json={**api.task_body(api.digits[2]), "method": "finetune",
                                                                "penalty": "gradient"})
    assert refused.status_code == 422 and "penalty" in refused.text


def test_lambda_selection_is_a_request_option_and_the_job_says_which_rule_and_basis(api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("rules")
    api.learn(model, first)
    grid = [0.01, 1.0, 100.0]
    mean = api.wait_job(api.submit_task(model, second, lambda_grid=grid, lambda_selection="mean")["id"])
    assert mean["state"] == "succeeded", mean
    search = mean["result"]["lambda_search"]
    best = max(search, key=lambda trial: (trial["mean"], -trial["mean_loss"], trial["lambda"]))
    assert mean["result"]["lambda"] == best["lambda"]
    assert mean["result"]["lambda_selection"]["rule"] == "mean"
    assert mean["result"]["lambda_selection"]["basis"] == "accuracy"
    assert mean["result"]["lambda_selection"]["admissible"] == grid
    made_by = api.get(f"/v1/models/{model}/versions/{mean['result']['version']}")["made_by"]
    assert made_by["request"]["lambda_selection"] == "mean" and made_by["lambda_selection"]["rule"] == "mean"

    # A tolerance of 1 admits every λ, and one row of the slice is a finer step than it (the accuracy basis):
    # the least forgetting (best accuracy on the first task's slice, then its lower loss) wins.
    wide = api.wait_job(api.submit_task(model, second, lambda_grid=grid, new_task_tolerance=1.0,
                                        base_version=1)["id"])
    assert wide["state"] == "succeeded", wide
    trials = wide["result"]["lambda_search"]
    assert trials == search  # the same trials from the same start; only the choice differs
    least = max(trials, key=lambda trial: (trial["validation"][first.name], -trial["validation_loss"][first.name],
                                           trial["lambda"]))
    choice = wide["result"]["lambda_selection"]
    assert choice["rule"] == "constrained" and choice["new_task_tolerance"] == 1.0 and choice["basis"] == "accuracy"
    assert choice["admissible"] == grid and wide["result"]["lambda"] == least["lambda"] == choice["lambda"]


def test_a_new_heads_warm_up_is_a_request_option_and_the_version_says_how_many_passes(api) -> None:
    task = api.digits[0]
    warmed, cold = api.create_model("warm"), api.create_model("cold")
    warm_job = api.wait_job(api.submit_task(warmed, task, head_warmup=30)["id"])
    cold_job = api.wait_job(api.submit_task(cold, task)["id"])  # "auto": no pretrained weights, so none
    assert warm_job["state"] == cold_job["state"] == "succeeded", (warm_job, cold_job)
    assert warm_job["result"]["head_warmup"] == 30 and cold_job["result"]["head_warmup"] == 0
    warm_made = api.get(f"/v1/models/{warmed}/versions/{warm_job['result']['version']}")["made_by"]
    cold_made = api.get(f"/v1/models/{cold}/versions/{cold_job['result']['version']}")["made_by"]
    assert warm_made["head_warmup"] == 30 and warm_made["request"]["head_warmup"] == 30
    assert cold_made["head_warmup"] == 0 and cold_made["request"]["head_warmup"] == "auto"
    # The trunk's first epoch starts from a head that already fits the task's rows.
    assert warm_made["loss_per_epoch"][0] < cold_made["loss_per_epoch"][0]

    for bad in (-1, 10_001, "some", 2.5):
        refused = api.http.post(f"/v1/models/{warmed}/tasks", json={**api.task_body(api.digits[1]), "head_warmup": bad})
        assert refused.status_code == 422 and "head_warmup" in refused.text, bad
