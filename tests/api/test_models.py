"""Models over HTTP: create (version 0 as head), list, get, delete, and the refusals."""

from __future__ import annotations

import pytest


def test_create_model_starts_at_version_zero(api) -> None:
    name = api.create_model("create")
    model = api.get(f"/v1/models/{name}")
    assert model["head"] == 0 and model["tasks"] == []
    assert model["architecture"] == {"kind": "mlp", "input_shape": [64], "hidden": [32], "trainable": "all"}
    [version] = api.get(f"/v1/models/{name}/versions")
    assert version["version"] == 0 and version["kind"] == "init" and version["parent"] is None
    detail = api.get(f"/v1/models/{name}/versions/0")
    assert detail["importance"]["n_open"] == 0
    assert all(layer == {"mean": 0.0, "max": 0.0} for layer in detail["importance"]["layers"].values())
    assert name in [m["name"] for m in api.get("/v1/models")]


def test_cnn_model_is_accepted(api) -> None:
    name = api.unique("cnn")
    body = {"name": name, "architecture": {"kind": "cnn", "input_shape": [1, 8, 8], "channels": [4], "hidden": [8]}}
    response = api.http.post("/v1/models", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["architecture"]["channels"] == [4]


def test_taken_name_is_409(api) -> None:
    name = api.create_model("taken")
    response = api.http.post("/v1/models", json={"name": name, "architecture": {"kind": "mlp", "input_shape": [64]}})
    assert response.status_code == 409
    assert "exists" in response.json()["detail"]


@pytest.mark.parametrize("name", ["Upper", "-lead", "", "a" * 65, "sp ace", "dot.ted", "../x"])
def test_bad_names_are_422(api, name: str) -> None:
    response = api.http.post("/v1/models", json={"name": name, "architecture": {"kind": "mlp", "input_shape": [64]}})
    assert response.status_code == 422
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "architecture",
    [
        {"kind": "rnn", "input_shape": [64]},
        {"kind": "mlp", "input_shape": [8, 8]},
        {"kind": "mlp", "input_shape": []},
        {"kind": "mlp", "input_shape": [64], "hidden": [-1]},
        {"kind": "cnn", "input_shape": [64], "channels": [4]},
        {"kind": "mlp"},
    ],
)
def test_bad_architectures_are_422_with_a_reason(api, architecture: dict) -> None:
    response = api.http.post("/v1/models", json={"name": api.unique("arch"), "architecture": architecture})
    assert response.status_code == 422
    assert "architecture" in response.json()["detail"]


def test_unknown_model_is_404(api) -> None:
    for path in ("/v1/models/nope-nope", "/v1/models/nope-nope/versions", "/v1/models/nope-nope/evaluation"):
        response = api.http.get(path)
        assert response.status_code == 404 and "nope-nope" in response.json()["detail"]


def test_delete_model(api) -> None:
    name = api.create_model("delete")
    assert api.http.delete(f"/v1/models/{name}").status_code == 204
    assert api.http.get(f"/v1/models/{name}").status_code == 404
    assert api.http.delete(f"/v1/models/{name}").status_code == 404
    # The name is free again.
    fresh = {"name": name, "architecture": {"kind": "mlp", "input_shape": [4]}}
    assert api.http.post("/v1/models", json=fresh).status_code == 201
