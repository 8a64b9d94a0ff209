"""The blobs of deleted datasets, deleted for good: at once, from the store and from its trash.

The collector (app/blobs/collect.py) is slow on purpose, a blob going only after two runs an hour or more
apart; a deleted dataset's blob cannot wait for that, and need not: its row is gone, and a
`dataset_deletions` row names the blob. A purge deletes each such blob unless a row still names it (a
dataset of the same parsed content, uploaded as another file; then it goes with the last of them).

The race it must not lose is an upload of the same content: the upload writes the blob, then commits
its row. A purge therefore locks the pending deletion rows and reads every reference in the same
transaction (SQLite: one writer at a time; PostgreSQL: the row locks), and an upload that finds a
deletion of its blob checks, inside its own transaction and after taking the same locks, that the blob
is still there, writing it again if a purge took it (app/datasets/service.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.blobs.collect import blobs_named
from app.db.tables import DatasetDeletion, utcnow
from app.store import BlobStore


@dataclass
class Purge:
    """What a purge did: the blobs deleted, and the deleted datasets whose blob another row still names."""

    purged: list[str] = field(default_factory=list)
    shared: list[str] = field(default_factory=list)  # dataset ids


def purge_deleted_blobs(session: Session, store: BlobStore) -> Purge:
    """Delete the blob of every deleted dataset that no row names any more (in place and in the trash), in a
    transaction of its own on `session` (which must have none open)."""
    result = Purge()
    with session.begin():
        pending = list(session.scalars(select(DatasetDeletion).where(DatasetDeletion.blob_purged_at.is_(None))
                                       .order_by(DatasetDeletion.id).with_for_update(skip_locked=True)))
        if not pending:
            return result
        named = blobs_named(session)
        gone = {deletion.blob for deletion in pending if deletion.blob not in named}
        trashed = [entry for entry in store.trash() if entry.name in gone]
        for blob in sorted(gone):
            store.delete(blob)
            result.purged.append(blob)
        for entry in trashed:
            store.purge(entry)
        now = utcnow()
        for deletion in pending:
            if deletion.blob in gone:
                deletion.blob_purged_at = now
            else:
                result.shared.append(deletion.dataset_id)
    return result


def lock_deletions_of(session: Session, blob: str) -> bool:
    """Take the locks a purge takes on the deletions of `blob`; whether there are any (then an upload
    naming the blob must make sure it is still stored before it commits)."""
    return bool(session.scalars(select(DatasetDeletion.id).where(DatasetDeletion.blob == blob)
                                .with_for_update()).all())
