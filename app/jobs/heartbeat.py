"""A running job's pulse: a thread that stamps `jobs.heartbeat_at` every few seconds while the job runs.

Progress alone is no pulse (estimating Ω or evaluating reports none for a while), so a thread
beside the job writes the time; when the process dies (SIGKILL, OOM, a lost machine) the stamp
goes stale and the sweeper (`app.jobs.sweeper`) takes the job back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import Job, utcnow

log = logging.getLogger(__name__)


def beat(sessions: sessionmaker[Session], job_id: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id, Job.state == "running").values(heartbeat_at=utcnow()))


@contextmanager
def heartbeat(sessions: sessionmaker[Session], job_id: str, interval_s: float) -> Iterator[None]:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval_s):
            try:
                beat(sessions, job_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the job itself must go on
                log.warning("job %s: heartbeat not written", job_id, exc_info=True)

    thread = threading.Thread(target=run, name=f"heartbeat-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s + 5)
