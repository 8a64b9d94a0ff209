"""The states of a job, named once: queued → running → succeeded | failed | cancelled."""

from __future__ import annotations

from typing import Literal, get_args

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATES: tuple[JobState, ...] = get_args(JobState)
ACTIVE: tuple[JobState, ...] = ("queued", "running")  # may still run: counted against limits, keep checkpoints
FINISHED: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")
