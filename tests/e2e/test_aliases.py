"""Aliases and promotion end to end, through the real API and a real worker: the guarded policy keeps a
bad update as candidate and serves production on, manual waits for a person, auto is what it always was,
refreshes follow their base, and every move is in the alias's history and in the model's (deleted aliases too)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.conftest import Api

# A fine-tune at a huge learning rate: the job succeeds, and the first task's accuracy collapses to chance.
WRECKING = {"method": "finetune", "lr": 5.0}


def _model(api: Api, prefix: str, promotion: dict[str, Any] | None = None) -> str:
    name = api.unique(prefix)
    body = {"name": name, "architecture": {"kind": "mlp", "input_shape": [64], "hidden": [32]}, "seed": 0}
    response = api.http.post("/v1/models", json=body if promotion is None else {**body, "promotion": promotion})
    assert response.status_code == 201, response.text
    return name


def _job(api: Api, model: str, task, **overrides: Any) -> dict[str, Any]:  # noqa: ANN001 - a DigitsTask
    job = api.wait_job(api.submit_task(model, task, **overrides)["id"])
    assert job["state"] == "succeeded", job
    return job


def _aliases(api: Api, model: str) -> dict[str, int]:
    return {a["alias"]: a["version"] for a in api.get(f"/v1/models/{model}/aliases")}


def _history(api: Api, model: str, alias: str) -> list[tuple[int | None, int | None, str | None]]:
    return [(m["from"], m["to"], m["by"]) for m in api.get(f"/v1/models/{model}/aliases/{alias}/history")]


def test_guarded_keeps_a_bad_update_as_candidate_and_serves_production(api: Api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = _model(api, "guarded")
    assert api.get(f"/v1/models/{model}")["promotion"] == {"policy": "guarded", "max_forgetting": 0.05,
                                                           "min_accuracy": None, "min_task_free_accuracy": None,
     "max_negative_flip_rate": None}
    good = _job(api, model, first)
    assert good["result"]["version"] == 1 and good["result"]["promotion"]["promoted"] is True
    before = api.predict(model, first.name, first.x_test, probabilities=True)
    assert before["version"] == 1

    bad = _job(api, model, second, **WRECKING)
    assert bad["result"]["version"] == 2
    promotion = bad["result"]["promotion"]
    assert (promotion["promoted"], promotion["policy"], promotion["alias"]) == (False, "guarded", "candidate")
    [violation] = promotion["violations"]
    assert violation["task"] == first.name and violation["rule"] == "max_forgetting"
    assert violation["drop"] > 0.3 and violation["before"] - violation["after"] == pytest.approx(violation["drop"])
    assert first.name in promotion["reason"] and "max_forgetting 0.05" in promotion["reason"]

    model_info = api.get(f"/v1/models/{model}")
    assert model_info["head"] == 1 and model_info["aliases"] == {"production": 1, "candidate": 2}
    assert _aliases(api, model) == {"production": 1, "candidate": 2}
    assert api.predict(model, first.name, first.x_test, probabilities=True) == before  # still version 1
    kept = api.predict(model, first.name, first.x_test, alias="candidate")
    assert (kept["version"], kept["alias"]) == (2, "candidate")
    assert (np.array(kept["predictions"]) == first.y_test).mean() < 0.8  # what the guard kept out
    assert [v["aliases"] for v in api.get(f"/v1/models/{model}/versions")] == [[], ["production"], ["candidate"]]

    # The next task builds on production, not on the kept version.
    retry = _job(api, model, second)
    assert retry["base_version"] == 1 and retry["result"]["promotion"]["promoted"] is True
    assert api.get(f"/v1/models/{model}/versions/3")["parent"] == 1
    assert _aliases(api, model) == {"production": 3, "candidate": 2}
    assert _history(api, model, "production") == [(1, 3, f"job {retry['id']}"), (0, 1, f"job {good['id']}"),
                                                  (None, 0, None)]
    [kept_move] = api.get(f"/v1/models/{model}/aliases/candidate/history")
    assert (kept_move["to"], kept_move["job"], kept_move["key"]) == (2, bad["id"], None)
    assert kept_move["reason"] == promotion["reason"]


def test_min_accuracy_cannot_be_checked_without_an_eval_set(api: Api) -> None:
    task = api.digits[0]
    model = _model(api, "minacc", {"policy": "guarded", "min_accuracy": 0.5})
    job = _job(api, model, task, eval=None)
    promotion = job["result"]["promotion"]
    assert promotion["promoted"] is False and promotion["unchecked"] == [task.name]
    assert "no eval set" in promotion["reason"] and promotion["violations"] == []
    assert _aliases(api, model) == {"production": 0, "candidate": 1}

    # Without min_accuracy the same unchecked task is promoted, and the result says it was unchecked.
    changed = api.http.patch(f"/v1/models/{model}", json={"promotion": {"min_accuracy": None}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["promotion"] == {"policy": "guarded", "max_forgetting": 0.05, "min_accuracy": None,
                                           "min_task_free_accuracy": None,
     "max_negative_flip_rate": None}
    unchecked = _job(api, model, api.digits[1], eval=None, base_alias="candidate")
    assert unchecked["base_version"] == 1
    assert unchecked["result"]["promotion"]["promoted"] is False  # its base (1) is not production (0)
    assert "production moved from version 1 to 0" in unchecked["result"]["promotion"]["reason"]
    promoted = _job(api, model, api.digits[1], eval=None)
    assert promoted["base_version"] == 0 and promoted["result"]["promotion"]["promoted"] is True
    assert promoted["result"]["promotion"]["unchecked"] == [api.digits[1].name]


def test_manual_waits_as_candidate_until_production_is_moved(api: Api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = _model(api, "manual", {"policy": "manual"})
    job = _job(api, model, first)
    assert job["result"]["promotion"]["promoted"] is False and "manual" in job["result"]["promotion"]["reason"]
    assert _aliases(api, model) == {"production": 0, "candidate": 1}
    unserved = api.http.post(f"/v1/models/{model}/predict", json={"task": first.name, "inputs": [[0.0] * 64]})
    assert unserved.status_code == 404  # production (version 0) has learned no task yet
    assert api.predict(model, first.name, first.x_test[:3], alias="candidate")["version"] == 1

    moved = api.http.put(f"/v1/models/{model}/aliases/production", json={"version": 1, "reason": "looked good"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["alias"], moved.json()["version"]) == ("production", 1) and moved.json()["updated_at"]
    assert api.get(f"/v1/models/{model}")["head"] == 1
    assert api.predict(model, first.name, first.x_test[:3])["version"] == 1
    [latest, *_] = api.get(f"/v1/models/{model}/aliases/production/history")
    assert (latest["from"], latest["to"], latest["reason"], latest["by"]) == (0, 1, "looked good", None)

    job = _job(api, model, second)
    assert job["base_version"] == 1 and _aliases(api, model) == {"production": 1, "candidate": 2}


def test_auto_moves_production_and_a_stale_base_conflicts(api: Api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = _model(api, "auto", {"policy": "auto"})
    job = _job(api, model, first)
    assert job["result"]["promotion"] == {"promoted": True, "policy": "auto", "alias": "production",
                                          "reason": "policy auto: a successful job moves production",
                                          "violations": [], "unchecked": []}
    wrecked = _job(api, model, second, **WRECKING)  # auto promotes whatever succeeds, as before aliases
    assert wrecked["result"]["promotion"]["promoted"] and _aliases(api, model) == {"production": 2}

    stale = api.wait_job(api.submit_task(model, api.digits[2], base_version=1)["id"])
    assert stale["state"] == "failed" and stale["error"]["type"] == "conflict"
    assert "production moved from version 1 to 2" in stale["error"]["message"]
    assert [v["version"] for v in api.get(f"/v1/models/{model}/versions")] == [0, 1, 2]
    # PUT …/head is the first API's move of production, and is recorded as one.
    assert api.http.put(f"/v1/models/{model}/head", json={"version": 1}).json()["head"] == 1
    assert _history(api, model, "production")[0] == (2, 1, None)


def test_a_refresh_is_promoted_only_when_it_starts_from_production(api: Api) -> None:
    task = api.digits[0]
    model = _model(api, "refresh")
    trained = _job(api, model, task)["result"]["version"]
    on_production = api.refresh(model, data={"inputs": task.x_test[:40].tolist()})
    assert on_production["result"]["promotion"]["promoted"] is True
    assert _aliases(api, model) == {"production": on_production["result"]["version"]}

    elsewhere = api.refresh(model, data={"inputs": task.x_test[:40].tolist()}, base_version=trained)
    promotion = elsewhere["result"]["promotion"]
    assert promotion["promoted"] is False and "production moved" in promotion["reason"]
    assert _aliases(api, model) == {"production": on_production["result"]["version"],
                                    "candidate": elsewhere["result"]["version"]}
    by_alias = api.refresh(model, data={"inputs": task.x_test[:40].tolist()}, base_alias="production")
    assert by_alias["base_version"] == on_production["result"]["version"]
    assert by_alias["result"]["promotion"]["promoted"] is True


def test_predictions_name_a_version_by_number_or_by_alias_in_every_body(api: Api) -> None:
    task = api.digits[0]
    model = _model(api, "predalias", {"policy": "auto"})
    _job(api, model, task)
    assert api.http.put(f"/v1/models/{model}/aliases/canary", json={"version": 0}).status_code == 200
    rows = task.x_test[:5]
    path = f"/v1/models/{model}/predict"
    by_version = api.predict(model, task.name, rows, version=1)
    by_alias = api.predict(model, task.name, rows, alias="production")
    assert by_alias == {**by_version, "alias": "production"} and "alias" not in by_version
    npy = api.http.post(path, params={"task": task.name, "alias": "production"},
                        content=api.npy_bytes(rows.astype(np.float32)), headers={"content-type": "application/x-npy"})
    queried = api.http.get(path, params={"task": task.name, "alias": "production",
                                         "inputs": json.dumps(rows.astype(np.float64).tolist())})
    assert npy.status_code == 200 and npy.json() == by_alias
    assert queried.status_code == 200 and queried.json() == by_alias
    canary = api.http.post(path, json={"task": task.name, "inputs": rows.tolist(), "alias": "canary"})
    assert canary.status_code == 404 and "has no task" in canary.json()["detail"]  # canary is version 0

    both = {"task": task.name, "inputs": rows.tolist(), "version": 1, "alias": "production"}
    assert api.http.post(path, json=both).status_code == 422
    npy_both = api.http.post(path, params={"task": task.name, "alias": "production", "version": 1},
                             content=api.npy_bytes(rows.astype(np.float32)),
                             headers={"content-type": "application/x-npy"})
    assert npy_both.status_code == 422 and "not both" in npy_both.json()["detail"]
    get_both = api.http.get(path, params={"task": task.name, "alias": "production", "version": 1,
                                          "inputs": "[[0.0]]"})
    assert get_both.status_code == 422
    unknown = api.http.post(path, json={"task": task.name, "inputs": rows.tolist(), "alias": "nope"})
    assert unknown.status_code == 404 and "no alias 'nope'" in unknown.json()["detail"]


def test_alias_refusals(api: Api) -> None:
    model = _model(api, "refusals")
    aliases = f"/v1/models/{model}/aliases"
    for bad in ("Upper", "-lead", "a" * 65, "dot.ted"):
        assert api.http.put(f"{aliases}/{bad}", json={"version": 0}).status_code == 422, bad
    assert api.http.put(f"{aliases}/canary", json={"version": 7}).status_code == 404
    assert api.http.put(f"{aliases}/canary", json={"version": 0, "extra": 1}).status_code == 422
    assert api.http.get(f"{aliases}/nope").status_code == 404
    assert api.http.get(f"{aliases}/nope/history").status_code == 404
    assert api.http.delete(f"{aliases}/nope").status_code == 404
    refused = api.http.delete(f"{aliases}/production")
    assert refused.status_code == 409 and "production" in refused.json()["detail"]
    assert api.http.get("/v1/models/nope-nope/aliases").status_code == 404

    assert api.http.put(f"{aliases}/canary", json={"version": 0, "reason": "try it"}).status_code == 200
    assert api.get(f"{aliases}/canary")["version"] == 0
    assert api.http.delete(f"{aliases}/canary").status_code == 204
    assert api.http.get(f"{aliases}/canary").status_code == 404
    assert _history(api, model, "canary") == [(0, None, None), (None, 0, None)]  # deleted, then its history stays

    task = api.digits[0]
    both = api.http.post(f"/v1/models/{model}/tasks", json=api.task_body(task, base_version=0,
                                                                         base_alias="production"))
    assert both.status_code == 422
    unknown = api.http.post(f"/v1/models/{model}/tasks", json=api.task_body(task, base_alias="nope"))
    assert unknown.status_code == 404
    for promotion in ({"policy": "sometimes"}, {"max_forgetting": 2}, {"min_accuracy": -0.1}, {"other": 1}):
        assert api.http.patch(f"/v1/models/{model}", json={"promotion": promotion}).status_code == 422, promotion
        assert api.http.post("/v1/models", json={"name": api.unique("bad"), "promotion": promotion,
                                                 "architecture": {"kind": "mlp", "input_shape": [4]}}
                             ).status_code == 422, promotion
    assert api.http.patch(f"/v1/models/{model}", json={"promotion": {"policy": None}}).status_code == 422
    assert api.http.patch("/v1/models/nope-nope", json={"promotion": {"policy": "auto"}}).status_code == 404


def test_the_model_wide_history_keeps_every_alias_a_deleted_one_included(api: Api) -> None:
    model = _model(api, "everywhere", {"policy": "auto"})
    job = _job(api, model, api.digits[0], epochs=1)  # production 0 → 1
    aliases = f"/v1/models/{model}/aliases"
    for method, alias, body in (("PUT", "canary", {"version": 0, "reason": "try it"}),
                                ("PUT", "staging", {"version": 1}),
                                ("PUT", "canary", {"version": 1, "reason": "forward"}),
                                ("DELETE", "canary", None)):
        response = api.http.request(method, f"{aliases}/{alias}", json=body)
        assert response.status_code in (200, 204), response.text
    assert _aliases(api, model) == {"production": 1, "staging": 1}  # canary is gone from the list …
    assert api.http.get(f"{aliases}/canary").status_code == 404

    everything = f"/v1/models/{model}/alias-history"
    moves = api.get(everything)  # … and every move of it is still in the model's history, newest first
    assert [(m["alias"], m["from"], m["to"]) for m in moves] == [
        ("canary", 1, None), ("canary", 0, 1), ("staging", None, 1), ("canary", None, 0), ("production", 0, 1),
        ("production", None, 0)]
    assert [m["reason"] for m in moves if m["alias"] == "canary"] == [None, "forward", "try it"]
    assert moves[4]["job"] == job["id"] and moves[4]["by"] == f"job {job['id']}"
    assert moves[0]["by"] is None and moves[0]["at"] >= moves[1]["at"]  # a server without keys: nobody named
    # The same items as each alias's own history: the one filtered by `alias`, the other kept whole.
    assert api.get(everything, alias="canary") == api.get(f"{aliases}/canary/history") == [
        m for m in moves if m["alias"] == "canary"]
    assert api.get(everything, limit=2) == moves[:2]
    assert api.get(everything, alias="never-named") == []

    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"alias": "Upper"}, {"alias": "-lead"}):
        assert api.http.get(everything, params=params).status_code == 422, params
    assert api.http.get("/v1/models/nope-nope/alias-history").status_code == 404
    # Why the route is not …/aliases/history: "history" is an alias name like any other.
    assert api.http.put(f"{aliases}/history", json={"version": 0}).status_code == 200
    named = api.get(f"{aliases}/history")
    assert (named["alias"], named["version"]) == ("history", 0)
    assert api.get(everything, limit=1)[0]["alias"] == "history"


def test_the_history_names_the_key_that_moved_an_alias(service_factory, api_factory, tmp_path) -> None:  # noqa: ANN001
    from tests.security.conftest import run_cli

    secured = service_factory(tmp_path / "var")
    made = run_cli(secured.var_dir, "keys", "create", "--scope", "write", "--name", "mover")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    prefix = token.split("_")[1]
    api = api_factory(secured)
    api.http.headers["Authorization"] = f"Bearer {token}"
    model = _model(api, "keyed", {"policy": "manual"})
    _job(api, model, api.digits[0], epochs=1)
    assert api.http.put(f"/v1/models/{model}/aliases/production",
                        json={"version": 1, "reason": "signed off"}).status_code == 200
    moves = api.get(f"/v1/models/{model}/aliases/production/history")
    assert [(m["from"], m["to"], m["key"], m["by"], m["reason"]) for m in moves] == [
        (0, 1, prefix, f"key {prefix}", "signed off"), (None, 0, prefix, f"key {prefix}", "model created")]
    [candidate] = api.get(f"/v1/models/{model}/aliases/candidate/history")
    assert candidate["key"] is None and candidate["by"].startswith("job ")
