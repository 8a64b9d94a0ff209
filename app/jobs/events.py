"""Who hears that a job finished: listeners the composition root adds, called in the job's transaction.

A job's end is reported (webhooks' `job.finished`) by whatever the process wires in: app/main.py and
workers/tasks.py add the webhook outbox writer, so that `app.jobs` publishes without importing the
webhook package. A listener runs with the row in its final state, in the transaction that put it
there: what it writes commits or rolls back with the change itself.
"""

from __future__ import annotations

from collections.abc import Callable

from app.db.tables import Job

JobListener = Callable[[Job], None]

_finished: list[JobListener] = []


def on_job_finished(listener: JobListener) -> None:
    """Call `listener` with every job put in a final state; adding one twice adds it once (no twin events)."""
    if listener not in _finished:
        _finished.append(listener)


def job_finished(job: Job) -> None:
    for listener in _finished:
        listener(job)
