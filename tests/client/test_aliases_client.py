"""Aliases and promotion from the Python client and from `lifelong aliases`, `lifelong promote` and
`lifelong models create|update --promotion`, against the real service."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner, Result

from app import client as lc
from app.cli import cli
from app.client import Client
from app.commands.common import ExitCode
from tests.client.conftest import FAST
from tests.conftest import DigitsTask, Service, unique

MLP = {"kind": "mlp", "input_shape": [64], "hidden": [16]}


@pytest.fixture(scope="module")
def run(service: Service):  # noqa: ANN201
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--url", service.url, *args], catch_exceptions=False)

    return invoke


def ok_json(result: Result):  # noqa: ANN201
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_the_client_moves_aliases_and_reads_their_history(lifelong: Client, digits: list[DigitsTask]) -> None:
    task = digits[0]
    name = unique("clalias")
    created = lifelong.create_model(name, MLP, promotion={"policy": "manual"})
    assert created["promotion"]["policy"] == "manual" and created["aliases"] == {"production": 0}
    job = lifelong.add_task(name, task.name, (task.x_train, task.y_train), (task.x_test, task.y_test), **FAST).wait()
    assert job.succeeded and job.promotion["promoted"] is False and job.promotion["alias"] == "candidate"
    assert {a["alias"]: a["version"] for a in lifelong.aliases(name)} == {"production": 0, "candidate": 1}
    assert lifelong.predict(name, task.x_test[:4], task=task.name, alias="candidate").version == 1

    promoted = lifelong.promote(name, 1, reason="reviewed")
    assert (promoted["alias"], promoted["version"]) == ("production", 1)
    assert lifelong.predict(name, task.x_test[:4], task=task.name).version == 1
    [latest, created_move] = lifelong.alias_history(name, "production")
    assert (latest["from"], latest["to"], latest["reason"]) == (0, 1, "reviewed")
    assert (created_move["from"], created_move["to"]) == (None, 0)

    assert lifelong.set_alias(name, "canary", 0, "compare")["version"] == 0
    lifelong.delete_alias(name, "canary")
    with pytest.raises(lc.NotFound):
        lifelong.delete_alias(name, "canary")
    with pytest.raises(lc.Conflict):
        lifelong.delete_alias(name, "production")
    with pytest.raises(lc.Invalid):
        lifelong.predict(name, task.x_test[:2], task=task.name, version=1, alias="production")

    updated = lifelong.update_model(name, promotion={"policy": "guarded", "max_forgetting": 0.1})
    assert updated["promotion"] == {"policy": "guarded", "max_forgetting": 0.1, "min_accuracy": None,
                                    "min_task_free_accuracy": None,
     "max_negative_flip_rate": None}
    refresh = lifelong.refresh_importance(name, task.x_test[:20], base_alias="production").wait()
    assert refresh.succeeded and refresh.promotion["promoted"] is True
    assert lifelong.get_model(name)["head"] == refresh.version


def test_the_cli_creates_updates_lists_moves_and_promotes(run, lifelong: Client, digits: list[DigitsTask]) -> None:  # noqa: ANN001
    name = unique("clialias")
    created = ok_json(run("models", "create", name, "--input-shape", "64", "--hidden", "16", "--promotion", "guarded",
                          "--max-forgetting", "0.1", "--min-accuracy", "0.5", "--json"))
    assert created["promotion"] == {"policy": "guarded", "max_forgetting": 0.1, "min_accuracy": 0.5,
                                    "min_task_free_accuracy": None,
     "max_negative_flip_rate": None}
    updated = run("models", "update", name, "--promotion", "manual", "--no-min-accuracy")
    assert updated.exit_code == 0 and "manual" in updated.stdout
    assert lifelong.get_model(name)["promotion"] == {"policy": "manual", "max_forgetting": 0.1, "min_accuracy": None,
                                                     "min_task_free_accuracy": None,
     "max_negative_flip_rate": None}
    assert run("models", "update", name).exit_code == ExitCode.USAGE
    shown = run("models", "show", name)
    assert "production → 0" in shown.stdout and "manual" in shown.stdout

    task = digits[0]
    job = lifelong.add_task(name, task.name, (task.x_train, task.y_train), (task.x_test, task.y_test), **FAST).wait()
    assert job.succeeded and job.version == 1
    listed = run("aliases", "list", name)
    assert listed.exit_code == 0 and "candidate" in listed.stdout and "production" in listed.stdout
    assert {a["alias"]: a["version"] for a in ok_json(run("aliases", "list", name, "--json"))} == {
        "production": 0, "candidate": 1}

    promoted = run("promote", name, "1", "--reason", "looks right")
    assert promoted.exit_code == 0 and f"{name}: production is version 1" in promoted.stdout
    moved = ok_json(run("aliases", "set", name, "canary", "0", "--reason", "a/b", "--json"))
    assert (moved["alias"], moved["version"]) == ("canary", 0)
    history = ok_json(run("aliases", "history", name, "production", "--json"))
    assert [(m["from"], m["to"], m["reason"]) for m in history][0] == (0, 1, "looks right")
    table = run("aliases", "history", name, "candidate")
    assert table.exit_code == 0 and "job " in table.stdout
    assert run("aliases", "delete", name, "canary").exit_code == 0

    assert run("aliases", "history", name, "canary-2").exit_code == ExitCode.NOT_FOUND
    assert run("aliases", "set", name, "canary", "99").exit_code == ExitCode.NOT_FOUND
    refused = run("aliases", "delete", name, "production")
    assert refused.exit_code == ExitCode.HTTP_ERROR and "409" in refused.stderr
    assert run("promote", name, "1", "--json").exit_code == 0
