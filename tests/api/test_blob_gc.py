"""Blob garbage collection: unreferenced blobs go to the trash, then away; nothing a row names is lost.

Real parts: a SQLite database migrated by Alembic, models created by the service code (so their
blobs are referenced by real rows), and each store: a local directory, an fsspec file:// URL and
moto's S3 server. The races with a job in flight are played out step by step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.blobs.collect import CollectorBusy, collect_blobs, exclusive_collection
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import Version
from app.models.service import create_model
from app.settings import Settings
from app.store import BlobStore, FsspecBlobStore, LocalBlobStore, open_blob_store
from scripts.cluster import Server, s3_settings, start_s3
from tests.conftest import service_env

NOW = timedelta(0)
ARCHITECTURE = {"kind": "mlp", "input_shape": [4], "hidden": [3]}


@pytest.fixture(scope="module")
def s3() -> Iterator[Server]:
    server = start_s3()
    yield server
    server.stop()


@pytest.fixture(params=["local", "file-url", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "file-url":
        return FsspecBlobStore((tmp_path / "shared").as_uri())
    settings = s3_settings(request.getfixturevalue("s3"), prefix=f"gc-{tmp_path.name}")
    return FsspecBlobStore(settings["LIFELONG_BLOB_URL"], json.loads(settings["LIFELONG_BLOB_OPTIONS"]))


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    return make_session_factory(make_engine(settings))


def _model(sessions: sessionmaker[Session], store: BlobStore, name: str) -> set[str]:
    """A model made by the service; the blobs its version 0 names (θ's manifest and its parts; it has no Ω)."""
    with sessions.begin() as session:
        model = create_model(session=session, store=store, name=name, architecture=ARCHITECTURE, seed=0)
        session.flush()
        version = session.query(Version).filter_by(model_id=model.id).one()
        assert version.importance_parts == []
        return {version.theta_blob, *version.theta_parts.values()}


def _name_in_a_version(sessions: sessionmaker[Session], blob: str) -> None:
    """A job committing a version whose θ is `blob` (its other blobs are those of version 0)."""
    with sessions.begin() as session:
        first = session.query(Version).first()
        session.add(Version(model_id=first.model_id, number=99, parent=0, kind="train", task="t", job_id="late",
                            theta_blob=blob, importance_parts=[], tasks=[], accuracy={}, importance={}))


def _names(store: BlobStore, *, trash: bool = False) -> set[str]:
    return {entry.name for entry in store.trash()} if trash else {blob.name for blob in store.listing()}


def _age_trash(store: LocalBlobStore, seconds: float) -> None:
    """Make every trash entry look `seconds` older (the time of a move is in the entry's name)."""
    for entry in store.trash():
        name, millis, tag = entry.entry.split(".")
        older = f"{name}.{int(millis) - int(seconds * 1000)}.{tag}"
        (store.root / "trash" / entry.entry).rename(store.root / "trash" / older)


def test_unreferenced_blobs_go_to_the_trash_then_away(sessions, store: BlobStore) -> None:
    kept = _model(sessions, store, "kept")
    orphan = store.put(b"left by a cancelled job")
    first = collect_blobs(sessions, store, min_age=NOW)
    assert (first.trashed, first.deleted, first.referenced) == (1, 0, len(_names(store)))
    assert _names(store) == kept and _names(store, trash=True) == {orphan}
    second = collect_blobs(sessions, store, min_age=NOW)
    assert (second.trashed, second.deleted) == (0, 1)
    assert _names(store, trash=True) == set() and _names(store) == kept
    for name in kept:  # what rows name is all there, readable
        assert store.get(name)


def test_a_dry_run_changes_nothing(sessions, store: BlobStore) -> None:
    _model(sessions, store, "dry")
    store.put(b"orphan")
    before = _names(store)
    report = collect_blobs(sessions, store, min_age=NOW, dry_run=True)
    assert report.trashed == 1 and _names(store) == before and _names(store, trash=True) == set()


def test_a_version_committed_after_its_blob_went_to_the_trash_still_reads_it(sessions, store: BlobStore) -> None:
    """The race: a job puts bytes that exist, unreferenced (a put then only refreshes them); the
    collector, which read the references a moment before, moves them to the trash; the job commits."""
    _model(sessions, store, "race")
    theta = store.put(b"theta of a job in flight")
    collect_blobs(sessions, store, min_age=NOW)
    assert theta in _names(store, trash=True)
    _name_in_a_version(sessions, theta)
    assert store.get(theta) == b"theta of a job in flight"  # brought back by the read
    assert theta in _names(store) and theta not in _names(store, trash=True)
    collect_blobs(sessions, store, min_age=NOW)
    collect_blobs(sessions, store, min_age=NOW)
    assert store.get(theta) == b"theta of a job in flight"


def test_a_trashed_blob_named_again_comes_back_at_the_next_collection(sessions, store: BlobStore) -> None:
    _model(sessions, store, "back")
    theta = store.put(b"named later")
    collect_blobs(sessions, store, min_age=NOW)
    _name_in_a_version(sessions, theta)
    report = collect_blobs(sessions, store, min_age=NOW)
    assert report.restored == 1 and theta in _names(store) and _names(store, trash=True) == set()


def test_a_blob_put_again_while_in_the_trash_survives_the_purge(sessions, store: BlobStore) -> None:
    _model(sessions, store, "again")
    blob = store.put(b"the same bytes twice")
    collect_blobs(sessions, store, min_age=NOW)
    assert store.put(b"the same bytes twice") == blob  # written afresh beside the trash copy
    _name_in_a_version(sessions, blob)
    collect_blobs(sessions, store, min_age=NOW)
    assert store.get(blob) == b"the same bytes twice" and _names(store, trash=True) == set()


def test_recent_blobs_are_kept_whatever_they_are(sessions, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "aged")
    _model(sessions, store, "aged")
    old, recent = store.put(b"old orphan"), store.put(b"recent orphan")
    two_days_ago = time.time() - 2 * 86400
    os.utime(store.path(old), (two_days_ago, two_days_ago))
    report = collect_blobs(sessions, store, min_age=timedelta(hours=24))
    assert (report.trashed, report.too_recent) == (1, 1) and recent in _names(store)
    # In the trash for less than a day: not deleted yet; once it has been there long enough, it is.
    assert collect_blobs(sessions, store, min_age=timedelta(hours=24)).deleted == 0
    _age_trash(store, 2 * 86400)
    assert collect_blobs(sessions, store, min_age=timedelta(hours=24)).deleted == 1
    assert old not in _names(store, trash=True)


def test_a_put_while_the_collector_moves_the_blob_writes_it_again(sessions, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The put finds the blob in place, and the collector moves it to the trash right then."""
    store = LocalBlobStore(tmp_path / "racing")
    blob = store.put(b"raced")
    real_utime = os.utime

    def collector_moves_it_first(path: object, *args: object) -> None:
        store.to_trash(blob)
        real_utime(path, *args)

    monkeypatch.setattr("app.store.os.utime", collector_moves_it_first)
    assert store.put(b"raced") == blob
    assert store.path(blob).read_bytes() == b"raced"


def test_a_blob_in_place_and_in_the_trash_loses_only_the_trash_copy(sessions, store: BlobStore) -> None:
    _model(sessions, store, "twice")
    blob = store.put(b"in both")
    collect_blobs(sessions, store, min_age=NOW)  # to the trash
    store.put(b"in both")  # and written again
    _name_in_a_version(sessions, blob)
    report = collect_blobs(sessions, store, min_age=NOW)
    assert report.restored == 1 and _names(store, trash=True) == set()
    assert store.get(blob) == b"in both"


def test_a_second_collector_is_refused_while_one_runs(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    engine = make_engine(settings)
    with exclusive_collection(settings, engine):
        with pytest.raises(CollectorBusy), exclusive_collection(settings, engine):
            pass
    with exclusive_collection(settings, engine):  # free again
        pass


def test_temporaries_of_crashed_writes_are_removed_once_old(sessions, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "crashed")
    (store.root / "ab").mkdir()
    left = store.root / "ab" / ".incoming-crashed"
    left.write_bytes(b"half a blob")
    assert collect_blobs(sessions, store, min_age=timedelta(hours=1)).temporaries_removed == 0
    two_hours_ago = time.time() - 7200
    os.utime(left, (two_hours_ago, two_hours_ago))
    assert collect_blobs(sessions, store, min_age=timedelta(hours=1)).temporaries_removed == 1
    assert not left.exists()


def test_the_command_collects_the_store_the_settings_name(tmp_path: Path) -> None:
    var = tmp_path / "var"
    settings = Settings(var_dir=var)
    upgrade_database(settings)
    store = open_blob_store(settings)
    assert isinstance(store, LocalBlobStore)
    sessions = make_session_factory(make_engine(settings))
    _model(sessions, store, "cli")
    orphan = store.put(b"orphan")

    def gc(*args: str, code: int = 0) -> dict:
        done = subprocess.run([sys.executable, "-m", "app.cli", "blobs", "gc", "--json", *args],
                              env=service_env(var), capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == code, done.stderr
        return json.loads(done.stdout) if code == 0 else {}

    gc("--min-age-hours", "0", code=2)  # less than an hour could race a job's put and commit
    assert gc()["too_recent"] == 1  # written just now: kept
    two_days_ago = time.time() - 2 * 86400
    os.utime(store.path(orphan), (two_days_ago, two_days_ago))
    assert gc("--dry-run")["trashed"] == 1 and orphan in _names(store)
    assert gc()["trashed"] == 1 and orphan in _names(store, trash=True)
    _age_trash(store, 2 * 86400)
    assert gc()["deleted"] == 1 and _names(store, trash=True) == set()


def test_a_checkpoint_is_kept_while_its_job_may_run_and_collected_after(sessions, store: BlobStore) -> None:
    """Issue 11 item 7: checkpoints of finished jobs go to `lifelong blobs gc`, those of queued and running
    jobs stay (a job run again resumes from it)."""
    from app.db.tables import Job

    _model(sessions, store, "ckpt")
    blobs = {state: store.put(f"checkpoint of a {state} job".encode()) for state in ("running", "queued", "succeeded",
                                                                                   "failed", "cancelled")}
    with sessions.begin() as session:
        model_id = session.query(Version).first().model_id
        for state, blob in blobs.items():
            session.add(Job(id=f"job-{state}", kind="train", model_id=model_id, state=state, task="t",
                            base_version=0, request={}, checkpoint_blob=blob, checkpoint_step=3))
    collect_blobs(sessions, store, min_age=timedelta(0))
    left = {blob.name for blob in store.listing()}
    assert {blobs["running"], blobs["queued"]} <= left
    assert not {blobs["succeeded"], blobs["failed"], blobs["cancelled"]} & left


def test_class_statistics_and_task_free_blobs_are_kept(sessions, tmp_path: Path) -> None:
    """The blobs a version's task-free columns name (each task's class statistics, the fitted predictors and
    the projection) are referenced: the collector keeps them, and trashes them once no row names them."""
    store = LocalBlobStore(tmp_path / "blobs")
    kept = _model(sessions, store, "kept")
    statistics, fitted, projection = (store.put(data) for data in (b"stats of a", b"fitted", b"projection"))
    with sessions.begin() as session:
        first = session.query(Version).first()
        session.add(Version(model_id=first.model_id, number=1, parent=0, kind="train", task="a", job_id="j",
                            theta_blob=first.theta_blob, theta_parts=first.theta_parts, importance_parts=[],
                            tasks=[{"name": "a", "num_classes": 2}], accuracy={}, importance={},
                            class_statistics=[{"task": "a", "blob": statistics, "n": 4, "at_trunk": True,
                                               "remeasured": False}],
                            task_free={"blob": fitted, "projection_blob": projection}))
    collected = collect_blobs(sessions, store, min_age=NOW)
    assert collected.trashed == 0 and _names(store) == kept | {statistics, fitted, projection}
    with sessions.begin() as session:
        session.query(Version).filter_by(number=1).delete()
    assert collect_blobs(sessions, store, min_age=NOW).trashed == 3
