"""HTTP routes of jobs: get one, list (newest first), cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.deps import ModelScopeDep, ReadScope, WriteScope
from app.auth.scoping import ModelScope, not_found
from app.db.job_states import JobState
from app.db.lookups import get_model
from app.db.tables import Job, Model
from app.deps import SessionDep, TargetCacheDep
from app.errors import NotFound
from app.jobs import service
from app.jobs.http import job_datasets, shape_job
from app.jobs.schemas import JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[ReadScope])

State = JobState


def _reachable_job(session: Session, job_id: str, reach: ModelScope) -> Job:
    """The job, or 404 as for a job that does not exist when the key does not reach its model."""
    job = service.get_job(session=session, job_id=job_id)
    if not reach.every_model:
        name = session.scalar(select(Model.name).where(Model.id == job.model_id))
        if name is None or not reach.reaches(name):
            raise NotFound(f"no job {job_id!r}")
    return job


@router.get("", response_model=list[JobOut])
def list_jobs(
    session: SessionDep,
    reach: ModelScopeDep,
    model: str | None = None,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    if model is not None and not reach.reaches(model):
        raise NotFound(not_found(model))
    owner = get_model(session, model) if model is not None else None
    names = dict(session.execute(select(Model.id, Model.name)).tuples().all())
    within = None if reach.every_model else [i for i, name in names.items() if reach.reaches(name)]
    jobs = service.list_jobs(session=session, model=owner, state=state, limit=limit, within=within)
    datasets = job_datasets(session, jobs)
    return [JobOut.of(job, names.get(job.model_id, ""), datasets) for job in jobs]


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, targets: TargetCacheDep, reach: ModelScopeDep) -> JobOut:
    job = _reachable_job(session, job_id, reach)
    if job.state == "succeeded":
        # A worker (another process) may just have promoted the job's version, which predictions would see
        # only when the targets they keep expire (LIFELONG_AUTH_CACHE_S). A client that saw its job succeed
        # here predicts next: forgetting them now makes that prediction read the version the job made.
        targets.clear()
    return shape_job(session, job)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             dependencies=[WriteScope])
def cancel_job(job_id: str, session: SessionDep, reach: ModelScopeDep) -> JobOut:
    _reachable_job(session, job_id, reach)
    job = service.cancel_job(session=session, job_id=job_id)
    session.commit()
    return shape_job(session, job)
