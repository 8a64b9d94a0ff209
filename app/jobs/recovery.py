"""Jobs a worker left behind: with the embedded broker, the one worker that starts takes them over.

A worker killed mid-job (SIGKILL, a power cut) leaves its job `running` and, on the file broker,
its message gone with it. When the embedded worker starts, no other worker can be running that job,
so it is put back to `queued` (the attempt it had still counts, so a job that kills its worker
cannot loop forever) and every queued job is sent again: a duplicate message is harmless, since a
job is claimed from its row and a finished job is never run twice.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import Job
from app.jobs.dispatch import QueuedJob
from app.jobs.service import requeue_job


def recover_jobs(sessions: sessionmaker[Session]) -> list[QueuedJob]:
    """The jobs to send again, oldest first, after resetting abandoned running jobs."""
    with sessions.begin() as session:
        for job in session.scalars(select(Job).where(Job.state == "running")):
            requeue_job(job=job, count_attempt=True)
        queued = session.execute(select(Job.id, Job.queue).where(Job.state == "queued").order_by(Job.created_at))
        return [QueuedJob(*row) for row in queued]
