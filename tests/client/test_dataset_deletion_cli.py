"""Deleting datasets from Python (`Client.delete_dataset`, `upload_dataset(retain_until=…)`) and from a terminal
(`lifelong datasets delete`, `upload --retain-until`), against the session's real service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import Result

from app.client import Client, Conflict, Invalid, NotFound
from app.commands.common import ExitCode
from tests.client.conftest import Trained, ok_json
from tests.conftest import DigitsTask, npz_bytes, unique


def test_the_client_deletes_a_dataset_and_says_why_it_is_gone(lifelong: Client) -> None:
    rng = np.random.default_rng(11)
    until = datetime.now(UTC) + timedelta(days=3)
    uploaded = lifelong.upload_dataset(rng.normal(size=(6, 3)).astype(np.float32), retain_until=until)
    assert datetime.fromisoformat(uploaded["retain_until"]) == until
    with pytest.raises(Invalid, match="in the past"):
        lifelong.upload_dataset(rng.normal(size=(6, 3)), retain_until="2000-01-01")
    lifelong.delete_dataset(uploaded["id"])
    with pytest.raises(NotFound, match="was deleted at"):
        lifelong.get_dataset(uploaded["id"])
    with pytest.raises(NotFound, match="was deleted at"):
        lifelong.delete_dataset(uploaded["id"])


def test_the_client_is_refused_while_a_job_needs_the_data(lifelong: Client, trained: Trained,
                                                         digits: list[DigitsTask]) -> None:
    task = digits[2]
    job = lifelong.add_task(trained.model, unique("long"), (task.x_train, task.y_train), epochs=500)
    try:
        with pytest.raises(Conflict, match=job.id):
            lifelong.delete_dataset(job.data["request"]["train_dataset"])
        with pytest.raises(Conflict, match=job.id):  # an earlier task's data, which the job evaluates on
            lifelong.delete_dataset(lifelong.get_job(lifelong.get_version(trained.model, 1)["job"]).data[
                "request"]["eval_dataset"])
    finally:
        job.cancel().wait(timeout=120)


def test_the_command_deletes_and_uploads_with_a_retention_date(run: Callable[..., Result], tmp_path: Path) -> None:
    data = tmp_path / "kept.npz"
    data.write_bytes(npz_bytes(x=np.random.default_rng(12).normal(size=(5, 2))))
    uploaded = ok_json(run("datasets", "upload", str(data), "--retain-until", "2099-01-01", "--json"))
    assert uploaded["retain_until"].startswith("2099-01-01T00:00:00")
    deleted = run("datasets", "delete", uploaded["id"], "--yes")
    assert deleted.exit_code == 0 and f"deleted dataset {uploaded['id']}" in deleted.stdout
    again = run("datasets", "delete", uploaded["id"], "--yes")
    assert again.exit_code == ExitCode.NOT_FOUND and "was deleted at" in again.stderr
