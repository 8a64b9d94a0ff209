"""A job as the code that runs it sees it: a frozen copy of its row, read when the job was claimed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.db.tables import Job


@dataclass(frozen=True)
class JobSpec:
    id: str
    kind: str
    model_id: int
    task: str | None
    base_version: int
    request: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> JobSpec:
        return cls(job.id, job.kind, job.model_id, job.task, job.base_version, dict(job.request))

