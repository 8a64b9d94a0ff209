"""`lifelong export` and `lifelong evaluate`, and the client's `export`, `evaluate` and `checkpoint_metadata`,
against the real service and the session's trained model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner, Result

from app.cli import cli
from app.client import Client, Invalid, NotFound
from app.commands.common import ExitCode
from tests.client.conftest import Trained
from tests.conftest import Service


@pytest.fixture(scope="module")
def run(service: Service):  # noqa: ANN201
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--url", service.url, *args], catch_exceptions=False)

    return invoke


def test_cli_export_writes_an_onnx_file_that_answers_as_the_service(run, lifelong: Client, trained: Trained,
                                                                     tmp_path: Path) -> None:
    task, version = trained.tasks[0], trained.versions[-1]
    output = tmp_path / "net.onnx"
    done = run("export", trained.model, "production", "--task", task.name, "--output", str(output))
    assert done.exit_code == 0, done.stderr
    assert f"onnx written to {output}" in done.stderr
    session = onnxruntime.InferenceSession(output.read_bytes(), providers=["CPUExecutionProvider"])
    rows = task.x_test[:20].astype(np.float32)
    _, probabilities = session.run(None, {"input": rows})
    expected = lifelong.predict(trained.model, rows, task=task.name, version=version, probabilities=True)
    assert np.abs(probabilities - expected.probabilities).max() <= 1e-4
    props = {p.key: p.value for p in onnx.load(output).metadata_props}
    assert props["version"] == str(version) and props["task"] == task.name

    scripted = tmp_path / "net.pt"
    answer = json.loads(run("export", trained.model, str(version), "--task", task.name, "--format", "torchscript",
                            "--output", str(scripted), "--json").stdout)
    assert answer["bytes"] == scripted.stat().st_size and answer["format"] == "torchscript"
    module = torch.jit.load(str(scripted))
    assert np.abs(module(torch.from_numpy(rows))[1].detach().numpy() - expected.probabilities).max() <= 1e-4

    missing = run("export", trained.model, str(version), "--task", "nope", "--output", str(tmp_path / "x.onnx"))
    assert missing.exit_code == ExitCode.NOT_FOUND and "no task 'nope'" in missing.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_cli_evaluate_prints_the_scores_and_json_equals_the_client(run, lifelong: Client, trained: Trained,
                                                                   tmp_path: Path) -> None:
    task = trained.tasks[1]
    np.savez(data := tmp_path / "eval.npz", x=task.x_test, y=task.y_test)
    table = run("evaluate", trained.model, "--task", task.name, "--data", str(data))
    assert table.exit_code == 0, table.stderr
    assert "accuracy" in table.stdout and "confusion matrix" in table.stdout and "precision" in table.stdout
    printed = json.loads(run("evaluate", trained.model, "--task", task.name, "--data", str(data), "--alias",
                             "production", "--json").stdout)
    scores = lifelong.evaluate(trained.model, (task.x_test, task.y_test), task=task.name,
                               version=trained.versions[-1])
    assert printed.pop("alias") == "production" and scores.pop("alias") is None
    assert printed == scores
    assert scores["n"] == len(task.y_test) and sum(map(sum, scores["confusion_matrix"])) == len(task.y_test)
    assert np.isclose(scores["accuracy"], lifelong.get_version(trained.model, trained.versions[-1])["accuracy"]
                      [task.name], atol=1e-6)

    unlabeled = run("evaluate", trained.model, "--task", task.name, "--data",
                    lifelong.upload_dataset(task.x_test[:5])["id"])
    assert unlabeled.exit_code == ExitCode.HTTP_ERROR and "labels" in unlabeled.stderr
    with pytest.raises(Invalid, match="not both"):
        lifelong.evaluate(trained.model, (task.x_test, task.y_test), task=task.name, version=1, alias="production")


def test_client_checkpoint_metadata_and_export_by_alias(lifelong: Client, trained: Trained) -> None:
    metadata = lifelong.checkpoint_metadata(trained.model, "production")
    assert metadata["model"] == trained.model and metadata["version"] == trained.versions[-1]
    assert [t["name"] for t in metadata["tasks"]] == [t.name for t in trained.tasks]
    assert metadata["architecture"]["kind"] == "mlp"
    content = lifelong.export(trained.model, "production", task=trained.tasks[0].name, format="torchscript")
    extra = {"lifelong.json": ""}
    torch.jit.load(io.BytesIO(content), _extra_files=extra)
    assert json.loads(extra["lifelong.json"])["version"] == str(trained.versions[-1])
    with pytest.raises(NotFound):
        lifelong.export(trained.model, "no-such-alias", task=trained.tasks[0].name)
