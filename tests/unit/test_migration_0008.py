"""Migration 0008 (aliases and promotion) on a database with rows made before it (tests/fixtures/legacy_0006,
brought to 0007): nothing is lost, existing models keep today's behaviour (auto), their production gets a
first history entry, the new code promotes on it; down and up again keeps production (the head)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.aliases.moves import PRODUCTION, history
from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config
from app.db.tables import Job, Model, Version
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.settings import Settings
from app.store import LocalBlobStore
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_0006"


@pytest.fixture
def at_0007(tmp_path: Path) -> tuple[Settings, LocalBlobStore]:
    var = tmp_path / "var"
    shutil.copytree(FIXTURE, var)
    settings = Settings(var_dir=var)
    command.upgrade(alembic_config(settings), "0007")
    return settings, LocalBlobStore(var / "blobs")


def _counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                for table in ("models", "versions", "tasks", "jobs", "datasets")}


def _learn(settings: Settings, store: LocalBlobStore, sessions: sessionmaker[Session], task: str) -> str:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 2, 32)
    with sessions() as session:
        dataset = upload_dataset(session=session, store=store, data=npz_bytes(x=x, y=y), filename=f"{task}.npz",
                                 max_bytes=1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": task, "train": {"dataset": dataset.id}, "epochs": 1,
                                              "method": "finetune"})
        job_id = submit_task(session=session, store=store, model_name="legacy", request=request,
                             settings=settings).id
        session.commit()
    context = JobContext(sessions=sessions, store=store, settings=settings, kinds=JOB_KINDS)
    assert run_job(context, job_id) == "succeeded"
    return job_id


def test_existing_models_become_auto_with_their_production_recorded(at_0007) -> None:
    settings, store = at_0007
    database = settings.var_dir / "lifelong.sqlite3"
    before = _counts(database)
    with sqlite3.connect(database) as connection:
        [(head,)] = connection.execute("SELECT head FROM models WHERE name = 'legacy'").fetchall()
    assert before["versions"] == 5 and before["jobs"] > 0 and head == 4  # the fixture is what this test says
    command.upgrade(alembic_config(settings), "head")
    assert _counts(database) == before  # nothing lost (SQLite's cascades would take versions with a model copy)

    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    with sessions() as session:
        model = session.scalars(select(Model)).one()
        assert model.promotion == {"policy": "auto", "max_forgetting": 0.05, "min_accuracy": None}
        [carried] = history(session=session, model=model, alias=PRODUCTION)
        assert (carried.from_version, carried.to_version, carried.reason) == (None, 4, "carried over by migration 0008")
        assert all(job.promotion is None for job in session.scalars(select(Job)))

    job_id = _learn(settings, store, sessions, "third")  # auto, as before: the head moves
    with sessions() as session:
        model = session.scalars(select(Model)).one()
        assert model.head == 5 and session.get(Job, job_id).promotion["policy"] == "auto"
        assert [(m.from_version, m.to_version, m.job_id) for m in history(session=session, model=model,
                                                                          alias=PRODUCTION)][0] == (
            4, 5, job_id)


def test_down_and_up_again_keeps_production(at_0007) -> None:
    settings, store = at_0007
    database = settings.var_dir / "lifelong.sqlite3"
    config = alembic_config(settings)
    command.upgrade(config, "head")
    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    _learn(settings, store, sessions, "third")
    with sessions.begin() as session:
        model = session.scalars(select(Model)).one()
        model.promotion = {"policy": "manual", "max_forgetting": 0.05, "min_accuracy": None}
    _learn(settings, store, sessions, "fourth")  # kept as candidate: production stays 5
    sessions.kw["bind"].dispose()
    after = _counts(database)

    command.downgrade(config, "0007")
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in connection.execute("PRAGMA table_info(models)")}
        assert connection.execute("SELECT head FROM models").fetchall() == [(5,)]
    assert not tables & {"aliases", "alias_moves"} and "promotion" not in columns
    assert _counts(database) == after

    command.upgrade(config, "head")
    assert _counts(database) == after
    with make_session_factory(make_engine(settings))() as session:
        model = session.scalars(select(Model)).one()
        assert model.head == 5 and model.promotion["policy"] == "auto"
        assert session.scalar(select(Version.number).order_by(Version.number.desc()).limit(1)) == 6
