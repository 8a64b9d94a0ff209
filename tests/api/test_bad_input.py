"""Every endpoint refuses bad input with a 4xx and a reason, never a 500, and writes nothing.

Each case is one request against a model that has learned one task; before and after it, the lists
of models, datasets, jobs and versions must be the same.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

ROW = [0.0] * 64
NAN_ROW = "[" + ", ".join(["NaN"] + ["0"] * 63) + "]"


@pytest.fixture(scope="module")
def reference(api) -> dict[str, Any]:
    task = api.digits[0]
    model = api.create_model("reference")
    api.learn(model, task, epochs=1)
    unlabeled = api.upload(api.npz_bytes(x=task.x_test[:5]))["id"]
    labeled = api.upload(api.npz_bytes(x=task.x_test[:5], y=task.y_test[:5]))["id"]
    wide = api.upload(api.npz_bytes(x=np.zeros((3, 10), dtype=np.float32), y=np.zeros(3, dtype=np.int64)))["id"]
    many_classes = api.upload(api.npz_bytes(x=task.x_test[:5], y=np.arange(5)))["id"]
    empty = api.create_model("empty")
    return {"model": model, "task": task.name, "unlabeled": unlabeled, "labeled": labeled, "wide": wide,
            "many_classes": many_classes, "empty": empty}


def _snapshot(api, reference: dict[str, Any]) -> Any:
    return (
        [(m["name"], m["head"]) for m in api.get("/v1/models")],
        sorted(d["id"] for d in api.get("/v1/datasets")),
        [(j["id"], j["state"]) for j in api.get("/v1/jobs", limit=1000)],
        api.get(f"/v1/models/{reference['model']}/versions"),
    )


def _task(ref: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"task": "new-task", "train": {"dataset": ref["labeled"]}, **fields}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


Request = Callable[[dict[str, Any]], dict[str, Any]] | None


def js(make: Callable[[dict[str, Any]], Any]) -> Request:
    return lambda r: {"json": make(r)}


def task_with(**fields: Any) -> Request:
    """A task request on the reference model with these fields (values may be functions of it)."""
    return lambda r: {"json": _task(r, **{k: v(r) if callable(v) else v for k, v in fields.items()})}


def raw_json(make: Callable[[dict[str, Any]], str]) -> Request:
    """JSON text sent as is: the only way to put NaN in a body (json.dumps refuses nothing, httpx may)."""
    return lambda r: {"content": make(r).encode(), "headers": {"content-type": "application/json"}}


def npy(content: bytes) -> Request:
    return lambda r: {"content": content, "headers": {"content-type": "application/x-npy"}}


def arch(**fields: Any) -> dict[str, Any]:
    return {"name": "fresh", "architecture": {"kind": "mlp", "input_shape": [2]}, **fields}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    request: Request
    status: int
    words: str  # the detail must contain them (case-insensitive)


TASKS, IMPORTANCE, PREDICT = "/v1/models/{model}/tasks", "/v1/models/{model}/importance", "/v1/models/{model}/predict"
PREDICT_NPY = PREDICT + "?task={task}"
INLINE_OK = json.dumps([0.5] * 64)

CASES = [
    # models
    Case("model: malformed json", "POST", "/v1/models", raw_json(lambda r: "{not json"), 422, "json"),
    Case("model: missing architecture", "POST", "/v1/models", js(lambda r: {"name": "fresh"}), 422, "architecture"),
    Case("model: unknown field", "POST", "/v1/models", js(lambda r: arch(colour=1)), 422, "colour"),
    Case("model: negative seed", "POST", "/v1/models", js(lambda r: arch(seed=-1)), 422, "seed"),
    Case("model: unknown task-free predictor", "POST", "/v1/models", js(lambda r: arch(task_free={"predictor": "x"})),
         422, "predictor"),
    Case("model: task-free unknown rate above 0.5", "POST", "/v1/models",
         js(lambda r: arch(task_free={"unknown_rate": 0.9})), 422, "unknown_rate"),
    Case("model: taken name", "POST", "/v1/models", js(lambda r: arch(name=r["model"])), 409, "exists"),
    Case("model: unknown", "GET", "/v1/models/no-such-model", None, 404, "no-such-model"),
    Case("model: delete unknown", "DELETE", "/v1/models/no-such-model", None, 404, "no-such-model"),
    # datasets
    Case("dataset: malformed npz", "POST", "/v1/datasets",
         lambda r: {"files": {"file": ("x.npz", b"PK\x03\x04broken")}}, 422, "npz"),
    Case("dataset: unknown", "GET", "/v1/datasets/ffffffffffffffffffffffff", None, 404, "dataset"),
    # learning a task
    Case("task: unknown model", "POST", "/v1/models/no-such-model/tasks", task_with(), 404, "no-such-model"),
    Case("task: bad name", "POST", TASKS, task_with(task="Bad Name"), 422, "task"),
    Case("task: name taken", "POST", TASKS, task_with(task=lambda r: r["task"]), 409, "already has"),
    Case("task: train missing", "POST", TASKS, js(lambda r: {"task": "new-task"}), 422, "train"),
    Case("task: unknown dataset", "POST", TASKS, task_with(train={"dataset": "nope"}), 404, "nope"),
    Case("task: dataset and inputs", "POST", TASKS,
         task_with(train=lambda r: {"dataset": r["labeled"], "inputs": [ROW]}), 422, "either"),
    Case("task: wrong shape", "POST", TASKS, task_with(train=lambda r: {"dataset": r["wide"]}), 422, "shape"),
    Case("task: wrong inline shape", "POST", TASKS,
         task_with(train={"inputs": [[1, 2, 3]], "labels": [0]}), 422, "shape"),
    Case("task: ragged inputs", "POST", TASKS, task_with(train={"inputs": [ROW, [1]], "labels": [0, 1]}), 422, "rows"),
    Case("task: nan inputs", "POST", TASKS,
         raw_json(lambda r: '{"task": "new-task", "train": {"inputs": [' + NAN_ROW + '], "labels": [0]}}'),
         422, "non-finite"),
    Case("task: empty inputs", "POST", TASKS, task_with(train={"inputs": [], "labels": []}), 422, "empty"),
    Case("task: labels missing", "POST", TASKS, task_with(train={"inputs": [ROW]}), 422, "labels"),
    Case("task: dataset without labels", "POST", TASKS,
         task_with(train=lambda r: {"dataset": r["unlabeled"]}), 422, "labels"),
    Case("task: labels out of range", "POST", TASKS,
         task_with(train=lambda r: {"dataset": r["many_classes"]}, num_classes=2), 422, "out of range"),
    Case("task: eval labels out of range", "POST", TASKS,
         task_with(eval=lambda r: {"dataset": r["many_classes"]}, num_classes=2), 422, "eval"),
    Case("task: labels count", "POST", TASKS, task_with(train={"inputs": [ROW, ROW], "labels": [0]}), 422, "labels"),
    Case("task: inline train ok, eval nan", "POST", TASKS,
         raw_json(lambda r: '{"task": "new-task", "train": {"inputs": [' + INLINE_OK + '], "labels": [1]},'
                            ' "eval": {"inputs": [' + NAN_ROW + '], "labels": [0]}}'), 422, "eval"),
    Case("task: unknown base", "POST", TASKS, task_with(base_version=99), 404, "99"),
    Case("task: huge base", "POST", TASKS, task_with(base_version=10**20), 422, "base_version"),
    Case("task: huge label", "POST", TASKS, task_with(train={"inputs": [ROW], "labels": [10**20]}), 422, "labels"),
    Case("task: huge integer input", "POST", TASKS,
         raw_json(lambda r: '{"task": "new-task", "train": {"inputs": [[' + "9" * 400 + ']], "labels": [0]}}'),
         422, "numbers"),
    Case("task: unknown method", "POST", TASKS, task_with(method="magic"), 422, "method"),
    Case("task: negative lambda", "POST", TASKS, task_with(**{"lambda": -1}), 422, "lambda"),
    Case("task: zero lr", "POST", TASKS, task_with(lr=0), 422, "lr"),
    Case("task: zero epochs", "POST", TASKS, task_with(epochs=0), 422, "epochs"),
    Case("task: one class", "POST", TASKS, task_with(num_classes=1), 422, "num_classes"),
    Case("task: local vector", "POST", TASKS,
         task_with(importance={"variant": "local", "output": "vector"}), 422, "local"),
    Case("task: importance typo", "POST", TASKS, task_with(importance={"on": "test"}), 422, "on"),
    # refreshing importance
    Case("importance: unknown model", "POST", "/v1/models/no-such-model/importance",
         js(lambda r: {"data": {"dataset": r["unlabeled"]}}), 404, "no-such-model"),
    Case("importance: no task learned", "POST", "/v1/models/{empty}/importance",
         js(lambda r: {"data": {"dataset": r["unlabeled"]}}), 422, "no task"),
    Case("importance: unknown task", "POST", IMPORTANCE,
         js(lambda r: {"data": {"dataset": r["unlabeled"]}, "task": "ghost"}), 404, "ghost"),
    Case("importance: data missing", "POST", IMPORTANCE, js(lambda r: {"mode": "replace"}), 422, "data"),
    Case("importance: wrong shape", "POST", IMPORTANCE, js(lambda r: {"data": {"dataset": r["wide"]}}), 422, "shape"),
    Case("importance: bad mode", "POST", IMPORTANCE,
         js(lambda r: {"data": {"dataset": r["unlabeled"]}, "mode": "blend"}), 422, "mode"),
    Case("importance: unknown base", "POST", IMPORTANCE,
         js(lambda r: {"data": {"dataset": r["unlabeled"]}, "base_version": 42}), 404, "42"),
    Case("importance: nan", "POST", IMPORTANCE, raw_json(lambda r: '{"data": {"inputs": [' + NAN_ROW + "]}}"),
         422, "non-finite"),
    # predictions
    Case("predict: unknown model", "POST", "/v1/models/no-such-model/predict",
         js(lambda r: {"task": r["task"], "inputs": [ROW]}), 404, "no-such-model"),
    Case("predict: unknown task", "POST", PREDICT, js(lambda r: {"task": "ghost", "inputs": [ROW]}), 404, "ghost"),
    Case("predict: unknown version", "POST", PREDICT,
         js(lambda r: {"task": r["task"], "inputs": [ROW], "version": 7}), 404, "7"),
    Case("predict: wrong shape", "POST", PREDICT, js(lambda r: {"task": r["task"], "inputs": [[1, 2]]}), 422, "shape"),
    Case("predict: empty", "POST", PREDICT, js(lambda r: {"task": r["task"], "inputs": []}), 422, "empty"),
    Case("predict: nan", "POST", PREDICT,
         raw_json(lambda r: '{"task": "' + r["task"] + '", "inputs": [' + NAN_ROW + "]}"), 422, "non-finite"),
    Case("predict: strings", "POST", PREDICT,
         js(lambda r: {"task": r["task"], "inputs": [["a"] * 64]}), 422, "numbers"),
    Case("predict: no task, nothing learned", "POST", "/v1/models/{empty}/predict", js(lambda r: {"inputs": [ROW]}),
         409, "no task"),
    Case("predict: no task, task-free bad shape", "POST", PREDICT, js(lambda r: {"inputs": [[1, 2]]}), 422, "shape"),
    Case("predict: malformed json", "POST", PREDICT, raw_json(lambda r: "[[1,"), 422, "json"),
    Case("predict: npy without task, nothing learned", "POST", "/v1/models/{empty}/predict",
         npy(_npy(np.zeros((1, 64), np.float32))), 409, "no task"),
    Case("predict: npy garbage", "POST", PREDICT_NPY, npy(b"\x93NUMPY garbage"), 422, "npy"),
    Case("predict: npy pickled", "POST", PREDICT_NPY, npy(_npy(np.array([{"a": 1}], dtype=object))), 422, "pickle"),
    Case("predict: npy wrong shape", "POST", PREDICT_NPY, npy(_npy(np.zeros((2, 3), np.float32))), 422, "shape"),
    Case("predict: npy empty body", "POST", PREDICT_NPY, npy(b""), 422, "empty"),
    Case("predict: npy bad task in query", "POST", PREDICT + "?task=Bad%20Task",
         npy(_npy(np.zeros((1, 64), np.float32))), 422, "query"),
    Case("predict: npy version not a number", "POST", PREDICT_NPY + "&version=abc",
         npy(_npy(np.zeros((1, 64), np.float32))), 422, "version"),
    Case("predict: json with a bad query", "POST", PREDICT + "?version=-1",
         js(lambda r: {"task": r["task"], "inputs": [ROW]}), 422, "version"),
    Case("predict: npy probabilities not a bool", "POST", PREDICT_NPY + "&probabilities=maybe",
         npy(_npy(np.zeros((1, 64), np.float32))), 422, "probabilities"),
    Case("predict get: too many rows", "GET", PREDICT,
         lambda r: {"params": {"task": r["task"], "inputs": json.dumps([ROW] * 101)}}, 422, "100"),
    Case("predict get: not json", "GET", PREDICT,
         lambda r: {"params": {"task": r["task"], "inputs": "[[1,2"}}, 422, "JSON"),
    Case("predict get: no inputs", "GET", PREDICT, lambda r: {"params": {"task": r["task"]}}, 422, "inputs"),
    # jobs
    Case("job: unknown", "GET", "/v1/jobs/nope", None, 404, "nope"),
    Case("job: cancel unknown", "POST", "/v1/jobs/nope/cancel", None, 404, "nope"),
    Case("jobs: bad state", "GET", "/v1/jobs?state=sleeping", None, 422, "state"),
    Case("jobs: unknown model", "GET", "/v1/jobs?model=no-such-model", None, 404, "no-such-model"),
    Case("jobs: zero limit", "GET", "/v1/jobs?limit=0", None, 422, "limit"),
    # versions and head
    Case("version: unknown", "GET", "/v1/models/{model}/versions/9", None, 404, "9"),
    Case("version: huge", "GET", "/v1/models/{model}/versions/99999999999999999999", None, 422, "number"),
    Case("version: not a number", "GET", "/v1/models/{model}/versions/abc", None, 422, "number"),
    Case("checkpoint: unknown version", "GET", "/v1/models/{model}/versions/9/checkpoint", None, 404, "9"),
    Case("importance download: bad part", "GET", "/v1/models/{model}/versions/0/importance?part=all",
         None, 422, "part"),
    Case("head: unknown version", "PUT", "/v1/models/{model}/head", js(lambda r: {"version": 9}), 404, "9"),
    Case("head: negative", "PUT", "/v1/models/{model}/head", js(lambda r: {"version": -1}), 422, "version"),
    Case("head: no body", "PUT", "/v1/models/{model}/head", None, 422, "body"),
    Case("head: unknown model", "PUT", "/v1/models/no-such-model/head",
         js(lambda r: {"version": 0}), 404, "no-such-model"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_refused_with_a_reason_and_nothing_written(api, reference: dict[str, Any], case: Case) -> None:
    before = _snapshot(api, reference)
    response = api.http.request(case.method, case.path.format(**reference),
                                **(case.request(reference) if case.request else {}))
    assert response.status_code == case.status, response.text
    detail = response.json()["detail"]
    assert detail, response.text
    assert case.words.lower() in json.dumps(detail).lower(), detail
    assert _snapshot(api, reference) == before
