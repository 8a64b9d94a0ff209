"""The sweeper thread of a worker's main process: every `sweep_interval_s`, jobs with a stale heartbeat
are re-queued and sent again, or failed when out of attempts (`app.jobs.sweeper`).

It runs in the main process, which does no training, so a pool process killed mid-job does not take
the sweeper with it; with several workers each sweeps, which is harmless (one transaction each, and a
job is claimed from its row).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.jobs.dispatch import QueuedJob
from app.jobs.sweeper import sweep_stale_jobs
from app.settings import Settings

log = logging.getLogger(__name__)


def sweep_once(
    sessions: sessionmaker[Session], settings: Settings, send: Callable[[QueuedJob], None]
) -> list[QueuedJob]:
    requeued = sweep_stale_jobs(sessions, stale_after_s=settings.job_stale_after_s,
                                max_attempts=settings.job_max_attempts)
    for job in requeued:
        log.warning("job %s lost its worker (stale heartbeat): queued again on %s", job.id, job.queue)
        send(job)
    return requeued


def start_sweeper(
    sessions: sessionmaker[Session], settings: Settings, send: Callable[[QueuedJob], None]
) -> threading.Event:
    """Start sweeping in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(settings.sweep_interval_s):
            try:
                sweep_once(sessions, settings, send)
            except Exception:  # noqa: BLE001 - a database or broker hiccup: try again next round
                log.warning("sweeping stale jobs failed", exc_info=True)

    threading.Thread(target=run, name="lifelong-sweeper", daemon=True).start()
    return stop
