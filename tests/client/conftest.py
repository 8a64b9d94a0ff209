"""Fixtures for the client and CLI tests: a `Client` on the shared session service, and one trained model.

Training is the slow part, so one model learns two digit tasks once per session and the tests that
only read (versions, evaluation, predictions, CLI views) share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.client import Client
from tests.conftest import DigitsTask, Service, unique


@pytest.fixture(scope="session")
def lifelong(service: Service) -> Iterator[Client]:
    with Client(service.url, timeout=30.0) as client:
        yield client


@dataclass(frozen=True)
class Trained:
    model: str
    tasks: list[DigitsTask]
    versions: list[int]


FAST = {"epochs": 2, "batch_size": 32, "lr": 0.05}


@pytest.fixture(scope="session")
def trained(lifelong: Client, digits: list[DigitsTask]) -> Trained:
    name = unique("trained")
    lifelong.create_model(name, {"kind": "mlp", "input_shape": [64], "hidden": [32]})
    versions = []
    for task in digits[:2]:
        job = lifelong.add_task(name, task.name, (task.x_train, task.y_train), (task.x_test, task.y_test), **FAST)
        assert job.wait(timeout=120).succeeded, job.data
        versions.append(job.version)
    return Trained(name, digits[:2], versions)


@pytest.fixture(scope="module")
def run(service: Service) -> Callable[..., Result]:
    """`lifelong ARGS…` against the session's service, as a user's terminal (200 columns) runs it."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--url", service.url, *args], catch_exceptions=False, env={"COLUMNS": "200"})

    return invoke


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def two_task_model(lifelong: Client, digits: list[DigitsTask], prefix: str) -> str:
    """A model of its own (promotion auto) that learned the first two digit tasks: versions 1 and 2, 2 in
    production; for modules that change the model's settings."""
    name = unique(prefix)
    lifelong.create_model(name, {"kind": "mlp", "input_shape": [64], "hidden": [32]}, promotion={"policy": "auto"})
    for task in digits[:2]:
        job = lifelong.add_task(name, task.name, (task.x_train, task.y_train), (task.x_test, task.y_test),
                                **FAST, lambda_=1.0)
        assert job.wait(timeout=120).succeeded, job.data
    return name
