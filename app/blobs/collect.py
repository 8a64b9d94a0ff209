"""Garbage collection of blobs: the ones no row names any more go to the trash, and later away.

Blobs are never deleted as they lose their last reference (content addressing shares them between
versions and models, so a reference count would be one more thing to keep right); they are
collected instead. Left behind are the blobs of cancelled or conflicting jobs, of deleted models and
of datasets whose rows are gone.

A blob is written before the row that names it is committed, so deleting an unreferenced blob
outright could race a job: the job puts bytes that already exist (a put then only refreshes the
blob's time), the collector, having read the references a moment before, deletes the blob, and the
job commits a version that names it. So a collection runs in two steps:
1. trash entries older than `min_age` are deleted, unless a row names their blob by now (then it is
   put back in place first);
2. blobs no row names, last written more than `min_age` ago, move to the trash, each into an entry
   of its own. A row that names one after all still reads it: a read brings it back from the trash.
A blob goes for good only after two collections at least `min_age` apart found it unreferenced, so
`min_age` must be longer than any put-to-commit gap (seconds: a job writes its blobs just before its
version's transaction); the command refuses less than an hour. One collector runs at a time
(`exclusive_collection`): two would race each other's moves.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.job_states import ACTIVE
from app.db.tables import Dataset, Job, Version, utcnow
from app.settings import Settings
from app.store import BlobStore
from app.task_free.stored import blobs_of

COLLECTOR_LOCK_KEY = 0x626C_6F62_7367_63 # "blobsgc"


class CollectorBusy(RuntimeError):
    """Another collection of the same store is running."""


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
    temporaries_removed: int = 0


@contextmanager
def exclusive_collection(settings: Settings, engine: Engine) -> Iterator[None]:
    """Hold the collector's lock for the block, or raise CollectorBusy at once.

    On PostgreSQL an advisory lock, which every host sharing the database sees; on SQLite (one
    host) a lock on a file beside the database.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": COLLECTOR_LOCK_KEY}):
                raise CollectorBusy("another `lifelong blobs gc` is running on this database")
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": COLLECTOR_LOCK_KEY})
        return
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.var_dir / "blob-gc.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as busy:
            raise CollectorBusy("another `lifelong blobs gc` is running on this directory") from busy
        yield


def referenced_blobs(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return blobs_named(session)


def blobs_named(session: Session) -> set[str]:
    """Every blob a row names, read in the caller's transaction."""
    names: set[str] = set()
    rows = select(Version.theta_blob, Version.theta_parts, Version.importance_parts, Version.class_statistics,
                  Version.task_free)
    for theta, theta_parts, importance_parts, class_statistics, task_free in session.execute(rows):
        names.update((theta, *(theta_parts or {}).values(), *(p["blob"] for p in importance_parts)))
        names.update(blobs_of(class_statistics, task_free))
    names.update(session.scalars(select(Dataset.blob)))
    # A checkpoint matters while its job may still run: a finished job's is collected.
    names.update(session.scalars(select(Job.checkpoint_blob).where(
        Job.checkpoint_blob.is_not(None), Job.state.in_(ACTIVE))))
    return names


def collect_blobs(sessions: sessionmaker[Session], store: BlobStore, *, min_age: timedelta,
                  dry_run: bool = False) -> Collection:
    """One collection; the caller holds `exclusive_collection`."""
    cutoff = utcnow() - min_age
    result = Collection()
    # Each step lists before it reads the references: a blob whose row was committed before the
    # listing is seen as referenced.
    entries = list(store.trash())
    referenced = referenced_blobs(sessions)
    for entry in entries:
        if entry.name in referenced:
            result.restored += 1
            if not dry_run and store.restore(entry.name):
                store.purge(entry)  # the blob is in place again; this copy is not needed
        elif entry.trashed_at <= cutoff:
            result.deleted += 1
            result.deleted_bytes += entry.size
            if not dry_run:
                store.purge(entry)

    if not dry_run:
        result.temporaries_removed = store.remove_stale_temporaries(cutoff)
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
