"""A fine-tune weighs no penalty with λ, so neither its version's `made_by` nor its job's result names one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import Job, Version
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.models.service import create_model
from app.settings import Settings
from app.store import LocalBlobStore
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    return JobContext(sessions=sessions, store=LocalBlobStore(tmp_path / "var" / "blobs"), settings=settings,
                      kinds=JOB_KINDS)


def _train(ctx: JobContext, method: str) -> tuple[dict, dict]:
    """Run one train job of `method` in process; (the version's made_by, the job's result details)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 2, 40)
    with ctx.sessions() as session:
        create_model(session=session, store=ctx.store, name="m",
                     architecture={"kind": "mlp", "input_shape": [4], "hidden": [8]}, seed=0)
        session.commit()
        dataset = upload_dataset(session=session, store=ctx.store, data=npz_bytes(x=x, y=y), filename="train.npz",
                                 max_bytes=1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": "t", "train": {"dataset": dataset.id}, "epochs": 1,
                                              "batch_size": 16, "method": method})
        job_id = submit_task(session=session, store=ctx.store, model_name="m", request=request,
                             settings=ctx.settings).id
        session.commit()
    assert run_job(ctx, job_id, worker="test@host") == "succeeded"
    with ctx.sessions() as session:
        job = session.get(Job, job_id)
        version = session.scalar(select(Version).where(Version.job_id == job_id))
        return version.made_by, job.result_details


def test_a_finetune_reports_no_lambda(context: JobContext) -> None:
    made_by, result = _train(context, "finetune")
    assert made_by["lambda"] is None and result["lambda"] is None
    assert made_by["lambda_search"] == result["lambda_search"] == [] and result["lambda_selection"] is None


def test_a_penalised_method_still_reports_the_lambda_it_trained_with(context: JobContext) -> None:
    made_by, result = _train(context, "mas")
    assert made_by["lambda"] == result["lambda"] == 1.0  # the first task: λ "auto" trains once, with λ = 1
