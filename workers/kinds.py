"""The kinds of job a worker runs, each its typed request, its body and its planned work.

Put together here, where the parts meet, and handed to the runner in its JobContext: `app.jobs` runs
any job's lifecycle without importing the domains (learning, drift) whose bodies it runs.
"""

from __future__ import annotations

from app.drift.job import drift_version
from app.drift.job import planned_samples as drift_samples
from app.drift.schemas import DriftJobRequest
from app.jobs.kinds import JobKind, JobKinds
from app.learning.job_requests import ImportanceJobRequest, TrainJobRequest
from app.learning.refresh import planned_samples as importance_samples
from app.learning.refresh import refresh_version
from app.learning.train import planned_work, train_version

JOB_KINDS: JobKinds = {
    "train": JobKind(TrainJobRequest, train_version, planned_work),
    "importance": JobKind(ImportanceJobRequest, refresh_version, importance_samples),
    "drift": JobKind(DriftJobRequest, drift_version, drift_samples),
}
