"""The shadow's request side (app/shadow/runner.py): sampling at the fraction, a bounded queue whose overflow
is dropped and counted (never waited on), only production's requests, and the counts added under the
version the shadow names (a replay of a version no longer shadowed counts nothing)."""

from __future__ import annotations

from pathlib import Path

import torch
from sqlalchemy import select

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import Shadow, utcnow
from app.models.service import create_model
from app.predictions.cache import NetworkCache
from app.predictions.schemas import PredictOut
from app.settings import Settings
from app.shadow.runner import ShadowRunner
from app.shadow.service import Counts, add_counts
from app.store import LocalBlobStore


def _runner(tmp_path: Path, fraction: float, queue_size: int):
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    sessions = make_session_factory(make_engine(settings))
    store = LocalBlobStore(tmp_path / "blobs")
    with sessions.begin() as session:
        model = create_model(session=session, store=store, name="m",
                             architecture={"kind": "mlp", "input_shape": [2], "hidden": [3]}, seed=0)
        session.flush()
        session.add(Shadow(model_id=model.id, alias="candidate", version=0, fraction=fraction, compared=0, agreed=0,
                           dropped=0, tasks={}, disagreements={}, started_at=utcnow()))
    runner = ShadowRunner(sessions, store, NetworkCache(1 << 20), queue_size=queue_size)
    runner.refresh()  # the replay thread is not started: nothing takes from the queue
    return runner, sessions


def _answer(rows: int) -> PredictOut:
    return PredictOut(model="m", version=0, task="t", predictions=[0] * rows)


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    runner, sessions = _runner(tmp_path, fraction=1.0, queue_size=2)
    x = torch.zeros(3, 2)
    for _ in range(5):
        runner.offer(_answer(3), x, asked_version=None, asked_alias=None)
    runner.offer(_answer(3), x, asked_version=0, asked_alias=None)  # by number: not production's traffic
    runner.offer(_answer(3), x, asked_version=None, asked_alias="candidate")
    assert runner._queue.qsize() == 2
    runner.stop()  # flushes what was counted
    with sessions() as session:
        assert session.scalar(select(Shadow.dropped)) == 9  # 3 requests of 3 rows did not fit


def test_sampling_follows_the_fraction(tmp_path: Path) -> None:
    runner, _ = _runner(tmp_path, fraction=0.25, queue_size=100_000)
    for _ in range(4000):
        runner.offer(_answer(1), torch.zeros(1, 2), asked_version=None, asked_alias="production")
    assert 800 < runner._queue.qsize() < 1200  # Binomial(4000, 0.25): mean 1000, sd 27


def test_counts_go_to_the_version_shadowed(tmp_path: Path) -> None:
    _, sessions = _runner(tmp_path, fraction=1.0, queue_size=1)
    counts = Counts()
    counts.add_rows(["a", "b", "b"], ["a", "c", "b"], ["t", "t", "u"])
    with sessions.begin() as session:
        model_id = session.scalar(select(Shadow.model_id))
        assert add_counts(session=session, model_id=model_id, version=0, counts=counts)
        assert not add_counts(session=session, model_id=model_id, version=7, counts=counts)
    with sessions() as session:
        row = session.scalar(select(Shadow))
        assert (row.compared, row.agreed) == (3, 2)
        assert row.tasks == {"t": {"compared": 2, "agreed": 1}, "u": {"compared": 1, "agreed": 1}}
        assert row.disagreements == {"b\tc": 1}
