"""The sweeper on a real SQLite database, without processes: which running jobs count as lost (stale
heartbeat, or none since an old start), re-queued while attempts remain, failed as `worker_lost` after."""

from __future__ import annotations

from datetime import timedelta

from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.db.tables import Job, Model, utcnow
from app.jobs.sweeper import sweep_stale_jobs
from app.settings import Settings


def test_sweep_requeues_or_fails_only_stale_running_jobs(tmp_path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    sessions = make_session_factory(make_engine(settings))
    old, fresh = utcnow() - timedelta(minutes=10), utcnow()
    rows = {
        "stale": dict(state="running", attempts=1, heartbeat_at=old, started_at=old),
        "no-beat-old-start": dict(state="running", attempts=1, heartbeat_at=None, started_at=old),
        "out-of-attempts": dict(state="running", attempts=3, heartbeat_at=old, started_at=old),
        "alive": dict(state="running", attempts=1, heartbeat_at=fresh, started_at=old),
        "queued": dict(state="queued", attempts=0, heartbeat_at=None, started_at=None),
        "done": dict(state="succeeded", attempts=1, heartbeat_at=old, started_at=old),
    }
    with sessions.begin() as session:
        model = Model(name="m", architecture={}, seed=0, head=0)
        session.add(model)
        session.flush()
        for job_id, fields in rows.items():
            session.add(Job(id=job_id, kind="train", model_id=model.id, task="t", base_version=0, request={},
                            cancel_requested=False, progress_done=5, **fields))
    requeued = sweep_stale_jobs(sessions, stale_after_s=60, max_attempts=3)
    assert sorted(requeued) == [("no-beat-old-start", "cpu"), ("stale", "cpu")]
    with sessions() as session:
        states = {job.id: (job.state, job.error_type, job.progress_done) for job in session.query(Job)}
    assert states["stale"] == ("queued", None, None)
    assert states["out-of-attempts"][:2] == ("failed", "worker_lost")
    assert states["alive"][0] == "running" and states["queued"][0] == "queued" and states["done"][0] == "succeeded"
    assert sweep_stale_jobs(sessions, stale_after_s=60, max_attempts=3) == []  # queued jobs are not running
