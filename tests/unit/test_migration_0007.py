"""Migration 0007 on a database made by main before it (tests/fixtures/legacy_0006, made by that code's
in-process job runner: two tasks, then refreshes naming the last and the first task): every version
keeps the Ω its next task is trained against, the new code trains on it, and the downgrade restores it."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config
from app.db.tables import Model, Version
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.mas.tensors_io import tensors_from_bytes
from app.settings import Settings
from app.store import LocalBlobStore
from app.versions.importance import load_total
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_0006"


def _old_totals(database: Path, store: LocalBlobStore) -> dict[int, dict[str, torch.Tensor]]:
    """Ω = Ω_frozen + Ω_open / n_open per version, as main before 0007 computed it for the next task."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT number, omega_frozen_blob, omega_open_blob, n_open FROM versions").fetchall()
    totals = {}
    for number, frozen_blob, open_blob, n_open in rows:
        total = tensors_from_bytes(store.get(frozen_blob))
        for name, value in tensors_from_bytes(store.get(open_blob)).items():
            total[name] = total[name] + value / n_open if name in total else value / n_open
        totals[number] = total
    return totals


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Settings, LocalBlobStore]:
    var = tmp_path / "var"
    shutil.copytree(FIXTURE, var)
    return Settings(var_dir=var), LocalBlobStore(var / "blobs")


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=0)


def test_every_version_keeps_its_total_importance_and_the_new_code_trains_on_it(legacy) -> None:
    settings, store = legacy
    database = settings.var_dir / "lifelong.sqlite3"
    before = _old_totals(database, store)
    assert set(before) == {0, 1, 2, 3, 4} and before[4]  # the fixture is what this test says it is
    command.upgrade(alembic_config(settings), "head")

    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    with sessions() as session:
        versions = {v.number: v for v in session.scalars(select(Version))}
        for number, expected in before.items():
            _assert_same(load_total(store, versions[number].importance_parts), expected)
        shape = {n: [(p["task"], p["n"]) for p in v.importance_parts] for n, v in versions.items()}
    assert shape[0] == [] and shape[1] == [("first", 40)]
    assert shape[2] == [("(earlier tasks)", 1), ("second", 40)]
    assert shape[4] == [("(earlier tasks)", 1), ("second", 88)]  # the old defect, carried over as it was

    # The new code learns a third task on the migrated head: the old estimates are named again, not copied.
    ctx = JobContext(sessions=sessions, store=store, settings=settings, kinds=JOB_KINDS)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 2, 32)
    with sessions() as session:
        dataset = upload_dataset(session=session, store=store, data=npz_bytes(x=x, y=y), filename="third.npz",
                                 max_bytes=1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": "third", "train": {"dataset": dataset.id}, "epochs": 1})
        job_id = submit_task(session=session, store=store, model_name="legacy", request=request,
                             settings=settings).id
        session.commit()
    assert run_job(ctx, job_id) == "succeeded"
    with sessions() as session:
        model = session.scalars(select(Model)).one()
        third = session.scalars(select(Version).where(Version.number == model.head)).one()
        head_parts = third.importance_parts
    assert [p["task"] for p in head_parts] == ["(earlier tasks)", "second", "third"]
    assert head_parts[:2] == versions[4].importance_parts
    assert head_parts[2]["measure"] == "mas" and head_parts[2]["n"] == 32 - 4  # 10 % held back for validation


def test_the_downgrade_puts_frozen_and_open_back(legacy) -> None:
    settings, store = legacy
    database = settings.var_dir / "lifelong.sqlite3"
    before = _old_totals(database, store)
    config = alembic_config(settings)
    command.upgrade(config, "head")
    command.downgrade(config, "0006")
    after = _old_totals(database, store)
    for number, expected in before.items():
        _assert_same(after[number], expected)
    command.upgrade(config, "head")
