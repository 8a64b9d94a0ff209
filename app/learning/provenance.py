"""How a version was made (`made_by`): the request, and where, when and how the job ran it.

Kept with the version, so that a version can be explained (and reproduced) long after its job row
has been pruned, and read by `GET …/versions/{v}` and the dashboard.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from app.db.tables import Job, utcnow


def lifelong_version() -> str:
    try:
        return version("lifelong")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def made_by(job: Job, *, precision: str | None, loss_per_epoch: list[float] | None = None,
            **details: Any) -> dict[str, Any]:
    """The job's full request (datasets by id) with the lifelong version, worker, device, precision,
    this run's wall time and, for training, the mean loss of each epoch."""
    started = job.started_at
    return {
        "job": job.id, "kind": job.kind, "request": dict(job.request), "lifelong": lifelong_version(),
        "worker": job.worker, "device": job.device, "precision": precision, "attempts": job.attempts,
        "started_at": started.isoformat() if started else None,
        "wall_s": round((utcnow() - started).total_seconds(), 3) if started else None,
        "loss_per_epoch": loss_per_epoch, **details,
    }
