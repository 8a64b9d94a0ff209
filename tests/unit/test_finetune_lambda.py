"""A fine-tune weighs no penalty with λ, so neither its version's `made_by` nor its job's result names one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.tables import Job, Version
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from tests.unit.in_process import job_context, queue_train_job, small_model


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    return job_context(tmp_path)


def _train(ctx: JobContext, method: str) -> tuple[dict, dict]:
    """Run one train job of `method` in process; (the version's made_by, the job's result details)."""
    small_model(ctx)
    job_id = queue_train_job(ctx, epochs=1, batch_size=16, method=method)
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
