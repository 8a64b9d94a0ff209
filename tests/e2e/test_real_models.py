"""Pretrained networks end to end through a real worker: a MiniLM text model and an EfficientNet-Lite0
image model each learn two tasks from raw files with class names, predict class names from raw inputs,
refresh Ω from unlabeled raw inputs, and roll back; frozen blocks are stored once."""

from __future__ import annotations

import json
import sqlite3

from scripts.make_examples import (
    COLOURS,
    EVAL_FRAMES,
    TRAIN_FRAMES,
    image_folder_zip,
    jsonl,
    png,
    text_records,
    unlabeled_zip,
)


def _versions_parts(db_path, model: str) -> dict[int, dict[str, str]]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT v.number, v.theta_parts FROM versions v JOIN models m ON m.id = v.model_id"
                          " WHERE m.name = ?", (model,)).fetchall()
    return {number: json.loads(parts) for number, parts in rows}


def _create(api, architecture: dict) -> str:
    name = api.unique("real")
    response = api.http.post("/v1/models", json={"name": name, "architecture": architecture})
    assert response.status_code == 201, response.text
    return name


def _learn(api, model: str, task: str, train: bytes, evaluation: bytes, filename: str, **options) -> dict:
    train_id = api.upload(train, f"train.{filename}")["id"]
    eval_id = api.upload(evaluation, f"eval.{filename}")["id"]
    response = api.http.post(f"/v1/models/{model}/tasks", json={
        "task": task, "train": {"dataset": train_id}, "eval": {"dataset": eval_id}, **options})
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"], deadline_s=300)
    assert job["state"] == "succeeded", job
    return job


def test_a_minilm_model_learns_two_text_tasks_and_answers_class_names(api, service) -> None:
    model = _create(api, {"kind": "text-encoder", "max_length": 16, "trainable": {"last": 1}})
    options = {"epochs": 4, "batch_size": 16, "lr": 0.05}
    _learn(api, model, "living", jsonl(text_records(["animal", "vehicle"], TRAIN_FRAMES)),
           jsonl(text_records(["vehicle", "animal"], EVAL_FRAMES)), "jsonl", **options)
    _learn(api, model, "things", jsonl(text_records(["fruit", "tool"], TRAIN_FRAMES)),
           jsonl(text_records(["fruit", "tool"], EVAL_FRAMES)), "jsonl", **options)

    detail = api.get(f"/v1/models/{model}/versions/2")
    assert detail["classes"] == {"living": ["animal", "vehicle"], "things": ["fruit", "tool"]}
    assert detail["accuracy"]["living"] > 0.8 and detail["accuracy"]["things"] > 0.8, detail["accuracy"]
    answer = api.http.post(f"/v1/models/{model}/predict",
                           json={"task": "living", "texts": ["a dog in the garden", "a red sports car"]}).json()
    assert answer["labels"] == ["animal", "vehicle"] and answer["predictions"] == [0, 1]
    # Without a task: one answer over the four classes of both tasks, by class name.
    free = api.http.post(f"/v1/models/{model}/predict",
                         json={"texts": ["a dog in the garden", "a hammer and nails"]}).json()
    assert free["labels"] == ["animal", "tool"] and free["tasks"] == ["living", "things"], free
    statistics = detail["task_free"]["tasks"]
    assert statistics["living"]["remeasured"] and statistics["living"]["at_this_trunk"]  # the last layer moved
    omega = detail["importance"]["layers"]
    assert all(stats["max"] == 0 for name, stats in omega.items() if ".layers.0." in name)  # frozen: no Ω
    assert any(stats["max"] > 0 for name, stats in omega.items() if ".layers.5." in name)

    # Frozen blocks are the same blobs in every version: only the last block (block.6, after the
    # embeddings and 5 layers) and the new head were written.
    parts = _versions_parts(service.var_dir / "lifelong.sqlite3", model)
    assert {group for group in parts[2] if parts[1].get(group) != parts[2][group]} == {"block.6", "heads.things"}

    refreshed = api.refresh(model, data={"dataset": api.upload(jsonl([{"text": "a goat and a tram"}] * 3),
                                                               "deploy.jsonl")["id"]}, task="living")
    assert refreshed["state"] == "succeeded", refreshed
    rolled = api.http.put(f"/v1/models/{model}/head", json={"version": 1})
    assert rolled.status_code == 200 and rolled.json()["tasks"] == ["living"]


def test_an_efficientnet_model_learns_two_image_tasks_from_archives(api, service) -> None:
    model = _create(api, {"kind": "image-backbone", "image_size": 64, "trainable": "none"})
    options = {"epochs": 3, "batch_size": 8, "lr": 0.05}
    _learn(api, model, "warm", image_folder_zip(["red", "yellow"], 8, 1), image_folder_zip(["red", "yellow"], 4, 2),
           "zip", **options)
    _learn(api, model, "cool", image_folder_zip(["blue", "green"], 8, 3), image_folder_zip(["green", "blue"], 4, 4),
           "zip", **options)
    detail = api.get(f"/v1/models/{model}/versions/2")
    assert detail["accuracy"]["warm"] > 0.7 and detail["accuracy"]["cool"] > 0.7, detail["accuracy"]

    files = [("files", ("a.png", png(COLOURS["green"], 99), "image/png")),
             ("files", ("b.png", png(COLOURS["blue"], 98), "image/png"))]
    answer = api.http.post(f"/v1/models/{model}/predict", params={"task": "cool"}, files=files)
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"] == ["green", "blue"]
    one = api.http.post(f"/v1/models/{model}/predict", params={"task": "warm"}, content=png(COLOURS["red"], 97),
                        headers={"Content-Type": "image/png"})
    assert one.status_code == 200 and one.json()["labels"] == ["red"], one.text
    free = api.http.post(f"/v1/models/{model}/predict", files=files)
    assert free.status_code == 200 and free.json()["labels"] == ["green", "blue"], free.text
    free_one = api.http.post(f"/v1/models/{model}/predict", content=png(COLOURS["red"], 97),
                             headers={"Content-Type": "image/png"})
    assert free_one.status_code == 200 and free_one.json()["tasks"] == ["warm"], free_one.text
    # A frozen trunk: the first task's statistics are the same blob in both versions, never measured again.
    first, second = (api.get(f"/v1/models/{model}/versions/{v}")["task_free"]["tasks"]["warm"] for v in (1, 2))
    assert first["blob"] == second["blob"] and not second["remeasured"] and second["at_this_trunk"]

    parts = _versions_parts(service.var_dir / "lifelong.sqlite3", model)
    trunk_groups = [g for g in parts[0] if not g.startswith("heads.")]
    assert all(parts[0][g] == parts[1][g] == parts[2][g] for g in trunk_groups)  # a frozen trunk, stored once

    refreshed = api.refresh(model, data={"dataset": api.upload(unlabeled_zip(["blue"], 5), "deploy.zip")["id"]})
    assert refreshed["state"] == "succeeded", refreshed

    wrong = api.http.post(f"/v1/models/{model}/predict", json={"task": "warm", "texts": ["a red square"]})
    assert wrong.status_code == 422 and "images" in wrong.json()["detail"]
