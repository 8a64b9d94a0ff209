"""A model "m" (MLP 4-8) with task "t" learned by a real train job, for tests of what reads versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.models.service import create_model
from app.settings import Settings
from app.store import BlobStore, LocalBlobStore
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS


def train_tiny_model(sessions: sessionmaker[Session], store: BlobStore, settings: Settings, rows: int) -> np.ndarray:
    """Create "m", learn "t" on `rows` random rows in one epoch (version 1), and return the rows."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 4)).astype(np.float32), rng.integers(0, 2, rows)
    with sessions() as session:
        create_model(session=session, store=store, name="m",
                     architecture={"kind": "mlp", "input_shape": [4], "hidden": [8]}, seed=0)
        session.commit()
        dataset = upload_dataset(session=session, store=store, data=npz_bytes(x=x, y=y), filename="t.npz",
                                 max_bytes=1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": "t", "train": {"dataset": dataset.id}, "epochs": 1})
        job_id = submit_task(session=session, store=store, model_name="m", request=request,
                             settings=settings).id
        session.commit()
    context = JobContext(sessions=sessions, store=store, settings=settings, kinds=JOB_KINDS)
    assert run_job(context, job_id) == "succeeded"
    return x


@dataclass(frozen=True)
class TinyService:
    """A migrated SQLite file and a local blob store under a test's folder, with "m" trained in them."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: LocalBlobStore
    x: np.ndarray  # the rows "t" was learned on


def tiny_service(tmp_path: Path, rows: int = 40) -> TinyService:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    store = LocalBlobStore(tmp_path / "var" / "blobs")
    return TinyService(settings, engine, sessions, store, train_tiny_model(sessions, store, settings, rows=rows))
