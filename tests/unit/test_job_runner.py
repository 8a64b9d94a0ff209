"""Jobs in process: a SQLite file, a local blob store and `run_job` called directly (no broker, no
worker process), for what the subprocess tests cannot make happen on cue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import Job
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning import train
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.models.service import create_model
from app.settings import Settings
from app.store import LocalBlobStore
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS


class SoftTimeLimit(Exception):
    """Stands for Celery's SoftTimeLimitExceeded, which a signal raises wherever the job is."""


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    return JobContext(sessions=sessions, store=LocalBlobStore(tmp_path / "var" / "blobs"), settings=settings,
                      kinds=JOB_KINDS, timeouts=(SoftTimeLimit,))


def _queued_train_job(ctx: JobContext, rows: int = 40) -> str:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 4)).astype(np.float32), rng.integers(0, 2, rows)
    with ctx.sessions() as session:  # as the API's routes do: one session, committed at the end of each step
        create_model(session=session, store=ctx.store, name="m",
                     architecture={"kind": "mlp", "input_shape": [4], "hidden": [8]}, seed=0)
        session.commit()
        dataset = upload_dataset(session=session, store=ctx.store, data=npz_bytes(x=x, y=y), filename="train.npz",
                                 max_bytes=1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": "t", "train": {"dataset": dataset.id}, "epochs": 3,
                                              "batch_size": 16})
        job_id = submit_task(session=session, store=ctx.store, model_name="m", request=request,
                             settings=ctx.settings).id
        session.commit()
        return job_id


def test_a_job_run_in_process_succeeds_with_its_version(context: JobContext) -> None:
    job_id = _queued_train_job(context)
    assert run_job(context, job_id, worker="test@host") == "succeeded"
    with context.sessions() as session:
        job = session.get(Job, job_id)
        assert (job.state, job.result_version, job.worker, job.device) == ("succeeded", 1, "test@host", "cpu")
        assert (job.progress_done, job.progress_total, job.progress_unit) == (9, 9, "steps")


def test_a_time_limit_before_the_first_step_leaves_the_jobs_whole_progress(context: JobContext,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The race of issue 13: the soft limit fired before the first progress write, and the failed job
    showed no progress at all. Progress 0 of the whole work is now written with the claim."""
    def limit_fires(*_: object, **__: object) -> None:
        raise SoftTimeLimit

    monkeypatch.setattr(train, "load_inputs", limit_fires)
    job_id = _queued_train_job(context)
    assert run_job(context, job_id) == "failed"
    with context.sessions() as session:
        job = session.get(Job, job_id)
        assert job.error_type == "timeout"
        assert (job.progress_done, job.progress_total, job.progress_unit) == (0, 9, "steps")  # 3 × ⌈40 / 16⌉


def test_a_stored_request_that_fails_its_typed_check_is_invalid_before_any_work(context: JobContext) -> None:
    job_id = _queued_train_job(context)
    with context.sessions.begin() as session:
        job = session.get(Job, job_id)
        job.request = {**job.request, "epochs": "many", "optimizer": "rmsprop"}
    assert run_job(context, job_id) == "failed"
    with context.sessions() as session:
        job = session.get(Job, job_id)
        assert job.error_type == "invalid" and "epochs" in job.error_message and "optimizer" in job.error_message
        assert job.progress_total is None  # nothing was started


def test_a_value_error_inside_a_job_is_an_internal_error_not_the_callers(context: JobContext,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests are checked when accepted: a ValueError while running is a defect, said as `error`."""
    def broken(*_: object, **__: object) -> None:
        raise ValueError("a bug in the core")

    monkeypatch.setattr(train, "load_inputs", broken)
    job_id = _queued_train_job(context)
    assert run_job(context, job_id) == "failed"
    with context.sessions() as session:
        job = session.get(Job, job_id)
        assert job.error_type == "error" and "ValueError: a bug in the core" in job.error_message
