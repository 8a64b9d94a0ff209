"""Real inputs over HTTP: the installed architectures, the model directory allow-list, and requests
whose data is not what the model takes (each a 4xx with the reason, nothing written)."""

from __future__ import annotations


def test_the_installed_architectures_are_listed_with_their_options(api) -> None:
    kinds = {a["kind"]: a for a in api.get("/v1/architectures")}
    assert {"mlp", "cnn", "text-encoder", "image-backbone"} <= set(kinds)
    assert kinds["text-encoder"]["input_kind"] == "text" and "max_length" in kinds["text-encoder"]["options"]
    assert kinds["image-backbone"]["input_kind"] == "image" and "image_size" in kinds["image-backbone"]["options"]
    assert kinds["mlp"]["options"]["trainable"]["default"] == "all"


def test_an_unknown_kind_names_the_installed_ones(api) -> None:
    response = api.http.post("/v1/models", json={"name": api.unique("k"), "architecture": {"kind": "resnet"}})
    assert response.status_code == 422 and "text-encoder" in response.json()["detail"]


def test_an_encoder_path_outside_the_allowed_directories_is_refused_unread(api) -> None:
    for path in ("/etc", "/nonexistent/dir", 5):
        response = api.http.post("/v1/models", json={
            "name": api.unique("p"), "architecture": {"kind": "text-encoder", "path": path}})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "LIFELONG_MODEL_DIRS" in detail or "string" in detail


def test_too_many_trainable_blocks_is_refused_at_creation_and_per_task(api) -> None:
    response = api.http.post("/v1/models", json={
        "name": api.unique("t"), "architecture": {"kind": "mlp", "input_shape": [4], "hidden": [8],
                                                   "trainable": {"last": 9}}})
    assert response.status_code == 422 and "trainable" in response.json()["detail"]
    name = api.unique("t")
    assert api.http.post("/v1/models", json={
        "name": name, "architecture": {"kind": "mlp", "input_shape": [4], "hidden": [8]}}).status_code == 201
    jobs_before = api.get("/v1/jobs", model=name)
    response = api.http.post(f"/v1/models/{name}/tasks", json={
        "task": "t", "train": {"inputs": [[0, 0, 0, 0], [1, 1, 1, 1]], "labels": [0, 1]}, "trainable": {"last": 7}})
    assert response.status_code == 422 and "trainable" in response.json()["detail"], response.text
    assert api.get("/v1/jobs", model=name) == jobs_before


def test_texts_sent_to_an_array_model_are_refused_with_the_reason(api) -> None:
    name = api.create_model("arr")
    response = api.http.post(f"/v1/models/{name}/tasks", json={
        "task": "t", "train": {"texts": ["a", "b"], "labels": ["x", "y"]}})
    assert response.status_code == 422 and "text data" in response.json()["detail"], response.text
    assert api.get("/v1/jobs", model=name) == []


def test_eval_classes_must_be_among_the_train_classes(api) -> None:
    name = api.unique("cls")
    architecture = {"kind": "text-encoder", "max_length": 8, "trainable": "none"}
    assert api.http.post("/v1/models", json={"name": name, "architecture": architecture}).status_code == 201
    train = {"texts": ["a cat", "a car"], "labels": ["animal", "vehicle"]}
    response = api.http.post(f"/v1/models/{name}/tasks", json={
        "task": "t", "train": train, "eval": {"texts": ["a fig"], "labels": ["fruit"]}})
    assert response.status_code == 422 and "fruit" in response.json()["detail"], response.text
    response = api.http.post(f"/v1/models/{name}/tasks", json={"task": "t", "train": train, "num_classes": 3})
    assert response.status_code == 422 and "2 classes" in response.json()["detail"], response.text
    response = api.http.post(f"/v1/models/{name}/predict", json={"task": "t", "inputs": [[1.0]]})
    assert response.status_code == 404  # no task t yet: nothing was queued
    assert api.get("/v1/jobs", model=name) == []


def test_a_model_too_large_is_refused_before_anything_is_allocated(api) -> None:
    """[60000, 60000] hidden units would be 3.6 billion parameters (14 GB): measured on the meta device."""
    response = api.http.post("/v1/models", json={
        "name": api.unique("huge"), "architecture": {"kind": "mlp", "input_shape": [64], "hidden": [60000, 60000]}})
    assert response.status_code == 422, response.text
    assert "LIFELONG_MAX_MODEL_PARAMETERS" in response.json()["detail"] and "3,603,960,000" in response.json()["detail"]
