"""Hand a job to the workers: a Celery message that carries the job's id and nothing else."""

from __future__ import annotations

from celery import Celery

from app.db.tables import Job
from app.errors import Unavailable

RUN_JOB = "lifelong.run_job"


def enqueue_job(celery: Celery, job: Job) -> None:
    try:
        celery.send_task(RUN_JOB, args=[job.id])
    except Exception as error:  # noqa: BLE001 - any broker failure means the same to the client
        raise Unavailable(f"the job broker did not take the job: {error}") from error
