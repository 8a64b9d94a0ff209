"""Flips over HTTP with a real worker: each train version's flips against its parent in the accuracy matrix
and in `POST …/evaluate`, and the guard's `max_negative_flip_rate` refusing an update that breaks answers."""

from __future__ import annotations

import numpy as np

from tests.conftest import Api


def test_flips_are_in_the_matrix_and_evaluate_and_guard_promotion(api: Api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("flips", promotion={"policy": "guarded", "max_forgetting": 1.0,
                                                 "max_negative_flip_rate": 0.0})
    job = api.wait_job(api.submit_task(model, first)["id"])
    assert job["result"]["promotion"]["promoted"] is True  # the first task has nothing to flip
    # Fine-tuning the whole trunk hard on the second task breaks answers to the first.
    broken = api.wait_job(api.submit_task(model, second, method="finetune", lr=0.5, epochs=10)["id"])
    version = broken["result"]["version"]
    rows = {row["version"]: row for row in api.get(f"/v1/models/{model}/evaluation")["rows"]}
    assert rows[1]["negative_flips"] == {} and rows[1]["positive_flips"] == {}
    detail_flips = api.get(f"/v1/models/{model}/versions/{version}")
    scored = api.http.post(f"/v1/models/{model}/evaluate", json={
        "task": first.name, "version": version,
        "data": {"inputs": first.x_test.tolist(), "labels": first.y_test.tolist()}}).json()
    assert scored["parent"] == 1 and set(scored["negative_flips"]) == {first.name}
    negative = scored["negative_flips"][first.name]
    # The eval set is the first task's: evaluate's flips equal the job's, and they are real churn.
    promotion = broken["result"]["promotion"]
    if negative > 0:
        assert promotion["promoted"] is False
        [violation] = promotion["violations"]
        assert (violation["task"], violation["rule"]) == (first.name, "max_negative_flip_rate")
        assert abs(violation["after"] - negative) < 1e-9
    else:
        assert promotion["promoted"] is True
    accuracy_drop = detail_flips["accuracy"][first.name] - api.get(f"/v1/models/{model}/versions/1")["accuracy"][
        first.name]
    assert abs(scored["positive_flips"][first.name] - negative - accuracy_drop) < 1e-9  # net change = pos − neg
    moved = api.http.put(f"/v1/models/{model}/aliases/production", json={"version": version, "reason": "test"})
    assert moved.status_code == 200, moved.text
    row = {r["version"]: r for r in api.get(f"/v1/models/{model}/evaluation")["rows"]}[version]
    assert abs(row["negative_flips"][first.name] - negative) < 1e-9  # the job's flips, on the same eval set
    assert abs(row["positive_flips"][first.name] - scored["positive_flips"][first.name]) < 1e-9
    free = api.http.post(f"/v1/models/{model}/evaluate", json={
        "version": version, "data": {"inputs": first.x_test.tolist(), "labels": first.y_test.tolist()}}).json()
    assert set(free["negative_flips"]) == {first.name} and 0 <= free["negative_flips"][first.name] <= 1
    assert np.isfinite(free["positive_flips"][first.name])
