"""Jobs in process: a SQLite file, a local blob store and `run_job` called directly (no broker, no
worker process), for what the subprocess tests cannot make happen on cue."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.db.tables import Job
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning import train
from tests.unit.in_process import job_context, queue_train_job, small_model


class SoftTimeLimit(Exception):
    """Stands for Celery's SoftTimeLimitExceeded, which a signal raises wherever the job is."""


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    return job_context(tmp_path, timeouts=(SoftTimeLimit,))


def _queued_train_job(ctx: JobContext, rows: int = 40) -> str:
    small_model(ctx)
    return queue_train_job(ctx, rows=rows, epochs=3, batch_size=16)


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
