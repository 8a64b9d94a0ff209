"""Export and scoring against the real service (issue 14): the checkpoint's metadata read back from its header,
each kind's ONNX file run in onnxruntime and its TorchScript file in torch against the service's own
predictions on the same rows, and `POST …/evaluate` against counts made here by hand from the service's
predictions, with every refusal."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from sklearn.datasets import load_digits

from scripts.make_examples import COLOURS, TRAIN_FRAMES, image_folder_zip, jsonl, png, text_records

TOLERANCE = 1e-4  # max abs difference of probabilities and logits, ONNX or TorchScript against the service
MEASURED: dict[str, float] = {}  # kind -> the largest difference seen, printed at the end of the module


@pytest.fixture(scope="module", autouse=True)
def report_differences():
    yield
    print("\nmax abs differences against the service:", json.dumps(MEASURED, indent=None))


def _create(api, architecture: dict) -> str:
    name = api.unique("export")
    response = api.http.post("/v1/models", json={"name": name, "architecture": architecture, "promotion":
                                                 {"policy": "auto"}})
    assert response.status_code == 201, response.text
    return name


def _learn(api, model: str, task: str, train: bytes, filename: str, **options) -> int:
    response = api.http.post(f"/v1/models/{model}/tasks", json={
        "task": task, "train": {"dataset": api.upload(train, filename)["id"]}, "validation_fraction": 0,
        "lambda": 1.0, **options})
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"], deadline_s=300)
    assert job["state"] == "succeeded", job
    return job["result"]["version"]


def _export(api, model: str, version: int, task: str, fmt: str) -> bytes:
    response = api.http.get(f"/v1/models/{model}/versions/{version}/export", params={"task": task, "format": fmt})
    assert response.status_code == 200, response.text
    suffix = "onnx" if fmt == "onnx" else "pt"
    assert response.headers["content-disposition"] == f'attachment; filename="{model}-v{version}-{task}.{suffix}"'
    return response.content


def _run_onnx(content: bytes, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    assert [i.name for i in session.get_inputs()] == list(feeds)
    logits, probabilities = session.run(None, feeds)
    return logits, probabilities


def _run_torchscript(content: bytes, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    extra = {"lifelong.json": ""}
    module = torch.jit.load(io.BytesIO(content), _extra_files=extra)
    with torch.no_grad():
        _, probabilities = module(*(torch.from_numpy(array) for array in feeds.values()))
    return probabilities.numpy(), json.loads(extra["lifelong.json"])


def _check_against_service(kind: str, answer: dict, onnx_file: bytes, torchscript_file: bytes,
                           feeds: dict[str, np.ndarray]) -> dict[str, str]:
    """Both files give the service's probabilities (and classes) on the same rows, and on one row alone
    (the batch axis is dynamic); returns the ONNX file's metadata."""
    expected = np.asarray(answer["probabilities"], dtype=np.float32)
    assert expected.max(1).min() < 0.99, expected  # not saturated: a difference in logits would show
    logits, probabilities = _run_onnx(onnx_file, feeds)
    onnx_difference = float(np.abs(probabilities - expected).max())
    assert onnx_difference <= TOLERANCE, onnx_difference
    assert np.array_equal(logits.argmax(1), answer["predictions"])
    assert np.allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probabilities, atol=1e-6)
    _, one = _run_onnx(onnx_file, {name: array[1:2] for name, array in feeds.items()})
    assert np.abs(one - expected[1:2]).max() <= TOLERANCE
    scripted, metadata = _run_torchscript(torchscript_file, feeds)
    script_difference = float(np.abs(scripted - expected).max())
    assert script_difference <= TOLERANCE, script_difference
    MEASURED[f"{kind} onnx"], MEASURED[f"{kind} torchscript"] = onnx_difference, script_difference
    props = {p.key: p.value for p in onnx.load_from_string(onnx_file).metadata_props}
    assert props == metadata
    return props


def _header(content: bytes) -> dict:
    """The safetensors header, read by hand: 8 bytes of little-endian length, then that much JSON."""
    (length,) = struct.unpack("<Q", content[:8])
    return json.loads(content[8:8 + length])


# --- checkpoint metadata ----------------------------------------------------------------------------------


def test_the_checkpoint_carries_model_version_architecture_and_tasks(api, tmp_path) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("meta", promotion={"policy": "auto"})
    api.learn(model, first, epochs=1)
    version = api.learn(model, second, epochs=1)
    response = api.http.get(f"/v1/models/{model}/versions/{version}/checkpoint")
    assert response.status_code == 200
    metadata = _header(response.content)["__metadata__"]
    path = tmp_path / "theta.safetensors"
    path.write_bytes(response.content)
    with safe_open(str(path), framework="np") as opened:
        assert opened.metadata() == metadata
        assert {"trunk.0.weight", f"heads.{first.name}.weight", f"heads.{second.name}.bias"} <= set(opened.keys())
    assert metadata["model"] == model and metadata["version"] == str(version) and metadata["format"] == "pt"
    assert json.loads(metadata["architecture"]) == api.get(f"/v1/models/{model}")["architecture"]
    assert json.loads(metadata["tasks"]) == [{"name": first.name, "num_classes": 2, "classes": None},
                                             {"name": second.name, "num_classes": 2, "classes": None}]
    assert metadata["lifelong_version"] == "0.1.0"
    task_free = json.loads(metadata["task_free"])  # what answers without a task, beside θ
    assert task_free["meta"]["tasks"] == [first.name, second.name] and "ridge" in task_free["held_back"]
    assert [entry["task"] for entry in json.loads(metadata["class_statistics"])] == [first.name, second.name]
    v0 = _header(api.http.get(f"/v1/models/{model}/versions/0/checkpoint").content)["__metadata__"]
    assert v0["version"] == "0" and json.loads(v0["tasks"]) == []


# --- export -----------------------------------------------------------------------------------------------


def test_mlp_exports_match_the_service_and_end_in_the_named_head(api) -> None:
    first, second = api.digits[0], api.digits[1]
    model = api.create_model("onnx-mlp", hidden=[32, 16], promotion={"policy": "auto"})
    api.learn(model, first, epochs=2)
    version = api.learn(model, second, epochs=2)
    for task in (first, second):
        rows = task.x_test[:40].astype(np.float32)
        answer = api.predict(model, task.name, rows, version=version, probabilities=True)
        props = _check_against_service("mlp", answer, _export(api, model, version, task.name, "onnx"),
                                       _export(api, model, version, task.name, "torchscript"), {"input": rows})
        assert props["task"] == task.name and props["version"] == str(version) and props["model"] == model
        assert json.loads(props["inputs"]) == [{"name": "input", "dtype": "float32", "shape": ["batch", 64]}]
        assert json.loads(props["architecture"])["kind"] == "mlp"
        assert json.loads(props["task_free"])["meta"]["tasks"] == [first.name, second.name]  # the version's


def test_cnn_export_reshapes_flat_rows_in_the_graph(api) -> None:
    task = api.digits[0]
    model = _create(api, {"kind": "cnn", "input_shape": [1, 8, 8], "channels": [4, 8], "hidden": [16]})
    version = _learn(api, model, task.name, api.npz_bytes(x=task.x_train.reshape(-1, 1, 8, 8), y=task.y_train),
                     "cnn.npz", epochs=2, lr=0.05)
    rows = task.x_test[:30].astype(np.float32)  # flat rows: the graph reshapes them to [1, 8, 8]
    answer = api.predict(model, task.name, rows.reshape(-1, 1, 8, 8), version=version, probabilities=True)
    props = _check_against_service("cnn", answer, _export(api, model, version, task.name, "onnx"),
                                   _export(api, model, version, task.name, "torchscript"), {"input": rows})
    assert "[1, 8, 8]" in props["preprocessing"]


def test_text_encoder_export_takes_token_ids_and_mask(api) -> None:
    from transformers import AutoTokenizer

    from app.architectures.text import bundled_model_path

    model = _create(api, {"kind": "text-encoder", "max_length": 16, "trainable": "none"})
    version = _learn(api, model, "living", jsonl(text_records(["animal", "vehicle"], TRAIN_FRAMES)), "t.jsonl",
                     epochs=3, batch_size=16, lr=0.1)
    texts = ["a dog in the garden", "a red sports car", "my neighbour has a horse", "the bus is late again today"]
    answer = api.http.post(f"/v1/models/{model}/predict",
                           json={"task": "living", "texts": texts, "probabilities": True}).json()
    tokens = AutoTokenizer.from_pretrained(str(bundled_model_path()))(
        texts, padding="max_length", truncation=True, max_length=16, return_tensors="np")
    feeds = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    props = _check_against_service("text-encoder", answer, _export(api, model, version, "living", "onnx"),
                                   _export(api, model, version, "living", "torchscript"), feeds)
    assert json.loads(props["classes"]) == ["animal", "vehicle"] and "max_length=16" in props["preprocessing"]
    # Shorter padding (to the longest text, as a tokenizer's padding=True does) gives the same answer.
    shorter = AutoTokenizer.from_pretrained(str(bundled_model_path()))(texts, padding=True, return_tensors="np")
    _, probabilities = _run_onnx(_export(api, model, version, "living", "onnx"),
                                 {k: shorter[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    assert np.abs(probabilities - np.asarray(answer["probabilities"])).max() <= TOLERANCE
    checkpoint = _header(api.http.get(f"/v1/models/{model}/versions/{version}/checkpoint").content)["__metadata__"]
    assert json.loads(checkpoint["tasks"]) == [{"name": "living", "num_classes": 2, "classes": ["animal", "vehicle"]}]


def test_image_backbone_export_normalises_uint8_pixels_in_the_graph(api) -> None:
    model = _create(api, {"kind": "image-backbone", "image_size": 64, "trainable": "none"})
    # A light touch (lr 1e-4): probabilities away from 0 and 1, where a difference would show.
    version = _learn(api, model, "warm", image_folder_zip(["red", "yellow"], 4, 1), "warm.zip", epochs=1,
                     batch_size=8, lr=1e-4)
    images = [png(COLOURS[colour], seed, size=64) for seed, colour in enumerate(["red", "yellow", "yellow", "red"])]
    answer = api.http.post(f"/v1/models/{model}/predict", params={"task": "warm", "probabilities": "true"},
                           files=[("files", (f"{i}.png", image, "image/png")) for i, image in enumerate(images)])
    assert answer.status_code == 200, answer.text
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(image)).convert("RGB")) for image in images])  # [4, 64, 64, 3]
    props = _check_against_service("image-backbone", answer.json(), _export(api, model, version, "warm", "onnx"),
                                   _export(api, model, version, "warm", "torchscript"), {"image": pixels})
    assert json.loads(props["inputs"]) == [{"name": "image", "dtype": "uint8", "shape": ["batch", 64, 64, 3]}]


def test_export_refusals(api) -> None:
    model = api.create_model("refuse")
    base = f"/v1/models/{model}/versions"
    cases = [(f"{base}/0/export", {"task": "nope"}, 404, "no task 'nope'"),
             (f"{base}/7/export", {"task": "t"}, 404, "7"),
             (f"{base}/0/export", {"task": "t", "format": "tflite"}, 422, "format"),
             (f"{base}/0/export", {}, 422, "task"),
             ("/v1/models/nobody/versions/0/export", {"task": "t"}, 404, "nobody")]
    for path, params, status, words in cases:
        response = api.http.get(path, params=params)
        assert response.status_code == status and words in response.json()["detail"], (path, params, response.text)


# --- scoring ----------------------------------------------------------------------------------------------


def _by_hand(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """Confusion matrix, precision and recall counted one row and one class at a time."""
    confusion = [[0] * num_classes for _ in range(num_classes)]
    for label, guess in zip(labels.tolist(), predicted.tolist(), strict=True):
        confusion[label][guess] += 1
    precision, recall = [], []
    for k in range(num_classes):
        true_positive = int(np.sum((predicted == k) & (labels == k)))
        false_positive = int(np.sum((predicted == k) & (labels != k)))
        false_negative = int(np.sum((predicted != k) & (labels == k)))
        precision.append(true_positive / (true_positive + false_positive) if true_positive + false_positive else None)
        recall.append(true_positive / (true_positive + false_negative) if true_positive + false_negative else None)
    return {"confusion": confusion, "precision": precision, "recall": recall,
            "accuracy": float(np.mean(labels == predicted))}


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-12)


def test_scores_of_a_ten_class_task_equal_counts_by_hand(api) -> None:
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    model = api.create_model("score", promotion={"policy": "auto"})
    train = api.upload(api.npz_bytes(x=x[:1200], y=y[:1200]), "all-train.npz")["id"]
    held = api.upload(api.npz_bytes(x=x[1200:], y=y[1200:]), "all-eval.npz")["id"]
    response = api.http.post(f"/v1/models/{model}/tasks", json={  # one short epoch: a confusion worth reading
        "task": "all", "train": {"dataset": train}, "eval": {"dataset": held}, "epochs": 1, "lr": 0.02,
        "batch_size": 64, "validation_fraction": 0, "lambda": 1.0})
    job = api.wait_job(response.json()["id"])
    assert job["state"] == "succeeded", job
    version = job["result"]["version"]

    scored = api.http.post(f"/v1/models/{model}/evaluate", json={"task": "all", "data": {"dataset": held},
                                                                  "version": version})
    assert scored.status_code == 200, scored.text
    scored = scored.json()
    predicted = np.asarray(api.http.post(f"/v1/models/{model}/predict", params={"task": "all", "version": version},
                                         content=api.npy_bytes(x[1200:]),
                                         headers={"Content-Type": "application/x-npy"}).json()["predictions"])
    expected = _by_hand(y[1200:], predicted, 10)
    assert 0.2 < expected["accuracy"] < 1.0, expected["accuracy"]  # errors to count, in several classes
    assert scored["confusion_matrix"] == expected["confusion"]
    assert scored["n"] == len(y) - 1200 and scored["version"] == version and scored["task"] == "all"
    assert abs(scored["accuracy"] - expected["accuracy"]) < 1e-12
    assert abs(scored["accuracy"] - api.get(f"/v1/models/{model}/versions/{version}")["accuracy"]["all"]) < 1e-6
    for k, entry in enumerate(scored["per_class"]):
        assert entry["index"] == k and entry["label"] is None
        assert _close(entry["precision"], expected["precision"][k]), (k, entry, expected["precision"][k])
        assert _close(entry["recall"], expected["recall"][k]), (k, entry, expected["recall"][k])
        assert entry["support"] == int(np.sum(y[1200:] == k)) and entry["predicted"] == int(np.sum(predicted == k))

    # The same by alias (production), and inline rows give the same scores.
    by_alias = api.http.post(f"/v1/models/{model}/evaluate", json={
        "task": "all", "alias": "production", "data": {"inputs": x[1200:].tolist(), "labels": y[1200:].tolist()}})
    assert by_alias.status_code == 200, by_alias.text
    same = by_alias.json()
    assert same.pop("alias") == "production" and scored.pop("alias") is None
    assert same == scored


def test_scores_name_the_classes_of_a_named_task(api) -> None:
    model = _create(api, {"kind": "text-encoder", "max_length": 16, "trainable": "none"})
    _learn(api, model, "living", jsonl(text_records(["animal", "vehicle"], TRAIN_FRAMES)), "t.jsonl",
           epochs=2, batch_size=16, lr=0.1)
    texts = ["a dog in the garden", "a red sports car", "my neighbour has a horse", "a bus", "a cow", "a van"]
    labels = ["animal", "vehicle", "animal", "vehicle", "vehicle", "animal"]  # two of them wrong on purpose
    scored = api.http.post(f"/v1/models/{model}/evaluate",
                           json={"task": "living", "data": {"texts": texts, "labels": labels}})
    assert scored.status_code == 200, scored.text
    predicted = np.asarray(api.http.post(f"/v1/models/{model}/predict",
                                         json={"task": "living", "texts": texts}).json()["predictions"])
    truth = np.asarray([["animal", "vehicle"].index(label) for label in labels])
    expected = _by_hand(truth, predicted, 2)
    assert scored.json()["confusion_matrix"] == expected["confusion"]
    assert [c["label"] for c in scored.json()["per_class"]] == ["animal", "vehicle"]
    assert [c["recall"] for c in scored.json()["per_class"]] == expected["recall"]
    unknown = api.http.post(f"/v1/models/{model}/evaluate",
                            json={"task": "living", "data": {"texts": ["a pear"], "labels": ["fruit"]}})
    assert unknown.status_code == 422 and "fruit" in unknown.json()["detail"]


def test_scoring_refusals(api) -> None:
    task = api.digits[0]
    model = api.create_model("score-refuse", promotion={"policy": "auto"})
    api.learn(model, task, epochs=1)
    rows, labels = task.x_test[:4].tolist(), task.y_test[:4].tolist()
    unlabeled = api.upload(api.npz_bytes(x=task.x_test[:4]), "unlabeled.npz")["id"]
    path = f"/v1/models/{model}/evaluate"
    cases = [
        ({"task": "nope", "data": {"inputs": rows, "labels": labels}}, 404, "no task 'nope'"),
        ({"task": task.name, "data": {"inputs": rows}}, 422, "labels"),
        ({"task": task.name, "data": {"dataset": unlabeled}}, 422, "labels"),
        ({"task": task.name, "data": {"inputs": [r[:10] for r in rows], "labels": labels}}, 422, "shape"),
        ({"task": task.name, "data": {"inputs": rows, "labels": labels}, "version": 1, "alias": "production"}, 422,
         "not both"),
        ({"task": task.name, "data": {"inputs": rows, "labels": [0, 1, 5, 0]}}, 422, "out of range"),
        ({"task": task.name, "data": {"inputs": rows, "labels": ["a", "b", "a", "b"]}}, 422, "integer labels"),
        ({"task": task.name, "data": {"texts": ["x"], "labels": [0]}}, 422, "text data"),
        ({"task": task.name, "data": {"dataset": "nothing"}}, 404, "nothing"),
        ({"task": task.name, "data": {"inputs": rows, "labels": labels}, "alias": "nobody"}, 404, "nobody"),
        ({"task": task.name, "data": {"inputs": rows, "labels": labels}, "version": 9}, 404, "9"),
        ({"task": task.name, "data": {"inputs": [[0.0] * 64] * 10_001, "labels": [0] * 10_001}}, 413,
         "LIFELONG_MAX_INLINE_ROWS"),
    ]
    for body, status, words in cases:
        response = api.http.post(path, json=body)
        assert response.status_code == status and words in response.json()["detail"], (body.get("data", {}).keys(),
                                                                                        response.text[:300])
