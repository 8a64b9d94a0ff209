"""What the routes that answer with a job share: the job as `JobOut`, and queueing a submitted job (202).

Jobs are started by other packages' routes (learning, drift), which answer with the job as `GET
/v1/jobs/{id}` shows it; they take these from here rather than from another router, so no route module
imports another.
"""

from __future__ import annotations

from celery import Celery
from fastapi import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.deletion import DATA_FIELDS, dataset_states
from app.db.tables import Job, Model
from app.errors import Unavailable
from app.jobs.dispatch import QueuedJob, enqueue_job
from app.jobs.schemas import JobOut
from app.jobs.service import fail_job


def shape_job(session: Session, job: Job) -> JobOut:
    return JobOut.of(job, session.scalar(select(Model.name).where(Model.id == job.model_id)) or "",
                     job_datasets(session, [job]))


def job_datasets(session: Session, jobs: list[Job]) -> dict[str, dict[str, object]]:
    """Whether each dataset the jobs' requests name still exists (or when it was deleted), by id."""
    states = dataset_states(session, [job.request.get(name) for job in jobs for name in DATA_FIELDS])
    return {i: {"id": i, "exists": s.exists, "deleted_at": s.deleted_at, "deleted_by": s.deleted_by}
            for i, s in states.items()}


def queue_job(session: Session, celery: Celery, job: Job, response: Response) -> JobOut:
    """Commit the submitted job, send it to the broker (a broker that is down fails the job: 503), and
    answer with it and its Location."""
    session.commit()
    try:
        enqueue_job(celery, QueuedJob(job.id, job.queue))
    except Unavailable as error:
        fail_job(job=job, error_type="broker", message=error.detail)
        session.commit()
        raise
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return shape_job(session, job)
