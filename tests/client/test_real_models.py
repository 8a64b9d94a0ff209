"""Pretrained models from the command line and the Python client, with raw files, as the README shows:
a MiniLM model learns a task from a .jsonl file and answers class names for --text; an EfficientNet
model learns from an ImageFolder zip and answers for image files; a task can train its last blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.client import Client
from scripts.make_examples import write_examples
from tests.conftest import Service, unique


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples")
    write_examples(out)
    return out


def test_a_text_model_from_the_command_line(service: Service, examples: Path) -> None:
    runner = CliRunner()

    def run(*args: str):  # noqa: ANN202
        result = runner.invoke(cli, ["--url", service.url, *args], catch_exceptions=False)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    name = unique("cli-text")
    run("models", "create", name, "--kind", "text-encoder", "--architecture",
        json.dumps({"kind": "text-encoder", "max_length": 16, "trainable": "none"}))
    trained = run("tasks", "add", name, "living", "--train", str(examples / "text/living-train.jsonl"),
                  "--eval", str(examples / "text/living-eval.jsonl"), "--epochs", "4", "--lr", "0.1",
                  "--batch-size", "16", "--trainable", "last:1", "--json")
    assert json.loads(trained.stdout)["state"] == "succeeded"
    answer = json.loads(run("predict", name, "--task", "living", "--text", "a dog in the garden",
                            "--text", "a red sports car", "--json").stdout)
    assert answer["labels"] == ["animal", "vehicle"]
    plain = run("predict", name, "--task", "living", "--text", "a cat on the sofa")
    assert plain.stdout.strip() == "0\tanimal"
    versions = json.loads(run("versions", "show", name, "1", "--json").stdout)
    assert versions["trainable"] == {"living": {"last": 1}}
    assert any(stats["max"] > 0 for layer, stats in versions["importance"]["layers"].items() if "layers.5." in layer)
    assert all(stats["max"] == 0 for layer, stats in versions["importance"]["layers"].items() if "layers.4." in layer)


def test_an_image_model_from_the_python_client(service: Service, examples: Path) -> None:
    with Client(service.url, timeout=60.0) as lifelong:
        name = unique("client-image")
        lifelong.create_model(name, {"kind": "image-backbone", "image_size": 64, "trainable": "none"})
        job = lifelong.add_task(name, "warm", examples / "images/warm-train.zip", examples / "images/warm-eval.zip",
                                epochs=3, lr=0.05, batch_size=8)
        assert job.wait(timeout=300).succeeded, job.data
        answer = lifelong.predict(name, [examples / "images/query-red.png", examples / "images/query-red.png"],
                                  task="warm", probabilities=True)
        assert answer.labels == ["red", "red"] and answer.probabilities.shape == (2, 2)
        refreshed = lifelong.refresh_importance(name, examples / "images/deployment.zip").wait(timeout=300)
        assert refreshed.succeeded, refreshed.data
