"""Jobs that lost their worker: found by a stale heartbeat, then re-queued, or failed when out of attempts.

The database is the truth about a job, not the broker: a worker killed mid-job, or a broker that
lost the message, leaves a row `running` that no process is working on. Its heartbeat stops, and
whatever runs `sweep_stale_jobs` (every worker, at start and periodically, see workers/sweeper.py)
puts it back to `queued` for the caller to send again, or fails it as `worker_lost` once it has used
all its attempts, so that no job stays `running` forever. A job re-queued while its worker was only
slow is harmless: a version is keyed by its job id and written once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import Job, utcnow
from app.jobs.dispatch import QueuedJob
from app.jobs.service import fail_job, requeue_job


def sweep_stale_jobs(sessions: sessionmaker[Session], *, stale_after_s: float, max_attempts: int) -> list[QueuedJob]:
    """The jobs re-queued (to be sent again), after failing those out of attempts."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    requeued = []
    with sessions.begin() as session:
        last_sign = func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)
        # Locked, skipping rows another transaction holds (a worker claiming the job right now, or
        # the sweeper of another worker): each stale job is handled by one sweeper, once.
        stale = session.scalars(select(Job).where(Job.state == "running", last_sign <= cutoff)
                                .order_by(Job.created_at).with_for_update(skip_locked=True))
        for job in stale:
            if job.attempts >= max_attempts:
                fail_job(job=job, error_type="worker_lost",
                         message=f"the job's worker was lost {job.attempts} times (no heartbeat for"
                                 f" {stale_after_s:g} s); giving up")
                continue
            requeue_job(job=job, count_attempt=True)
            requeued.append(QueuedJob(job.id, job.queue))
    return requeued
