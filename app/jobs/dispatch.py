"""Hand a job to the workers: a Celery message that carries the job's id, on the job's queue.

Two queues, `cpu` and `gpu`: a job goes to the queue its request named, else its model's. Workers
choose the queues they take from (`lifelong worker --queues gpu` on a GPU host), so the routing is
the broker's and no worker ever asks the database for work.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from celery import Celery

from app.errors import Unavailable

RUN_JOB = "lifelong.run_job"
QUEUES = ("cpu", "gpu")
Queue = Literal["cpu", "gpu"]


class QueuedJob(NamedTuple):
    """What a message needs: the job's id and the queue it goes to."""

    id: str
    queue: str


def send_job(celery: Celery, job: QueuedJob) -> None:
    celery.send_task(RUN_JOB, args=[job.id], queue=job.queue)


def enqueue_job(celery: Celery, job: QueuedJob) -> None:
    """Send a job the API just created; a broker that does not answer is a 503 for the client."""
    try:
        send_job(celery, job)
    except Exception as error:  # noqa: BLE001 - any broker failure means the same to the client
        raise Unavailable(f"the job broker did not take the job: {error}") from error
