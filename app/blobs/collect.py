"""Garbage collection of blobs: the ones no row names any more go to the trash, and later away.

Blobs are never deleted as they lose their last reference (content addressing shares them between
versions and models, so a reference count would be one more thing to keep right); they are
collected instead. Left behind are the blobs of cancelled or conflicting jobs, of deleted models and
of datasets whose rows are gone.

A blob is written before the row that names it is committed, so deleting an unreferenced blob
outright could race a job: the job puts bytes that already exist (a put then only refreshes the
blob's time), the collector, having read the references a moment before, deletes the blob, and the
job commits a version that names it. So a collection runs in two steps, each safe on its own:
1. blobs in the trash for longer than `min_age` are deleted, unless a row names them by now (then
   they come back); a blob put again meanwhile was written afresh beside the trash copy;
2. blobs no row names, last written more than `min_age` ago, move to the trash. A row that names
   one after all still reads it: reading a blob that is in the trash brings it back.
So a blob goes for good only after two collections at least `min_age` apart found it unreferenced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import Dataset, Version, utcnow
from app.store import BlobStore


@dataclass
class Collection:
    """What a collection found and did (on a dry run: what it would do)."""

    blobs: int = 0
    referenced: int = 0
    too_recent: int = 0
    trashed: int = 0
    trashed_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    restored: int = 0


def referenced_blobs(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        names: set[str] = set()
        for row in session.execute(select(Version.theta_blob, Version.omega_frozen_blob, Version.omega_open_blob)):
            names.update(row)
        names.update(session.scalars(select(Dataset.blob)))
        return names


def collect_blobs(sessions: sessionmaker[Session], store: BlobStore, *, min_age: timedelta,
                  dry_run: bool = False) -> Collection:
    cutoff = utcnow() - min_age
    result = Collection()
    # Each step lists before it reads the references: a blob whose row was committed before the
    # listing is seen as referenced; one written after the listing is not touched by this step.
    trashed = list(store.listing(trash=True))
    referenced = referenced_blobs(sessions)
    for blob in trashed:
        if blob.name in referenced:
            result.restored += 1
            if not dry_run:
                store.restore(blob.name)
        elif blob.modified <= cutoff:
            result.deleted += 1
            result.deleted_bytes += blob.size
            if not dry_run:
                store.purge(blob.name)

    listed = list(store.listing())
    referenced = referenced_blobs(sessions)
    result.blobs = len(listed)
    for blob in listed:
        if blob.name in referenced:
            result.referenced += 1
        elif blob.modified > cutoff:
            result.too_recent += 1
        else:
            result.trashed += 1
            result.trashed_bytes += blob.size
            if not dry_run:
                store.to_trash(blob.name)
    return result
