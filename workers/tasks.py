"""The worker's only task: run a job by id. Everything it does is `app.jobs.runner.run_job`.

Around that call sit the worker's concerns: one database engine per pool process (never shared
across fork), torch threads, a stop flag shared with the pool and raised when the worker is asked
to stop (a running job stops at its next step and goes back to the queue), the hard time limit
(the process is killed, so the job row is marked from the main process), with the embedded
broker, recovering jobs that a killed worker left behind, and in every worker a sweeper thread that
re-queues or fails jobs whose heartbeat went stale (workers/sweeper.py).
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

import torch
from celery.exceptions import Reject, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_process_init, worker_ready, worker_shutting_down

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.faults import worker_store
from app.jobs.celery_app import make_celery
from app.jobs.context import JobContext
from app.jobs.dispatch import RUN_JOB, send_job
from app.jobs.recovery import recover_jobs
from app.jobs.runner import WorkerStopping, fail_if_running, run_job
from app.mas.devices import pick_device
from app.settings import get_settings
from app.webhooks.delivery import start_delivery
from app.webhooks.events import publish_job_events
from workers.kinds import JOB_KINDS
from workers.sweeper import start_sweeper

log = logging.getLogger(__name__)

# The app the worker runs (`celery -A workers.tasks worker` works too); the API builds its own client.
celery = make_celery(get_settings())
publish_job_events()  # every job that ends in a worker (its body, the sweeper, a hard time limit) is told of

_context: JobContext | None = None
# Created at import, in the main process, before the pool forks: every pool process shares it. The
# main process sets it when asked to stop (Ctrl-C, SIGTERM), and a running job stops at its next step.
_shutdown = multiprocessing.get_context("fork").Event()


def _shutting_down() -> bool:
    return _shutdown.is_set()


def job_context() -> JobContext:
    global _context
    if _context is None:
        settings = get_settings()
        _context = JobContext(
            sessions=make_session_factory(make_engine(settings)), store=worker_store(settings),
            settings=settings, kinds=JOB_KINDS, shutting_down=_shutting_down, timeouts=(SoftTimeLimitExceeded,),
            device=pick_device(settings.worker_device),
        )
    return _context


@celery.task(name=RUN_JOB, bind=True)
def run_job_task(self: Any, job_id: str) -> str:
    if _shutting_down():  # delivered again while this worker stops: hand it straight back
        raise Reject(f"worker stopping; job {job_id} stays queued", requeue=True)
    try:
        return run_job(job_context(), job_id, worker=self.request.hostname)
    except WorkerStopping as stopping:
        raise Reject(str(stopping), requeue=True) from None


def _on_failure(exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
    """Runs in the main process when the hard time limit killed the job's process."""
    if isinstance(exc, TimeLimitExceeded) and args:
        fail_if_running(job_context(), args[0], "timeout", f"the job was killed after {exc} s (hard time limit)")


run_job_task.on_failure = _on_failure


@worker_shutting_down.connect
def _on_shutting_down(**_: Any) -> None:
    _shutdown.set()


@worker_process_init.connect
def _init_pool_process(**_: Any) -> None:
    global _context
    if _context is not None:
        _context.sessions.kw["bind"].dispose(close=False)  # connections opened before fork stay the parent's
        _context = None
    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    settings = get_settings()
    upgrade_database(settings)
    if settings.embedded_broker:
        # One embedded worker at a time: any job still "running" lost its worker (killed, or the
        # machine stopped) and a message may have gone with it, so send every unfinished job again.
        for job in recover_jobs(job_context().sessions):
            send_job(celery, job)
    # Its own engine: the pool's processes fork from this one and must not share its connections.
    start_sweeper(make_session_factory(make_engine(settings)), settings, lambda job: send_job(celery, job))
    start_delivery(settings)  # webhooks (app/webhooks/delivery.py), in this process: never in a job's
