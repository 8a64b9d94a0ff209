"""The states of a job, named once: queued → running → succeeded | failed | cancelled.

They live here, beside the `jobs` table whose `state` column holds them, rather than in app/jobs:
packages below the jobs machinery (datasets, which refuse to delete data an active job reads; blobs)
ask which states are still active, and importing them from app/jobs would tie those packages to it.
"""

from __future__ import annotations

from typing import Literal, get_args

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATES: tuple[JobState, ...] = get_args(JobState)
ACTIVE: tuple[JobState, ...] = ("queued", "running")  # may still run: counted against limits, keep checkpoints
FINISHED: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")
