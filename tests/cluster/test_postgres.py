"""PostgreSQL: the migrations run on it (up and down), and a model's head moves one job at a time.

Workers on different hosts can finish jobs of the same model at the same moment; each records its
version in its own transaction. These tests run those transactions from threads, each with its own
connection, against a real PostgreSQL server (scripts/cluster.py starts one from the Debian package).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.blobs.collect import CollectorBusy, exclusive_collection
from app.db.engine import make_engine
from app.db.lookups import lock_model
from app.db.migrate import alembic_config
from app.db.tables import Job, Model, Version, utcnow
from app.jobs.service import claim_job
from app.jobs.sweeper import sweep_stale_jobs
from app.settings import Settings
from app.versions.service import VersionConflict, record_version
from scripts.cluster import Server
from tests.conftest import service_env

BLOB = "0" * 64


def _new_model(sessions: sessionmaker[Session], name: str) -> int:
    with sessions.begin() as session:
        # auto: jobs whose base is no longer production conflict (guarded or manual would keep them)
        model = Model(name=name, architecture={}, seed=0, head=0,
                      promotion={"policy": "auto", "max_forgetting": 0.05, "min_accuracy": None})
        session.add(model)
        session.flush()
        session.add(_version(model.id, 0, None, None))
        return model.id


def _version(model_id: int, number: int, parent: int | None, job_id: str | None) -> Version:
    return Version(model_id=model_id, number=number, parent=parent, kind="init", task=None, job_id=job_id,
                   theta_blob=BLOB, importance_parts=[], tasks=[], accuracy={}, importance={})


def _record(sessions: sessionmaker[Session], model_id: int, job_id: str, base: int) -> int:
    with sessions.begin() as session:
        return record_version(session=session, model_id=model_id, job_id=job_id, base=base, kind="train", task="t",
                              theta_blob=BLOB, importance_parts=[], tasks=[], accuracy={},
                              importance={}).version.number


def test_migrations_go_down_and_up_again(postgres: Server, sessions: sessionmaker[Session]) -> None:
    config = alembic_config(Settings(database_url=postgres.url))
    command.downgrade(config, "0002")
    command.upgrade(config, "head")
    with sessions() as session:
        assert session.scalar(select(Model.queue).limit(1)) in (None, "cpu")


def test_jobs_finishing_at_once_on_one_base_create_one_version(sessions: sessionmaker[Session]) -> None:
    model_id = _new_model(sessions, "race")
    start = threading.Barrier(8)

    def finish(index: int) -> int | str:
        start.wait()
        try:
            return _record(sessions, model_id, f"race-{index}", base=0)
        except VersionConflict:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(finish, range(8)))
    assert sorted(outcomes, key=str) == [1, *["conflict"] * 7]
    with sessions() as session:
        assert session.get(Model, model_id).head == 1
        numbers = session.scalars(select(Version.number).where(Version.model_id == model_id)).all()
        assert sorted(numbers) == [0, 1]


def test_one_job_finishing_twice_at_once_gets_its_one_version_both_times(sessions: sessionmaker[Session]) -> None:
    """A job delivered again while its first run was only slow: both runs must end with the same
    version, neither with a conflict; the row lock makes the second wait and then find it."""
    model_id = _new_model(sessions, "twice")
    start = threading.Barrier(4)

    def finish(_: int) -> int | str:
        start.wait()
        try:
            return _record(sessions, model_id, "twice-job", base=0)
        except VersionConflict:
            return "conflict"

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(finish, range(4))) == [1, 1, 1, 1]


def test_a_chain_of_jobs_each_on_the_last_head_numbers_versions_in_order(sessions: sessionmaker[Session]) -> None:
    model_id = _new_model(sessions, "chain")
    for expected in range(1, 6):
        assert _record(sessions, model_id, f"chain-{expected}", base=expected - 1) == expected


def test_a_locked_model_makes_the_next_job_wait_then_see_the_new_head(sessions: sessionmaker[Session]) -> None:
    model_id = _new_model(sessions, "locked")
    outcome: list[int | str] = []
    with sessions.begin() as holder:
        lock_model(holder, model_id)
        holder.get(Model, model_id).head = 0  # the holder will write version 1 and move the head there
        holder.add(_version(model_id, 1, 0, "holder"))
        holder.flush()

        def second() -> None:
            try:
                outcome.append(_record(sessions, model_id, "waiter", base=0))
            except VersionConflict:
                outcome.append("conflict")

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and outcome == []  # it waits on the row lock
        holder.get(Model, model_id).head = 1
    waiter.join(timeout=30)
    assert outcome == ["conflict"]  # it then saw the head the holder committed, and created nothing


def _at_once(count: int, work: Callable[[int], object]) -> list[object]:
    """`work(i)` in `count` threads released together, each with its own connection."""
    start = threading.Barrier(count)

    def run(index: int) -> object:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _new_job(sessions: sessionmaker[Session], job_id: str, **fields: object) -> None:
    model_id = _new_model(sessions, f"model-of-{job_id}")
    with sessions.begin() as session:
        session.add(Job(id=job_id, kind="train", model_id=model_id, task="t", base_version=0, request={},
                        cancel_requested=False, **{"state": "queued", "attempts": 0, **fields}))


def test_one_job_delivered_to_several_workers_at_once_is_claimed_once(sessions: sessionmaker[Session]) -> None:
    _new_job(sessions, "claimed")

    def claim(_: int) -> bool:
        with sessions.begin() as session:
            return claim_job(session=session, job_id="claimed", max_attempts=3, stale_after_s=120).job is not None

    assert sorted(_at_once(6, claim)) == [False] * 5 + [True]
    with sessions() as session:
        assert session.get(Job, "claimed").attempts == 1


def test_the_sweepers_of_several_workers_requeue_a_stale_job_once(sessions: sessionmaker[Session]) -> None:
    old = utcnow() - timedelta(hours=1)
    _new_job(sessions, "stale", state="running", attempts=1, started_at=old, heartbeat_at=old)
    requeued = _at_once(4, lambda _: sweep_stale_jobs(sessions, stale_after_s=60, max_attempts=3))
    assert sum(len(found) for found in requeued) == 1, requeued


def test_workers_starting_at_once_on_a_new_database_migrate_it_once(postgres: Server, tmp_path: Path) -> None:
    """Separate processes (Alembic keeps global state, so not threads), as workers on several hosts."""
    server = postgres.url.rsplit("/", 1)[0]
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE fresh"))
    admin.dispose()
    env = service_env(tmp_path / "var", LIFELONG_DATABASE_URL=f"{server}/fresh")
    migrations = [subprocess.Popen([sys.executable, "-m", "app.cli", "migrate"], env=env, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    outputs = [process.communicate(timeout=120)[0].decode(errors="replace") for process in migrations]
    assert [process.returncode for process in migrations] == [0] * 4, outputs
    engine = make_engine(Settings(database_url=f"{server}/fresh"))
    with engine.connect() as connection:
        latest = ScriptDirectory.from_config(alembic_config(Settings())).get_current_head()
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [latest]
    engine.dispose()


def test_one_blob_collector_at_a_time_across_hosts(postgres: Server, tmp_path: Path) -> None:
    """Two hosts sharing the database: the advisory lock is the database's, not a file's."""
    first, second = (Settings(database_url=postgres.url, var_dir=tmp_path / host) for host in ("a", "b"))
    engines = [make_engine(first), make_engine(second)]
    with exclusive_collection(first, engines[0]):
        with pytest.raises(CollectorBusy), exclusive_collection(second, engines[1]):
            pass
    with exclusive_collection(second, engines[1]):
        pass
    for engine in engines:
        engine.dispose()
