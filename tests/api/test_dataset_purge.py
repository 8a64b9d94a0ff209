"""Deleted datasets' blobs, retention and migration 0012, against a real SQLite file (foreign keys on, as the
service runs it) and a real local blob store, step by step where the order of events is the point.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.blobs.purge import purge_deleted_blobs
from app.datasets.deletion import delete_dataset
from app.datasets.retention import delete_expired
from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config, upgrade_database
from app.db.tables import Dataset, DatasetDeletion, Task, utcnow
from app.settings import Settings
from app.store import LocalBlobStore
from tests.conftest import npz_bytes

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_0006"


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    return make_session_factory(make_engine(settings))


def _upload(sessions: sessionmaker[Session], store: LocalBlobStore, data: bytes, **options) -> Dataset:
    with sessions() as session:
        dataset = upload_dataset(session=session, store=store, data=data, filename="data.npz", max_bytes=1 << 20,
                                 **options)
        session.commit()
        return dataset


def _compressed(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _delete(sessions: sessionmaker[Session], dataset_id: str, reason: str = "request") -> None:
    with sessions.begin() as session:
        delete_dataset(session, dataset_id, reason=reason)


def _purge(sessions: sessionmaker[Session], store: LocalBlobStore):
    with sessions() as session:
        return purge_deleted_blobs(session, store)


class PurgeAfterPut(LocalBlobStore):
    """A store in which, the first time, another process purges deleted datasets' blobs right after a put:
    the upload's row is not committed yet, so the purge finds nothing naming the blob and deletes it."""

    sessions: sessionmaker[Session] | None = None

    def put(self, data: bytes) -> str:
        name = super().put(data)
        if self.sessions is not None:
            sessions, self.sessions = self.sessions, None
            assert _purge(sessions, LocalBlobStore(self.root)).purged == [name]
        return name


def test_an_upload_racing_the_purge_of_its_blob_writes_it_again(sessions, tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    store = PurgeAfterPut(tmp_path / "blobs")
    first = _upload(sessions, store, npz_bytes(x=x))
    with sessions.begin() as session:  # deleted, its purge not run yet (say the store was down)
        session.add(DatasetDeletion(dataset_id=first.id, blob=first.blob, reason="request"))
        session.delete(session.get(Dataset, first.id))
    store.sessions = sessions
    again = _upload(sessions, store, npz_bytes(x=x))
    assert store.sessions is None  # the purge did run between the put and the commit
    assert again.blob == first.blob and store.exists(again.blob)
    assert _purge(sessions, store).purged == []  # named again: nothing left to purge


def test_the_purge_takes_the_trash_copy_and_keeps_a_shared_blob(sessions, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    x = np.ones((4, 2), dtype=np.float32)
    one, other = _upload(sessions, store, npz_bytes(x=x)), _upload(sessions, store, _compressed(x=x))
    assert one.id != other.id and one.blob == other.blob  # other bytes, the same parsed data
    _delete(sessions, one.id)
    result = _purge(sessions, store)
    assert (result.purged, result.shared) == ([], [one.id]) and store.exists(one.blob)
    _delete(sessions, other.id)
    store.to_trash(one.blob)  # a collection moved it meanwhile
    assert _purge(sessions, store).purged == [one.blob]
    assert not store.exists(one.blob) and not list(store.trash())
    with sessions() as session:
        assert all(d.blob_purged_at is not None for d in session.scalars(select(DatasetDeletion)))


def test_retention_counts_from_upload_and_retain_until_overrides_it_both_ways(sessions, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    rng = np.random.default_rng(0)
    plain = _upload(sessions, store, npz_bytes(x=rng.normal(size=(3, 2))))
    early = _upload(sessions, store, npz_bytes(x=rng.normal(size=(3, 2))), retain_until=utcnow() + timedelta(days=2))
    late = _upload(sessions, store, npz_bytes(x=rng.normal(size=(3, 2))), retain_until=utcnow() + timedelta(days=60))

    assert delete_expired(sessions, retention_days=None, now=utcnow() + timedelta(days=10)).deleted[0].id == early.id
    in_40_days = delete_expired(sessions, retention_days=30, now=utcnow() + timedelta(days=40))
    assert [e.id for e in in_40_days.deleted] == [plain.id]  # `late` keeps its own date
    assert [e.id for e in delete_expired(sessions, retention_days=30, now=utcnow() + timedelta(days=61)).deleted] \
        == [late.id]
    with sessions() as session:
        assert session.scalars(select(Dataset)).all() == []
        assert {d.reason for d in session.scalars(select(DatasetDeletion))} == {"retention"}


def test_migration_0012_keeps_every_task_and_lets_their_data_go(tmp_path: Path) -> None:
    var = tmp_path / "var"
    shutil.copytree(LEGACY, var)
    settings = Settings(var_dir=var)
    database = var / "lifelong.sqlite3"
    command.upgrade(alembic_config(settings), "0011")
    with sqlite3.connect(database) as connection:
        tasks_before = connection.execute("SELECT * FROM tasks ORDER BY id").fetchall()
    command.upgrade(alembic_config(settings), "head")
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT * FROM tasks ORDER BY id").fetchall() == tasks_before
        assert connection.execute("PRAGMA foreign_key_list(tasks)").fetchall() != []  # models' and versions' stay
        assert all(row[2] != "datasets" for row in connection.execute("PRAGMA foreign_key_list(tasks)"))
    assert tasks_before

    sessions = make_session_factory(make_engine(settings))  # foreign keys on, as the service runs
    with sessions() as session:
        learned_on = session.scalars(select(Task.train_dataset_id)).first()
    _delete(sessions, learned_on)
    with sessions() as session:
        assert session.get(Dataset, learned_on) is None
        assert session.scalars(select(Task).where(Task.train_dataset_id == learned_on)).first() is not None
