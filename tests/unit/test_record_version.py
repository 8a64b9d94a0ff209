"""`record_version` with the promotion decision, in process over a SQLite file: a job delivered twice gets its
one version and its one decision back and moves no alias again; each policy moves the alias it should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.aliases.moves import CANDIDATE, PRODUCTION, aliases_of
from app.aliases.promotion import PromotionPolicy
from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import AliasMove, Job, Model, Version
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.models.service import create_model
from app.settings import Settings
from app.store import LocalBlobStore
from app.versions.service import VersionConflict, record_version
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    return JobContext(sessions=sessions, store=LocalBlobStore(tmp_path / "var" / "blobs"), settings=settings,
                      kinds=JOB_KINDS)


def _model(ctx: JobContext, policy: str) -> None:
    with ctx.sessions() as session:
        create_model(session=session, store=ctx.store, name="m",
                     architecture={"kind": "mlp", "input_shape": [4], "hidden": [8]}, seed=0,
                     promotion=PromotionPolicy(policy))
        session.commit()


def _queued(ctx: JobContext, task: str, **options: object) -> str:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 2, 40)
    with ctx.sessions() as session:
        dataset = upload_dataset(session=session, store=ctx.store, data=npz_bytes(x=x, y=y), filename="train.npz",
                                 max_bytes=1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": task, "train": {"dataset": dataset.id},
                                              "eval": {"dataset": dataset.id}, "epochs": 1, "lambda": 1.0,
                                              **options})
        job_id = submit_task(session=session, store=ctx.store, model_name="m", request=request,
                             settings=ctx.settings).id
        session.commit()
    return job_id


def _record_again(ctx: JobContext, job_id: str, base: int):  # noqa: ANN202
    with ctx.sessions.begin() as session:
        return record_version(session=session, model_id=1, job_id=job_id, base=base, kind="train", task="t",
                              theta_blob="0" * 64, importance_parts=[], tasks=[], accuracy={}, importance={})


@pytest.mark.parametrize(("policy", "moved"), [("guarded", PRODUCTION), ("manual", CANDIDATE), ("auto", PRODUCTION)])
def test_a_job_delivered_twice_gets_its_version_and_decision_back(context: JobContext, policy: str,
                                                                  moved: str) -> None:
    _model(context, policy)
    job_id = _queued(context, "t")
    assert run_job(context, job_id) == "succeeded"
    with context.sessions() as session:
        first = session.get(Job, job_id).promotion
        moves = session.scalar(select(func.count()).select_from(AliasMove))
        model = session.scalars(select(Model)).one()
        assert aliases_of(session, model)[moved] == 1
    assert first["alias"] == moved and first["policy"] == policy

    again = _record_again(context, job_id, base=0)
    assert (again.version.number, again.promotion) == (1, first)
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AliasMove)) == moves
        assert session.scalar(select(func.count()).select_from(Version)) == 2


def test_auto_conflicts_and_writes_nothing_when_production_moved(context: JobContext) -> None:
    _model(context, "auto")
    assert run_job(context, _queued(context, "t")) == "succeeded"
    with pytest.raises(VersionConflict, match="production moved from version 0 to 1"):
        _record_again(context, "another-job", base=0)
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Version)) == 2


def test_guarded_keeps_a_version_whose_base_is_not_production(context: JobContext) -> None:
    _model(context, "guarded")
    assert run_job(context, _queued(context, "t")) == "succeeded"
    kept = _record_again(context, "another-job", base=0)
    assert kept.version.number == 2 and kept.promotion["promoted"] is False
    with context.sessions() as session:
        assert aliases_of(session, session.scalars(select(Model)).one()) == {PRODUCTION: 1, CANDIDATE: 2}
