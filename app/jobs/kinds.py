"""What each kind of job is: the typed request its row holds, the body that runs it, and its planned work.

The runner (app/jobs/runner.py) knows the lifecycle of a job and nothing of what a job does; the map
from a job's kind to its parts is put together where the parts meet (workers/kinds.py) and handed to
the runner in its JobContext, so that `app.jobs` imports no domain that runs as a job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.db.tables import Job
from app.jobs.spec import JobSpec
from app.jobs.watch import JobWatch

if TYPE_CHECKING:
    from app.jobs.context import JobContext

Request = TypeVar("Request", bound=BaseModel)


@dataclass(frozen=True)
class PlannedWork:
    """How much a job has to do, in its unit ("steps", "samples"): progress 0 of it is written at claim."""

    total: int
    unit: str


@dataclass(frozen=True)
class JobResult:
    """What a job made, as the runner records it in the job's row when it marks it succeeded."""

    version: int  # the version made (or, for a drift job, tested)
    promotion: dict[str, Any] | None = None  # what the model's promotion policy made of it (app/aliases/promotion.py)
    details: dict[str, Any] | None = None  # the row's result_details (JSON): a λ search, a drift verdict


# A job body's last step: writes what the job made (a version, a report) in the session it is given and
# says what that was. The runner calls it in the transaction that marks the job succeeded, after checking
# that the job was not cancelled, so the version and the job's end commit together or not at all.
RecordResult = Callable[[Session], JobResult]


@dataclass(frozen=True)
class JobKind(Generic[Request]):
    # The job's stored request, read back typed at claim: a row that does not fit fails as `invalid`.
    request: type[Request]
    # Runs the claimed job up to what it writes; it reads no job table and writes no job state.
    body: Callable[[JobContext, JobSpec, Request, JobWatch], RecordResult]
    # The job's whole work, read in the claim's transaction; None when it cannot be known (its data is gone).
    planned: Callable[[Session, Job, Request], PlannedWork | None]


JobKinds = Mapping[str, JobKind]
