"""Jobs run in process: a SQLite file, a local blob store, a small MLP model and a train job queued on
random rows, set up the way the unit tests that call `run_job` directly all need them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import Model
from app.jobs.context import JobContext
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.models.service import create_model
from app.settings import Settings
from app.store import LocalBlobStore
from tests.conftest import npz_bytes
from workers.kinds import JOB_KINDS


def job_context(tmp_path: Path, settings: Settings | None = None, **options: Any) -> JobContext:
    """A migrated database under tmp_path/var and the context a worker would give a job (`options`: more
    JobContext fields, such as `timeouts`)."""
    settings = settings or Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    sessions: sessionmaker[Session] = make_session_factory(make_engine(settings))
    return JobContext(sessions=sessions, store=LocalBlobStore(settings.var_dir / "blobs"), settings=settings,
                      kinds=JOB_KINDS, **options)


def small_model(ctx: JobContext, name: str = "m", **options: Any) -> Model:
    """An MLP of 4 inputs and 8 hidden units (`options`: more create_model arguments, such as `promotion`)."""
    with ctx.sessions() as session:  # as the API's routes do: one session, committed at the end of each step
        model = create_model(session=session, store=ctx.store, name=name,
                             architecture={"kind": "mlp", "input_shape": [4], "hidden": [8]}, seed=0, **options)
        session.commit()
        return model


def queue_train_job(ctx: JobContext, *, rows: int = 40, evaluate_on_train: bool = False, **request: Any) -> str:
    """A train job of model "m" on `rows` random rows of two classes; `request` adds to (or replaces) the task
    request's fields; `evaluate_on_train` makes the same rows its eval set."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 4)).astype(np.float32), rng.integers(0, 2, rows)
    with ctx.sessions() as session:
        dataset = upload_dataset(session=session, store=ctx.store, data=npz_bytes(x=x, y=y), filename="train.npz",
                                 max_bytes=1 << 20)
        session.commit()
        body = {"task": "t", "train": {"dataset": dataset.id}, **request}
        if evaluate_on_train:
            body["eval"] = {"dataset": dataset.id}
        job_id = submit_task(session=session, store=ctx.store, model_name="m",
                             request=TaskRequest.model_validate(body), settings=ctx.settings).id
        session.commit()
    return job_id
