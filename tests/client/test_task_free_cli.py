"""Task-free answers through the Python client and the `lifelong` command, against the real service.

One model (promotion auto, so production follows each job) learns the first two digit tasks once for
the module; the client and the CLI then ask it without a task: predictions over every class learned,
evaluation with task accuracy, ECE and the unknown share, the version's task-free section, the
matrix's task-free column, and the model's task-free options (create, update) as the commands set them.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.client import Client, Conflict
from tests.client.conftest import ok_json, two_task_model
from tests.conftest import DigitsTask, unique


@pytest.fixture(scope="module")
def learned(lifelong: Client, digits: list[DigitsTask]) -> str:
    """A model that learned the first two digit tasks (versions 1 and 2; 2 is production)."""
    return two_task_model(lifelong, digits, "taskfree-cli")


@pytest.fixture(scope="module")
def both(digits: list[DigitsTask]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The two tasks' eval rows, their global class indices (tasks in the order learned) and class labels."""
    first, second = digits[0], digits[1]
    x = np.concatenate([first.x_test, second.x_test])
    y = np.concatenate([first.y_test, second.y_test + 2])
    labels = [f"{first.name}/{int(c)}" for c in first.y_test] + [f"{second.name}/{int(c)}" for c in second.y_test]
    return x, y, labels


def test_the_client_predicts_without_a_task(lifelong: Client, learned: str, both, digits) -> None:  # noqa: ANN001
    x, _, truth = both
    answer = lifelong.predict(learned, x, probabilities=True)
    assert answer.task_free and answer.task is None and answer.version == 2 and answer.predictor == "ridge"
    assert len(answer.predictions) == len(x) == len(answer.labels) == len(answer.tasks) == len(answer.unknown)
    assert answer.unknown.dtype == np.bool_ and answer.confidence.dtype == np.float32
    assert np.mean([p == t for p, t in zip(answer.labels, truth, strict=True)]) > 0.7
    assert answer.probabilities.shape == (len(x), 4) and len(answer.classes) == 4
    assert np.allclose(answer.probabilities.max(1), answer.confidence, atol=1e-5)
    assert ((answer.score < answer.threshold) == answer.unknown).all()
    assert set(answer.as_json()) == {"model", "version", "predictions", "labels", "tasks", "confidence", "unknown",
                                     "score", "threshold", "predictor", "probabilities", "classes"}
    # With a task, the answer is the task's own, as before.
    named = lifelong.predict(learned, x[:5], task=digits[0].name)
    assert not named.task_free and named.tasks is None and named.unknown is None and named.task == digits[0].name
    with pytest.raises(Conflict):
        lifelong.predict(learned, x[:1], version=0)


def test_the_client_sends_no_task_for_texts_and_images(tmp_path: Path) -> None:
    # No text or image model here: what matters is that the request names no task, for every kind of input.
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"model": "m", "version": 1, "predictions": [0], "labels": ["a/0"],
                                         "tasks": ["a"], "confidence": [0.9], "unknown": [False], "score": [-1.0],
                                         "threshold": -9.0, "predictor": "ncm"})

    (image := tmp_path / "x.png").write_bytes(b"\x89PNG fake")
    with Client("http://lifelong.test", transport=httpx.MockTransport(answer)) as client:
        assert client.predict("m", ["a text"]).predictor == "ncm"
        client.predict("m", [str(image)])
        client.predict("m", np.zeros((1, 64)))
    texts, images, arrays = seen
    assert json.loads(texts.content) == {"texts": ["a text"], "probabilities": False}
    assert "task" not in images.url.params and "task" not in arrays.url.params


def test_the_client_evaluates_without_a_task(lifelong: Client, learned: str, both) -> None:  # noqa: ANN001
    x, y, _ = both
    scored = lifelong.evaluate(learned, (x, y))
    assert scored["task"] is None and scored["predictor"] == "ridge" and scored["n"] == len(x)
    assert set(scored["task_free"]) == {"accuracy", "task_accuracy", "ece", "unknown"}
    assert scored["task_free"]["accuracy"] == scored["accuracy"] > 0.7
    assert len(scored["confusion_matrix"]) == 4


def test_cli_predict_without_a_task_prints_a_table(run, learned: str, both, tmp_path: Path) -> None:  # noqa: ANN001
    x, _, _ = both
    np.save(inputs := tmp_path / "x.npy", x[:6])
    table = run("predict", learned, "--inputs", str(inputs))
    assert table.exit_code == 0, table.stderr
    assert "task-free (ridge" in table.stderr and "6 rows" in table.stderr
    for column in ("label", "task", "confidence", "unknown"):
        assert column in table.stdout
    answer = ok_json(run("predict", learned, "--inputs", str(inputs), "--json"))
    assert "task" not in answer and answer["predictor"] == "ridge" and len(answer["unknown"]) == 6
    for label in answer["labels"]:
        assert label in table.stdout
    with_probabilities = run("predict", learned, "--inputs", str(inputs), "--probabilities")
    assert with_probabilities.exit_code == 0 and answer["labels"][0] in with_probabilities.stdout
    written = ok_json(run("predict", learned, "--inputs", str(inputs), "--output", str(tmp_path / "y.npz"), "--json"))
    assert written["predictor"] == "ridge" and written["task"] is None
    with np.load(tmp_path / "y.npz") as arrays:
        assert {"predictions", "labels", "tasks", "confidence", "unknown", "score"} <= set(arrays.files)
        assert arrays["labels"].tolist() == answer["labels"]


def test_cli_evaluate_without_a_task(run, learned: str, both, tmp_path: Path) -> None:  # noqa: ANN001
    x, y, _ = both
    np.savez(data := tmp_path / "both.npz", x=x, y=y)
    printed = run("evaluate", learned, "--data", str(data))
    assert printed.exit_code == 0, printed.stderr
    for field in ("task-free accuracy", "task accuracy", "ECE", "unknown", "predictor ridge", "confusion matrix"):
        assert field in printed.stdout
    scored = ok_json(run("evaluate", learned, "--data", str(data), "--json"))
    assert scored["task"] is None and f"{scored['accuracy']:.4f}" in printed.stdout
    assert f"{scored['task_free']['task_accuracy']:.4f}" in printed.stdout


def test_cli_versions_show_and_the_matrix_have_task_free(run, learned: str, digits) -> None:  # noqa: ANN001
    shown = run("versions", "show", learned, "2")
    assert shown.exit_code == 0, shown.stderr
    for part in ("task-free:", "predictor", "held-back accuracy", "ECE", "threshold", "* ridge", "ncm",
                 "class statistics per task", "at this trunk", "remeasured", digits[0].name, digits[1].name):
        assert part in shown.stdout, part
    details = ok_json(run("versions", "show", learned, "2", "--json"))["task_free"]
    assert f"{details['accuracy']:.4f}" in shown.stdout
    assert details["tasks"][digits[0].name]["remeasured"] is True
    assert "task-free: none" in run("versions", "show", learned, "0").stdout

    matrix = run("evaluation", learned)
    assert matrix.exit_code == 0 and "task-free" in matrix.stdout
    rows = ok_json(run("evaluation", learned, "--json"))["rows"]
    assert all(f"{row['task_free']['accuracy']:.4f}" in matrix.stdout for row in rows)


def test_cli_models_update_changes_the_predictor(run, learned: str, both, tmp_path: Path) -> None:  # noqa: ANN001
    x, _, _ = both
    np.save(inputs := tmp_path / "x.npy", x[:4])
    try:
        updated = run("models", "update", learned, "--task-free-predictor", "ncm", "--unknown-rate", "0.1")
        assert updated.exit_code == 0 and "predictor ncm (unknown_rate 0.1" in updated.stdout, updated.stdout
        assert ok_json(run("predict", learned, "--inputs", str(inputs), "--json"))["predictor"] == "ncm"
        assert "task-free (ncm" in run("predict", learned, "--inputs", str(inputs)).stderr
        assert ok_json(run("versions", "show", learned, "2", "--json"))["task_free"]["predictor"] == "ncm"

        guarded = ok_json(run("models", "update", learned, "--min-task-free-accuracy", "0.5", "--json"))
        assert guarded["promotion"]["min_task_free_accuracy"] == 0.5 and guarded["task_free"]["predictor"] == "ncm"
        dropped = ok_json(run("models", "update", learned, "--no-min-task-free-accuracy", "--json"))
        assert dropped["promotion"]["min_task_free_accuracy"] is None
        assert "predictor ncm" in run("models", "show", learned).stdout
        assert run("models", "update", learned, "--unknown-rate", "0.9").exit_code == 2  # a usage error, not a 422
    finally:
        run("models", "update", learned, "--task-free-predictor", "ridge", "--unknown-rate", "0.05")


def test_cli_models_create_takes_task_free_options(run, lifelong: Client) -> None:  # noqa: ANN001
    name = unique("taskfree-options")
    created = ok_json(run("models", "create", name, "--hidden", "8", "--task-free-predictor", "energy",
                          "--unknown-rate", "0.2", "--projection", "0", "--min-task-free-accuracy", "0.6", "--json"))
    assert created["task_free"] == {"predictor": "energy", "unknown_rate": 0.2, "projection": 0}
    assert created["promotion"]["min_task_free_accuracy"] == 0.6
    plain = run("models", "create", unique("taskfree-defaults"), "--hidden", "8")
    assert plain.exit_code == 0 and "task-free predictor ridge (unknown_rate 0.05, projection 1024)" in plain.stdout
    assert lifelong.update_model(name, task_free={"predictor": "ncm"})["task_free"]["predictor"] == "ncm"
    with pytest.raises(ValueError):
        lifelong.update_model(name)


def test_the_help_says_what_the_new_options_do(run) -> None:  # noqa: ANN001
    create = run("models", "create", "--help").stdout
    for part in ("--task-free-predictor", "--unknown-rate", "--projection", "--min-task-free-accuracy",
                 "[max_softmax|energy|ncm|ridge|ridge_routed]", "nearest class mean", "held-back", "fixed at creation"):
        assert part in create, part
    update = run("models", "update", "--help").stdout
    assert "--no-min-task-free-accuracy" in update and "--projection" not in update
    assert "task-free" in run("predict", "--help").stdout and "task-free" in run("evaluate", "--help").stdout
