"""Run one job by id, from claim to a final state: the whole of what a worker task does.

Whatever happens, the job row ends in a state that says it: succeeded with its version, failed
with an error type (`conflict`, `non_finite_loss`, `timeout`, `invalid` (the stored request failed its
typed check), `storage`, `error` (anything else, a ValueError from the core included: a bug, not the
caller's fault, since requests are checked when they are accepted)), or cancelled;
only a worker shutdown puts it back to `queued` (and raises WorkerStopping so the message is
delivered again). Nothing here knows Celery: tests call `run_job` directly. Nor what a job does: the
body of each kind comes in the JobContext (`ctx.kinds`, put together in workers/kinds.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.db.tables import Job
from app.jobs.context import JobContext
from app.jobs.heartbeat import heartbeat
from app.jobs.kinds import JobKind, JobResult, RecordResult
from app.jobs.service import cancel_running_job, claim_job, fail_job, requeue_job, succeed_job
from app.jobs.spec import JobSpec
from app.jobs.watch import JobWatch
from app.mas.training import NonFiniteLoss, TrainingCancelled
from app.store import BlobNotFound
from app.versions.service import VersionConflict

log = logging.getLogger(__name__)


class WorkerStopping(Exception):
    """The worker is shutting down: the job was put back in the queue, to run again from the start."""


def run_job(ctx: JobContext, job_id: str, worker: str | None = None) -> str:
    """Claim and run the job, recording `worker` (the Celery node name) and the device in its row;
    returns the job's final state (or why it did not run)."""
    with ctx.sessions.begin() as session:
        claim = claim_job(session=session, job_id=job_id, max_attempts=ctx.settings.job_max_attempts,
                          stale_after_s=ctx.settings.job_stale_after_s, worker=worker)
        if claim.job is not None:
            claim.job.worker, claim.job.device, claim.job.worker_pid = worker, str(ctx.device), os.getpid()
            kind = ctx.kinds[claim.job.kind]
            try:  # the stored request, read back typed: a row that does not fit fails now, before any work
                request = kind.request.model_validate(claim.job.request)
            except ValidationError as error:
                fail_job(job=claim.job, error_type="invalid",
                         message=f"the job's stored request is not one this worker can run: {error}")
                return "failed"
            _starting_progress(session, claim.job, kind, request)
        spec = JobSpec.of(claim.job) if claim.job is not None else None
    if spec is None:
        log.info("job %s not run: %s", job_id, claim.reason)
        return claim.reason
    watch = JobWatch(ctx.sessions, job_id, progress_interval_s=ctx.settings.progress_interval_s,
                     cancel_poll_s=ctx.settings.cancel_poll_s, shutting_down=ctx.shutting_down)
    try:
        with heartbeat(ctx.sessions, job_id, ctx.settings.heartbeat_interval_s):
            result = _succeed(ctx, job_id, watch, kind.body(ctx, spec, request, watch))
    except TrainingCancelled as stop:
        if ctx.shutting_down():
            _finish(ctx, job_id, lambda job: requeue_job(job=job))
            raise WorkerStopping(f"job {job_id} goes back to the queue") from stop
        return _finish(ctx, job_id, cancel_running_job)
    except VersionConflict as error:
        return _fail(ctx, job_id, "conflict", str(error))
    except NonFiniteLoss as error:
        return _fail(ctx, job_id, "non_finite_loss", str(error))
    except ValidationError as error:  # only a typed check of the request says the request is invalid
        return _fail(ctx, job_id, "invalid", str(error))
    except BlobNotFound as error:
        return _fail(ctx, job_id, "missing_blob", str(error))
    except OSError as error:  # a full disk, a read-only or vanished blob directory
        log.exception("job %s: storage failed", job_id)
        return _fail(ctx, job_id, "storage", f"the job's results could not be stored: {error}")
    except Exception as error:
        if isinstance(error, ctx.timeouts):
            return _fail(ctx, job_id, "timeout", f"the job ran past {ctx.settings.job_soft_time_limit_s} s")
        log.exception("job %s failed", job_id)
        return _fail(ctx, job_id, "error", f"{type(error).__name__}: {error}")
    log.info("job %s succeeded: version %s", job_id, result.version)
    return "succeeded"


def _succeed(ctx: JobContext, job_id: str, watch: JobWatch, record: RecordResult) -> JobResult:
    """Write what the job made and mark it succeeded with it, in one transaction: a job cancelled until
    now writes nothing."""
    with ctx.sessions.begin() as session:
        if watch.cancelled_now(session):
            raise TrainingCancelled("cancelled before its result was written")
        result = record(session)
        job = session.get(Job, job_id)
        if result.details is not None:
            job.result_details = result.details
        succeed_job(job=job, version=result.version, promotion=result.promotion)
        return result


def _starting_progress(session: Session, job: Job, kind: JobKind, request: BaseModel) -> None:
    """Progress 0 of the job's whole work, written with the claim: a running job always shows how much
    it has to do, even when it stops (a time limit, a crash) before its first step."""
    planned = kind.planned(session, job, request)
    if planned is not None:
        job.progress_done, job.progress_total, job.progress_unit = 0, planned.total, planned.unit
        job.progress_loss = None


def _fail(ctx: JobContext, job_id: str, error_type: str, message: str) -> str:
    return _finish(ctx, job_id, lambda job: fail_job(job=job, error_type=error_type, message=message))


def _finish(ctx: JobContext, job_id: str, finish: Callable[[Job], None]) -> str:
    with ctx.sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "gone"
        if job.state == "running":
            finish(job)
        return job.state


def fail_if_running(ctx: JobContext, job_id: str, error_type: str, message: str) -> str:
    """Mark a job failed from outside it (its process was killed); a finished job is left as it is."""
    return _fail(ctx, job_id, error_type, message)
