"""Deleting a dataset: its row goes and a `dataset_deletions` row says when and why; its blob follows.

A dataset is refused deletion (409, naming the jobs) while a queued or running job still reads it: the
data its request names (train, eval, importance or drift data), and, for a train job, the training and
eval sets of the tasks along its base version's lineage (it evaluates them, holds their validation
slices back and measures their class statistics again). A job that has finished reads nothing more:
what it derived (θ, Ω, class statistics with their drift reference features, accuracy) lives in the
version's own blobs, so every version keeps working without the data.

The blob is not deleted here but by `purge_deleted_blobs` (app/blobs/purge.py), which the route runs
right after the deletion commits and the sweeper and `lifelong blobs gc` run again for whatever is left:
it is the one place that knows whether another dataset row still names the same blob.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.db.job_states import ACTIVE
from app.db.lookups import lineage
from app.db.tables import Dataset, DatasetDeletion, Job, Model, Task
from app.errors import Conflict, NotFound

DATA_FIELDS = ("train_dataset", "eval_dataset", "dataset")  # where a job's request names its data


@dataclass(frozen=True)
class DatasetState:
    """Whether a dataset a job or version names still exists, and if not, when and why it went."""

    id: str
    exists: bool
    deleted_at: datetime | None = None
    deleted_by: str | None = None  # request | retention


def delete_dataset(session: Session, dataset_id: str, *, reason: str) -> DatasetDeletion:
    """Delete the row (the caller commits) and record the deletion; 404 unknown, 409 while a job needs it."""
    dataset = session.get(Dataset, dataset_id, with_for_update=True)
    if dataset is None:
        raise missing_dataset(session, dataset_id)
    needing = jobs_needing(session, dataset_id)
    if needing:
        raise Conflict(f"dataset {dataset_id!r} is needed by queued or running job(s) {', '.join(needing)}: "
                       "delete it once they finish, or cancel them")
    deletion = DatasetDeletion(dataset_id=dataset_id, blob=dataset.blob, reason=reason)
    session.delete(dataset)
    session.add(deletion)
    session.flush()
    return deletion


def missing_dataset(session: Session, dataset_id: str, purpose: str | None = None) -> NotFound:
    """The 404 for a dataset id with no row: it says when the dataset was deleted, if it was."""
    prefix = f"{purpose}: " if purpose else ""
    deleted = _latest_deletions(session, [dataset_id]).get(dataset_id)
    if deleted is None:
        return NotFound(f"{prefix}no dataset {dataset_id!r}")
    return NotFound(f"{prefix}dataset {dataset_id!r} was deleted at {deleted.deleted_at.isoformat()}"
                    f" ({deleted.reason}); upload the data again to use it")


def jobs_needing(session: Session, dataset_id: str) -> list[str]:
    """The queued or running jobs that read the dataset, oldest first."""
    active = list(session.scalars(select(Job).where(Job.state.in_(ACTIVE)).order_by(Job.created_at)))
    if not active:
        return []
    learned_on = {version_id: model_id for version_id, model_id in session.execute(
        select(Task.version_id, Task.model_id).where(
            or_(Task.train_dataset_id == dataset_id, Task.eval_dataset_id == dataset_id)))}
    needing = []
    for job in active:
        if dataset_id in (job.request.get(name) for name in DATA_FIELDS):
            needing.append(job.id)
        elif job.kind == "train" and job.model_id in learned_on.values() and _lineage_learned(
                session, job, set(learned_on)):
            needing.append(job.id)
    return needing


def _lineage_learned(session: Session, job: Job, version_ids: set[int]) -> bool:
    """Whether the job's base version descends from (or is) one of the versions that learned on the data."""
    model = session.get(Model, job.model_id)
    if model is None:
        return False
    try:
        return any(v.id in version_ids for v in lineage(session, model, job.base_version))
    except KeyError:  # the base version is gone with a rolled-back job: it reads nothing
        return False


def dataset_states(session: Session, ids: Iterable[str | None]) -> dict[str, DatasetState]:
    """Each id's state: existing, or deleted (the latest deletion), or neither (never known: exists=False)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    live = set(session.scalars(select(Dataset.id).where(Dataset.id.in_(wanted))))
    deleted = _latest_deletions(session, wanted - live)
    return {i: DatasetState(i, True) if i in live else
            DatasetState(i, False, deleted[i].deleted_at, deleted[i].reason) if i in deleted else DatasetState(i, False)
            for i in sorted(wanted)}


def _latest_deletions(session: Session, ids: Iterable[str]) -> dict[str, DatasetDeletion]:
    latest: dict[str, DatasetDeletion] = {}
    rows = session.scalars(select(DatasetDeletion).where(DatasetDeletion.dataset_id.in_(list(ids)))
                           .order_by(DatasetDeletion.id))
    for row in rows:
        latest[row.dataset_id] = row
    return latest
