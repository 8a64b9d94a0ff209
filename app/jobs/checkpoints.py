"""Checkpoints of a running train job, so that a job stopped or killed resumes where it was.

Every `checkpoint_interval_s` at most, the job's training snapshot (app/mas/learn.py's SearchSnapshot:
θ being trained, optimizer and method state, RNG, the step, a λ search's finished trials) is written to the
blob store and named in the job's row. A job that runs again (a worker stop, a crash, a SIGKILL of its
process) reads it back and continues from that step; on the CPU its version is then bit for bit the one
an uninterrupted run makes. The blob is serialised by torch.save and read with weights_only=True: only
tensors and plain containers, never pickled code. Checkpoints of finished jobs are left to
`lifelong blobs gc`, which keeps only those of queued and running jobs.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

import torch
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import Job
from app.mas.learn import SearchSnapshot
from app.store import BlobNotFound, BlobStore

log = logging.getLogger(__name__)


class JobCheckpoints:
    """The checkpoint hook of one job run: takes a snapshot when the interval has passed."""

    def __init__(self, sessions: sessionmaker[Session], store: BlobStore, job_id: str, interval_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.sessions, self.store, self.job_id, self.interval_s, self.clock = sessions, store, job_id, interval_s, clock
        self.last = clock()

    def __call__(self, make: Callable[[], SearchSnapshot]) -> None:
        if self.clock() - self.last < self.interval_s:
            return
        snapshot = make()
        buffer = io.BytesIO()
        torch.save(snapshot, buffer)
        blob = self.store.put(buffer.getvalue())
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id)
            if job is not None:
                job.checkpoint_blob, job.checkpoint_step = blob, step_of(snapshot)
        self.last = self.clock()

    def latest(self) -> SearchSnapshot | None:
        """The job's last checkpoint, or None (none yet, or its blob is gone: then the job starts over)."""
        with self.sessions() as session:
            job = session.get(Job, self.job_id)
            blob = job.checkpoint_blob if job is not None else None
        if blob is None:
            return None
        try:
            snapshot = torch.load(io.BytesIO(self.store.get(blob)), weights_only=True, map_location="cpu")
        except BlobNotFound:
            log.warning("job %s: its checkpoint %s is gone; it starts from step 0", self.job_id, blob)
            return None
        log.info("job %s resumes from its checkpoint at step %s", self.job_id, step_of(snapshot))
        return snapshot


def step_of(snapshot: SearchSnapshot | None) -> int | None:
    """The optimizer steps done, over all trials of a λ search (what the job's progress counts)."""
    run = snapshot.get("run") if snapshot is not None else None
    if run is None:
        return None
    return run["step"] + snapshot["trial"] * _steps_per_trial(snapshot)


def _steps_per_trial(snapshot: SearchSnapshot) -> int:
    kept = snapshot.get("kept") or ([snapshot["best"]] if snapshot.get("best") else [])
    return kept[0]["training"]["steps"] if kept else 0
