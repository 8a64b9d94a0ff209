"""Issue 13: a prediction finds its version in one SELECT, and the refusals stay as they were. The lookup
itself keeps nothing, so an alias moved by another process counts at its next call; the API keeps what it
found for LIFELONG_AUTH_CACHE_S seconds, forgetting it at once when the move is this process's commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from app.aliases.moves import Mover
from app.aliases.service import set_alias
from app.auth.scoping import EVERY_MODEL
from app.db.engine import make_engine, make_session_factory
from app.db.lookups import get_model
from app.db.migrate import upgrade_database
from app.db.tables import Job
from app.errors import Invalid, NotFound
from app.jobs.routes import get_job
from app.jobs.service import list_jobs
from app.predictions.lookup import find_recent_target, find_target
from app.settings import Settings
from app.store import LocalBlobStore
from app.timed_cache import TimedCache, clear_on_commit
from tests.unit.test_timed_cache import ManualClock
from tests.unit.tiny_model import tiny_service, train_tiny_model


def test_the_lookup_follows_aliases_moved_by_another_process_and_refuses_as_before(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    writer = make_session_factory(make_engine(settings))  # another process's engine: nothing shared
    reader_engine = make_engine(settings, reader=True)
    reader = make_session_factory(reader_engine)
    store = LocalBlobStore(tmp_path / "var" / "blobs")
    train_tiny_model(writer, store, settings, rows=20)

    def move(alias: str, version: int) -> None:
        with writer() as session:
            set_alias(session=session, model=get_model(session, "m"), alias=alias, version=version, by=Mover(),
                      reason=None)
            session.commit()

    def number(version: int | None = None, alias: str | None = None) -> int:
        with reader() as session:
            return find_target(session, "m", version=version, alias=alias).number

    statements: list[str] = []
    event.listen(reader_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert number() == number(alias="production") == 1
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2  # one each
    assert number(version=0) == 0
    move("candidate", 0)
    assert number(alias="candidate") == 0
    move("candidate", 1)
    assert number(alias="candidate") == 1
    move("production", 0)
    assert number() == 0
    with reader() as session:
        target = find_target(session, "m", version=1, alias=None)
    assert (target.model, target.architecture["kind"], [t["name"] for t in target.tasks]) == ("m", "mlp", ["t"])

    with reader() as session:
        for kwargs, refusal in [({"version": None, "alias": None, "model_name": "nope"}, "no model 'nope'"),
                                ({"version": None, "alias": "nope"}, "has no alias 'nope'"),
                                ({"version": 7, "alias": None}, "has no version 7")]:
            with pytest.raises(NotFound, match=refusal):
                find_target(session, kwargs.pop("model_name", "m"), **kwargs)
        with pytest.raises(Invalid, match="not both"):
            find_target(session, "m", version=1, alias="candidate")


def test_the_api_keeps_a_target_for_its_lifetime_and_forgets_it_when_it_moves_the_alias(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    other = make_session_factory(make_engine(settings))  # another process: a worker, the CLI, a second API
    own = make_session_factory(make_engine(settings))  # this API process's writes
    reader = make_session_factory(make_engine(settings, reader=True))
    train_tiny_model(other, LocalBlobStore(tmp_path / "var" / "blobs"), settings, rows=20)
    clock = ManualClock()  # time moves only when the test says
    briefly, long = TimedCache(1.0, clock=clock), TimedCache(60.0, clock=clock)
    clear_on_commit(own, briefly, long)

    def production(cache: TimedCache) -> int:
        with reader() as session:
            return find_recent_target(cache, session, "m", task="t", version=None, alias=None).number

    def move(sessions: sessionmaker[Session], version: int) -> None:
        with sessions() as session:
            set_alias(session=session, model=get_model(session, "m"), alias="production", version=version, by=Mover(),
                      reason=None)
            session.commit()

    assert production(briefly) == 1
    move(other, 0)
    clock.now += 0.99
    assert production(briefly) == 1  # kept: another process's move counts within the lifetime ...
    clock.now += 0.02
    assert production(briefly) == 0  # ... and once it is over
    move(other, 1)
    assert production(briefly) == 1  # version 0 has no task "t": a kept target without it is read again

    assert production(long) == 1
    move(own, 0)
    assert production(long) == 0  # this process's commit cleared the cache at once


def test_a_job_seen_succeeded_through_the_api_forgets_the_kept_targets(tmp_path: Path) -> None:
    """A client that waits for its job (GET /v1/jobs/{id}) and then predicts gets the version the job made,
    though a worker (another process) promoted it: the job's answer clears what predictions keep."""
    sessions = tiny_service(tmp_path, rows=20).sessions
    targets = TimedCache(60.0, clock=ManualClock())
    with sessions() as session:
        assert find_recent_target(targets, session, "m", task="t", version=None, alias=None).number == 1
        [job] = list_jobs(session=session, model=None, state=None, limit=10)
        running = Job(id="running", model_id=job.model_id, kind=job.kind, state="running", request=job.request,
                      base_version=job.base_version, queue=job.queue)
        session.add(running)
        session.commit()
        get_job("running", session, targets, EVERY_MODEL)
        assert targets.get(("m", None, None)) is not None  # a job still running changes nothing yet
        get_job(job.id, session, targets, EVERY_MODEL)
        assert targets.get(("m", None, None)) is None
