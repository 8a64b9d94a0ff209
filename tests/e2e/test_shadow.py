"""A shadow over HTTP: production's predictions (named task, task-free, .npy) replayed on the candidate off
the request path, agreement overall and per task, the most frequent disagreements; only production's
requests are sampled; the counts survive a restart; the shadow ends when its alias moves."""

from __future__ import annotations

import json

import numpy as np
from click.testing import Result
from typer.testing import CliRunner

from app.cli import cli
from app.client import Client
from tests.conftest import Api


def _shadow(api: Api, model: str, *, rows: int) -> dict:
    return api.wait_for(lambda: (s := api.get(f"/v1/models/{model}/shadow"))["compared"] >= rows and s,
                        deadline_s=30, what=f"{rows} rows compared")


def test_the_candidate_shadows_production_and_the_counts_survive_a_restart(service_factory, api_factory,
                                                                          tmp_path) -> None:
    var_dir = tmp_path / "var"
    first_service = service_factory(var_dir)
    api = api_factory(first_service)
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("shadowed", promotion={"policy": "auto"})
    api.learn(model, first)
    api.http.patch(f"/v1/models/{model}", json={"promotion": {"policy": "manual"}})
    candidate = api.learn(model, second, method="finetune", lr=0.5, epochs=10)  # kept as candidate: production is 1
    refused = api.http.put(f"/v1/models/{model}/shadow", json={"alias": "production", "fraction": 1.0})
    assert refused.status_code == 422
    assert api.http.put(f"/v1/models/{model}/shadow", json={"alias": "nope", "fraction": 1.0}).status_code == 404
    assert api.http.put(f"/v1/models/{model}/shadow", json={"alias": "candidate", "fraction": 0}).status_code == 422
    response = api.http.put(f"/v1/models/{model}/shadow", json={"alias": "candidate", "fraction": 1.0})
    assert response.status_code == 200, response.text
    assert (response.json()["version"], response.json()["compared"]) == (candidate, 0)

    x = first.x_test[:30]
    served = api.predict(model, first.name, x)  # production answers as always
    assert served["version"] == 1
    api.http.post(f"/v1/models/{model}/predict", json={"inputs": x[:10].tolist()})  # task-free
    api.http.post(f"/v1/models/{model}/predict", params={"task": first.name},
                  content=api.npy_bytes(x[:5].astype(np.float32)), headers={"content-type": "application/x-npy"})
    api.predict(model, first.name, x, version=1)  # by number: not production's traffic, not sampled
    shadow = _shadow(api, model, rows=45)
    assert shadow["compared"] == 45 and shadow["dropped"] == 0 and shadow["alias"] == "candidate"
    assert set(shadow["tasks"]) <= {first.name, second.name} and shadow["tasks"][first.name]["compared"] >= 35
    agreed = round(shadow["agreement"] * shadow["compared"])
    assert sum(d["count"] for d in shadow["disagreements"]) == shadow["compared"] - agreed
    counts = [d["count"] for d in shadow["disagreements"]]
    assert counts == sorted(counts, reverse=True)

    # The careless candidate's flips against its parent on the first task: what its job measured on the same
    # eval set, and the net change of accuracy is positive minus negative flips.
    scored = api.http.post(f"/v1/models/{model}/evaluate", json={
        "task": first.name, "version": candidate,
        "data": {"inputs": first.x_test.tolist(), "labels": first.y_test.tolist()}}).json()
    assert scored["parent"] == 1 and set(scored["negative_flips"]) == {first.name}
    negative, positive = scored["negative_flips"][first.name], scored["positive_flips"][first.name]
    assert negative > 0.1  # fine-tuning hard on the second task broke answers to the first
    details = {v: api.get(f"/v1/models/{model}/versions/{v}") for v in (1, candidate)}
    assert details[1]["flips"] == {}  # the first task had nothing to flip
    assert details[candidate]["flips"][first.name] == {"negative": negative, "positive": positive,
                                                      "n": len(first.y_test)}  # the job's, on the same eval set
    change = details[candidate]["accuracy"][first.name] - details[1]["accuracy"][first.name]
    assert abs(positive - negative - change) < 1e-9
    free = api.http.post(f"/v1/models/{model}/evaluate", json={
        "version": candidate, "data": {"inputs": first.x_test.tolist(), "labels": first.y_test.tolist()}}).json()
    assert set(free["negative_flips"]) == {first.name} and 0 <= free["negative_flips"][first.name] <= 1

    # The counts are the database's: a restarted service reports them and goes on counting.
    first_service.stop()
    again = api_factory(service_factory(var_dir))
    assert again.get(f"/v1/models/{model}/shadow")["compared"] == 45
    again.predict(model, first.name, x[:7])
    assert _shadow(again, model, rows=52)["compared"] == 52

    moved = again.http.put(f"/v1/models/{model}/aliases/candidate", json={"version": 1, "reason": "test"})
    assert moved.status_code == 200, moved.text
    ended = again.http.get(f"/v1/models/{model}/shadow")
    assert ended.status_code == 404 and "no shadow" in ended.json()["detail"]


def test_a_shadow_can_be_ended_and_driven_from_the_cli_and_client(api: Api, service) -> None:
    model = api.create_model("unshadowed", promotion={"policy": "auto"})
    api.learn(model, api.digits[0])
    api.http.patch(f"/v1/models/{model}", json={"promotion": {"policy": "manual"}})
    api.learn(model, api.digits[1])
    runner = CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(cli, ["--url", service.url, "shadow", *args])
        return result

    assert run("set", model, "candidate", "--fraction", "1").exit_code == 0
    assert "compared: 0 rows" in run("show", model).stdout
    api.predict(model, api.digits[0].name, api.digits[0].x_test[:4])
    with Client(service.url) as client:
        state = api.wait_for(lambda: (s := client.shadow(model))["compared"] >= 4 and s, deadline_s=30,
                             what="4 rows compared")
        assert state["alias"] == "candidate" and state["version"] == 2
    shown = json.loads(run("show", model, "--json").stdout)
    assert shown["compared"] == 4 and "agreement" in run("show", model).stdout
    assert run("set", model, "production").exit_code != 0  # production cannot shadow itself
    assert run("end", model).exit_code == 0
    assert api.http.get(f"/v1/models/{model}/shadow").status_code == 404
    assert api.http.delete(f"/v1/models/{model}/shadow").status_code == 404
    assert run("show", model).exit_code != 0
