"""The sweeper thread of a worker's main process: every `sweep_interval_s`, jobs with a stale heartbeat
are re-queued and sent again, or failed when out of attempts (`app.jobs.sweeper`); datasets past their
retention are deleted (`app.datasets.retention`) and the blobs of deleted datasets purged
(`app.blobs.purge`), the latter under the blob collector's lock, skipped for a round while a
`lifelong blobs gc` holds it.

It runs in the main process, which does no training, so a pool process killed mid-job does not take
the sweeper with it; with several workers each sweeps, which is harmless (one transaction each, and a
job is claimed from its row).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.blobs.collect import CollectorBusy, exclusive_collection
from app.blobs.purge import Purge, purge_deleted_blobs
from app.datasets.retention import Retention, delete_expired
from app.jobs.dispatch import QueuedJob
from app.jobs.sweeper import sweep_stale_jobs
from app.settings import Settings
from app.store import BlobStore, open_blob_store

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


def sweep_datasets(sessions: sessionmaker[Session], settings: Settings, store: BlobStore) -> tuple[Retention, Purge]:
    """Delete the datasets past their retention, then purge the blobs of deleted datasets; one log line each."""
    retention = delete_expired(sessions, retention_days=settings.dataset_retention_days)
    for expired in retention.deleted:
        due = (f"retain_until {expired.retain_until.isoformat()}" if expired.retain_until is not None
               else f"uploaded {expired.created_at.isoformat()}, over {settings.dataset_retention_days:g} days ago")
        log.info("dataset %s deleted by retention (%s)", expired.id, due)
    for dataset_id, jobs in retention.needed.items():
        log.info("dataset %s is past its retention but kept while job(s) %s need it", dataset_id, ", ".join(jobs))
    engine = sessions.kw["bind"]
    try:
        with exclusive_collection(settings, engine), sessions() as session:
            purge = purge_deleted_blobs(session, store)
    except CollectorBusy:
        return retention, Purge()
    for blob in purge.purged:
        log.info("blob %s of a deleted dataset purged", blob)
    return retention, purge


def start_sweeper(
    sessions: sessionmaker[Session], settings: Settings, send: Callable[[QueuedJob], None]
) -> threading.Event:
    """Start sweeping in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    store = open_blob_store(settings)

    def run() -> None:
        while not stop.wait(settings.sweep_interval_s):
            try:
                sweep_once(sessions, settings, send)
            except Exception:  # noqa: BLE001 - a database or broker hiccup: try again next round
                log.warning("sweeping stale jobs failed", exc_info=True)
            try:
                sweep_datasets(sessions, settings, store)
            except Exception:  # noqa: BLE001 - a database or store hiccup: try again next round
                log.warning("sweeping datasets failed", exc_info=True)

    threading.Thread(target=run, name="lifelong-sweeper", daemon=True).start()
    return stop
