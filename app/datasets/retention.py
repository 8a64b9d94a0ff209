"""Retention: datasets past their time are deleted by the sweeper, as if a client had asked.

A dataset's time is its own `retain_until` when an upload gave one, else `created_at` plus
LIFELONG_DATASET_RETENTION_DAYS, else never. One past its time is deleted exactly as by
`DELETE /v1/datasets/{id}` (app/datasets/deletion.py), with the reason `retention`; one that a queued or
running job still needs is left for a later sweep, when the job has finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.deletion import delete_dataset, jobs_needing
from app.db.tables import Dataset, utcnow


@dataclass(frozen=True)
class Expired:
    """A dataset the sweeper deleted, and why it was due."""

    id: str
    created_at: datetime
    retain_until: datetime | None


@dataclass
class Retention:
    deleted: list[Expired] = field(default_factory=list)
    needed: dict[str, list[str]] = field(default_factory=dict)  # due, but kept for these jobs


def expired_ids(session: Session, *, retention_days: float | None, now: datetime) -> list[str]:
    """The datasets past their time, oldest first."""
    due = and_(Dataset.retain_until.is_not(None), Dataset.retain_until <= now)
    if retention_days is not None:
        due = or_(due, and_(Dataset.retain_until.is_(None),
                            Dataset.created_at <= now - timedelta(days=retention_days)))
    return list(session.scalars(select(Dataset.id).where(due).order_by(Dataset.created_at)))


def delete_expired(sessions: sessionmaker[Session], *, retention_days: float | None,
                   now: datetime | None = None) -> Retention:
    """Delete every dataset past its time that no active job needs, each in a transaction of its own."""
    now = now or utcnow()
    result = Retention()
    with sessions() as session:
        candidates = expired_ids(session, retention_days=retention_days, now=now)
    for dataset_id in candidates:
        with sessions.begin() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:  # deleted meanwhile, by a client or another worker's sweeper
                continue
            needing = jobs_needing(session, dataset_id)
            if needing:
                result.needed[dataset_id] = needing
                continue
            expired = Expired(dataset.id, dataset.created_at, dataset.retain_until)
            delete_dataset(session, dataset_id, reason="retention")
            result.deleted.append(expired)
    return result
