"""Fixtures for the client and CLI tests: a `Client` on the shared session service, and one trained model.

Training is the slow part, so one model learns two digit tasks once per session and the tests that
only read (versions, evaluation, predictions, CLI views) share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

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
