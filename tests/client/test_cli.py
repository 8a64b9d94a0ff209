"""The client commands of `lifelong` against the real service, in process (typer's CliRunner).

A newcomer's whole path is here: create a model, upload data, train with a followed job, inspect
the versions and the accuracy matrix, predict, roll the head back; plus the exit codes scripts use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.commands.common import ExitCode
from tests.client.conftest import Trained
from tests.conftest import DigitsTask, Service, free_port, unique


@pytest.fixture(scope="module")
def run(service: Service):  # noqa: ANN201
    runner = CliRunner()

    def invoke(*args: str, url: str | None = None) -> Result:
        return runner.invoke(cli, ["--url", url or service.url, *args], catch_exceptions=False)

    return invoke


def ok_json(result: Result):  # noqa: ANN201
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_train_watch_inspect_and_roll_back(run, digits: list[DigitsTask], tmp_path: Path) -> None:  # noqa: ANN001
    name = unique("cli")
    created = run("models", "create", name, "--input-shape", "64", "--hidden", "16")
    assert created.exit_code == 0 and f"created model {name}" in created.stdout
    assert ok_json(run("models", "show", name, "--json"))["head"] == 0

    first, second = digits[0], digits[1]
    files = {}
    for task in (first, second):
        np.savez(train := tmp_path / f"{task.name}-train.npz", x=task.x_train, y=task.y_train)
        np.savez(held := tmp_path / f"{task.name}-eval.npz", x=task.x_test, y=task.y_test)
        files[task.name] = (train, held)
    uploaded = ok_json(run("datasets", "upload", str(files[first.name][0]), "--json"))
    assert uploaded["n"] == len(first.x_train)

    trained = run("tasks", "add", name, first.name, "--train", uploaded["id"], "--eval", str(files[first.name][1]),
                  "--epochs", "2", "--lr", "0.05", "--batch-size", "32")
    assert trained.exit_code == 0, trained.stderr
    assert f"{name} version 1" in trained.stdout and "succeeded" in trained.stderr
    job = ok_json(run("tasks", "add", name, second.name, "--train", str(files[second.name][0]), "--eval",
                      str(files[second.name][1]), "--epochs", "2", "--lambda", "2", "--json"))
    assert job["state"] == "succeeded" and job["result"] == {"version": 2}

    matrix = run("evaluation", name)
    assert matrix.exit_code == 0 and first.name in matrix.stdout and second.name in matrix.stdout
    assert "average accuracy:" in matrix.stdout and "forgetting:" in matrix.stdout and "bwt:" in matrix.stdout
    assert len(ok_json(run("evaluation", name, "--json"))["rows"]) == 2

    listed = run("versions", "list", name)
    assert listed.exit_code == 0 and "(head: 2)" in listed.stdout
    shown = run("versions", "show", name, "2")
    assert shown.exit_code == 0 and "importance" in shown.stdout and first.name in shown.stdout
    assert [j["id"] for j in ok_json(run("jobs", "list", "--model", name, "--json"))][0] == job["id"]
    assert "succeeded" in run("jobs", "show", job["id"]).stdout
    assert run("jobs", "watch", job["id"]).exit_code == 0

    np.save(inputs := tmp_path / "inputs.npy", first.x_test)
    predicted = ok_json(run("predict", name, "--task", first.name, "--inputs", str(inputs), "--json"))
    assert predicted["version"] == 2 and len(predicted["predictions"]) == len(first.x_test)
    plain = run("predict", name, "--task", first.name, "--inputs", str(files[first.name][1]), "--version", "1")
    assert plain.exit_code == 0 and len(plain.stdout.split()) == len(first.x_test)

    refreshed = run("importance", "refresh", name, "--data", str(files[second.name][1]), "--mode", "replace")
    assert refreshed.exit_code == 0, refreshed.stderr
    assert f"{name} version 3" in refreshed.stdout
    assert run("head", "set", name, "1").stdout.strip() == f"{name}: head is version 1"
    assert ok_json(run("models", "show", name, "--json"))["tasks"] == [first.name]


def test_a_cancelled_job_exits_1(run, trained: Trained, digits: list[DigitsTask], tmp_path: Path) -> None:  # noqa: ANN001
    task = digits[2]
    np.savez(train := tmp_path / "train.npz", x=task.x_train, y=task.y_train)
    job_id = run("tasks", "add", trained.model, task.name, "--train", str(train), "--epochs", "5000",
                 "--batch-size", "8", "--detach").stdout.strip()
    waited = run("jobs", "watch", job_id, "--timeout", "0.1")
    assert waited.exit_code == ExitCode.TIMEOUT and "still" in waited.stderr
    assert run("jobs", "cancel", job_id, "--wait").stdout.strip() == f"job {job_id} cancelled"
    watched = run("jobs", "watch", job_id)
    assert watched.exit_code == ExitCode.JOB_FAILED and "cancelled" in watched.stderr


def test_exit_codes_say_what_went_wrong(run, trained: Trained) -> None:  # noqa: ANN001
    missing = run("models", "show", "no-such-model")
    assert missing.exit_code == ExitCode.NOT_FOUND and "no-such-model" in missing.stderr
    taken = run("models", "create", trained.model)
    assert taken.exit_code == ExitCode.HTTP_ERROR and "409" in taken.stderr
    assert run("head", "set", trained.model, "999").exit_code == ExitCode.NOT_FOUND
    assert run("models", "list", url=f"http://127.0.0.1:{free_port()}").exit_code == ExitCode.UNREACHABLE
    assert run("datasets", "upload", "/no/such/file.npz").exit_code == ExitCode.USAGE
    assert trained.model in [m["name"] for m in ok_json(run("models", "list", "--json"))]
