"""What a job needs from the process running it, passed in so that jobs run without Celery in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from sqlalchemy.orm import Session, sessionmaker

from app.jobs.kinds import JobKinds
from app.settings import Settings
from app.store import BlobStore


def _never() -> bool:
    return False


@dataclass
class JobContext:
    sessions: sessionmaker[Session]
    store: BlobStore
    settings: Settings
    # What each kind of job runs (workers/kinds.py puts it together: app.jobs knows no job body).
    kinds: JobKinds
    # True once the worker has been asked to stop: the job then stops and goes back to the queue.
    shutting_down: Callable[[], bool] = _never
    # Exceptions that mean the job ran out of time (Celery's soft time limit, raised inside the job).
    timeouts: tuple[type[BaseException], ...] = field(default_factory=tuple)
    # Where the job's tensors live while it runs; what it stores is always on the CPU.
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
