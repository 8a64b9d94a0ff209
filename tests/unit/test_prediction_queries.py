"""Issue 13: the prediction path reads model and version once, and nothing while the network runs.

It used to roll its session back and then read `theta_blob` and the model's name again (lazy reloads
of expired rows): two more SELECTs, and a read transaction open through the forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import event

from app.datasets.service import upload_dataset
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.learning.schemas import TaskRequest
from app.learning.service import submit_task
from app.models.service import create_model
from app.predictions import service
from app.predictions.cache import NetworkCache
from app.settings import Settings
from app.store import LocalBlobStore
from tests.conftest import npz_bytes


def test_a_prediction_reads_once_and_holds_no_transaction_through_the_forward_pass(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    store = LocalBlobStore(tmp_path / "var" / "blobs")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 2, 40)
    with sessions() as session:
        create_model(session, store, "m", {"kind": "mlp", "input_shape": [4], "hidden": [8]}, seed=0)
        session.commit()
        dataset = upload_dataset(session, store, npz_bytes(x=x, y=y), "t.npz", 1 << 20)
        session.commit()
        request = TaskRequest.model_validate({"task": "t", "train": {"dataset": dataset.id}, "epochs": 1})
        job_id = submit_task(session, store, "m", request, settings).id
        session.commit()
    assert run_job(JobContext(sessions=sessions, store=store, settings=settings), job_id) == "succeeded"

    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    during_forward: list[int] = []
    forward = service.forward
    monkeypatch.setattr(service, "forward", lambda *a: during_forward.append(len(statements)) or forward(*a))
    cache = NetworkCache(1 << 30)
    for _ in range(2):  # a cold and a warm network cache
        statements.clear()
        with sessions() as session:
            answer = service.predict(session, store, cache, model_name="m", task="t", version=None, inputs=x[:2],
                                     probabilities=False)
            after = len(statements)
            assert answer.model == "m" and answer.version == 1 and len(answer.predictions) == 2
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) <= 3, selects  # the model, production's version; nothing read twice
        assert during_forward[-1] == after  # no statement after the rows were read: none during the forward pass
