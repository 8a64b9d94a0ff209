"""`record_version` with the promotion decision, in process over a SQLite file: a job delivered twice gets its
one version and its one decision back and moves no alias again; each policy moves the alias it should."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.aliases.moves import CANDIDATE, PRODUCTION, aliases_of
from app.aliases.promotion import PromotionPolicy
from app.db.tables import AliasMove, Job, Model, Version
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.versions.service import VersionConflict, record_version
from tests.unit.in_process import job_context, queue_train_job, small_model


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    return job_context(tmp_path)


def _model(ctx: JobContext, policy: str) -> None:
    small_model(ctx, promotion=PromotionPolicy(policy))


def _queued(ctx: JobContext, task: str, **options: object) -> str:
    return queue_train_job(ctx, evaluate_on_train=True, task=task, epochs=1, **{"lambda": 1.0, **options})


def _record_again(ctx: JobContext, job_id: str, base: int):  # noqa: ANN202
    with ctx.sessions.begin() as session:
        return record_version(session=session, model_id=1, job_id=job_id, base=base, kind="train", task="t",
                              theta_blob="0" * 64, importance_parts=[], tasks=[], accuracy={}, importance={})


@pytest.mark.parametrize(("policy", "moved"), [("guarded", PRODUCTION), ("manual", CANDIDATE), ("auto", PRODUCTION)])
def test_a_job_delivered_twice_gets_its_version_and_decision_back(context: JobContext, policy: str,
                                                                  moved: str) -> None:
    _model(context, policy)
    job_id = _queued(context, "t")
    assert run_job(context, job_id) == "succeeded"
    with context.sessions() as session:
        first = session.get(Job, job_id).promotion
        moves = session.scalar(select(func.count()).select_from(AliasMove))
        model = session.scalars(select(Model)).one()
        assert aliases_of(session=session, model=model)[moved] == 1
    assert first["alias"] == moved and first["policy"] == policy

    again = _record_again(context, job_id, base=0)
    assert (again.version.number, again.promotion) == (1, first)
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AliasMove)) == moves
        assert session.scalar(select(func.count()).select_from(Version)) == 2


def test_auto_conflicts_and_writes_nothing_when_production_moved(context: JobContext) -> None:
    _model(context, "auto")
    assert run_job(context, _queued(context, "t")) == "succeeded"
    with pytest.raises(VersionConflict, match="production moved from version 0 to 1"):
        _record_again(context, "another-job", base=0)
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Version)) == 2


def test_guarded_keeps_a_version_whose_base_is_not_production(context: JobContext) -> None:
    _model(context, "guarded")
    assert run_job(context, _queued(context, "t")) == "succeeded"
    kept = _record_again(context, "another-job", base=0)
    assert kept.version.number == 2 and kept.promotion["promoted"] is False
    with context.sessions() as session:
        assert aliases_of(session=session, model=session.scalars(select(Model)).one()) == {PRODUCTION: 1, CANDIDATE: 2}
