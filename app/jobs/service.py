"""The life of a job row: created by the API, claimed and reported on by a worker, cancelled by a client.

States: queued → running → succeeded | failed | cancelled (queued → cancelled directly too). The
worker claims a job before running it and counts the attempt in the row, so a job whose message
is delivered again after its worker died runs again, but only `max_attempts` times in all.
Cancellation is a flag in the row that the running job reads between steps.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.job_states import ACTIVE, FINISHED
from app.db.tables import Job, Model, utcnow
from app.errors import Conflict, NotFound
from app.jobs.events import job_finished


def create_job(*, session: Session, kind: str, model: Model, task: str | None, base_version: int,
               request: dict[str, Any], queue: str | None = None) -> Job:
    """A queued job, on the named queue or else its model's."""
    job = Job(id=uuid4().hex, kind=kind, model_id=model.id, state="queued", task=task, queue=queue or model.queue,
              base_version=base_version, request=request, attempts=0, cancel_requested=False)
    session.add(job)
    session.flush()
    return job


def get_job(*, session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def list_jobs(*, session: Session, model: Model | None, state: str | None, limit: int,
              within: Collection[int] | None = None) -> list[Job]:
    """The newest `limit` jobs, of `model` (or every model; of the models whose ids are `within`, if given)."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if within is not None:
        query = query.where(Job.model_id.in_(within))
    if model is not None:
        query = query.where(Job.model_id == model.id)
    if state is not None:
        query = query.where(Job.state == state)
    return list(session.scalars(query))


def cancel_job(*, session: Session, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one is flagged and stops at its next step.
    The row is locked, so a worker claiming the job at this moment sees either the flag or a
    cancelled job, and never has its claim overwritten."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    if job.state in FINISHED:
        raise Conflict(f"job {job_id} has already {job.state}")
    if job.state == "queued":
        job.state, job.finished_at = "cancelled", utcnow()
        job_finished(job)
    job.cancel_requested = True
    return job


@dataclass(frozen=True)
class Claim:
    job: Job | None
    reason: str  # why there is nothing to run, when job is None


def claim_job(*, session: Session, job_id: str, max_attempts: int, stale_after_s: float,
              worker: str | None = None) -> Claim:
    """Mark the job running and count the attempt, or say why it must not run (idempotent delivery).

    The row is locked while it is read and claimed (SELECT … FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE serialises writers anyway), so when two workers get a message for one job (the
    sweepers of two workers re-sent it, or the broker redelivered it) one claims it and the other
    finds it running with a fresh heartbeat and leaves it.
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        return Claim(None, "the job no longer exists")
    if job.state in FINISHED:
        return Claim(None, f"the job has already {job.state}")
    if _alive_elsewhere(job, stale_after_s, worker):
        return Claim(None, "running elsewhere")
    if job.cancel_requested:
        job.state, job.finished_at = "cancelled", utcnow()
        job_finished(job)
        return Claim(None, "the job was cancelled")
    if job.attempts >= max_attempts:
        fail_job(job=job, error_type="worker_lost",
                 message=f"the job's worker was lost {job.attempts} times; giving up")
        return Claim(None, "too many attempts")
    job.state, job.attempts = "running", job.attempts + 1
    job.started_at = job.started_at or utcnow()
    job.heartbeat_at = utcnow()
    return Claim(job, "")


def _alive_elsewhere(job: Job, stale_after_s: float, worker: str | None = None) -> bool:
    """A job running in a process that still beats: running it again would only waste a worker.
    Once its beat is stale, the job is claimed again (its worker is gone). A job that this same worker
    ran (same node name, so same host) in a process that no longer exists is claimed at once: its pool
    process was killed and Celery delivered the job again (WorkerLostError), no need to wait for the beat."""
    if job.state != "running" or job.heartbeat_at is None:
        return False
    same_worker = worker is not None and job.worker == worker and job.worker_pid is not None
    if same_worker and not _process_alive(job.worker_pid):
        return False
    return utcnow() - job.heartbeat_at < timedelta(seconds=stale_after_s)


def _process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (a zombie, killed but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True  # no /proc (macOS): the signal said it exists
    return state != "Z"


def record_progress(*, session: Session, job_id: str, done: int, total: int, unit: str, loss: float | None,
                    detail: dict[str, int] | None = None) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.state == "running":
        job.progress_done, job.progress_total, job.progress_unit, job.progress_loss = done, total, unit, loss
        job.progress_detail = detail


def is_cancel_requested(*, session: Session, job_id: str) -> bool:
    flag = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return flag is None or bool(flag)  # a deleted job counts as cancelled


def succeed_job(*, job: Job, version: int, promotion: dict[str, Any] | None = None) -> None:
    """Succeeded with its version, and what the model's promotion policy made of it (app/aliases/promotion.py)."""
    job.state, job.result_version, job.finished_at = "succeeded", version, utcnow()
    job.promotion = promotion
    job.error_type = job.error_message = None
    job_finished(job)


def fail_job(*, job: Job, error_type: str, message: str) -> None:
    job.state, job.error_type, job.error_message, job.finished_at = "failed", error_type, message[:2000], utcnow()
    job_finished(job)


def cancel_running_job(job: Job) -> None:
    job.state, job.finished_at = "cancelled", utcnow()
    job_finished(job)


def requeue_job(*, job: Job, count_attempt: bool = False) -> None:
    """Back to the queue, to be sent again, with no progress. A worker that stopped the job for a
    shutdown does not count that attempt; the sweeper and recovery after a crash do (its checkpoint is
    kept either way: the next run resumes from it)."""
    job.state = "queued"
    if not count_attempt:
        job.attempts = max(job.attempts - 1, 0)
    job.progress_done = job.progress_total = job.progress_loss = job.progress_unit = None


def active_job_count(*, session: Session, model_id: int) -> int:
    """Jobs of the model that may still run (queued or running)."""
    return session.scalar(select(func.count()).where(Job.model_id == model_id, Job.state.in_(ACTIVE))) or 0
