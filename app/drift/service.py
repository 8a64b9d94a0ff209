"""Drift reports: submit a drift job, test a batch against each task's reference, keep and list reports.

A task's reference is the trunk features of a reservoir of its training rows, kept in its class-statistics
blob by the train job that measured them (app/task_free/measure.py). A batch is tested against every task
of the version with the permutation MMD test (app/mas/drift.py), each at drift_alpha / the number of tasks,
so that the chance of any false alarm on a batch like the training data is at most drift_alpha. A report
is a row of `drift_reports`; a positive one also queues the `drift.detected` webhook event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import Tensor

from app.aliases.service import resolve_version
from app.datasets.inputs import check_model_takes
from app.datasets.service import prepare_data, save_data
from app.db.lookups import get_model, get_version
from app.db.tables import DriftReport, Job, Model, Version
from app.drift.schemas import DriftReportOut, DriftRequest
from app.errors import Conflict, Invalid
from app.jobs.service import create_job
from app.limits import UnpackLimits, check_active_jobs, check_inline_rows
from app.mas.drift import DEFAULT_ALPHA, corrected_level, mmd_test
from app.settings import Settings
from app.store import BlobStore
from app.task_free.stored import load_statistics
from app.webhooks.events import emit_drift_detected


def model_alpha(model: Model) -> float:
    return model.drift_alpha if model.drift_alpha is not None else DEFAULT_ALPHA


def submit_drift(*, session: Session, store: BlobStore, model_name: str, request: DriftRequest,
                 settings: Settings) -> Job:
    """A queued drift job on the version the request names (production by default); 409 when a task of it
    has no reference features."""
    model = get_model(session, model_name)
    check_active_jobs(session, model, settings.max_active_jobs_per_model)
    check_inline_rows(request.data.inputs if request.data.inputs is not None else request.data.texts,
                      settings.max_inline_rows, "data")
    version = get_version(session, model, resolve_version(session=session, model=model, version=request.version,
                                                          alias=request.alias))
    check_references(model=model.name, version=version)
    data = prepare_data(session=session, ref=request.data, purpose="data", limits=UnpackLimits.of(settings))
    check_model_takes(model.architecture, data, labels=False)
    if data.n < 2:
        raise Invalid(f"data: a drift test needs at least 2 rows in the batch ({data.n} given)")
    return create_job(session=session, kind="drift", model=model, task=None, base_version=version.number,
                      request={"dataset": save_data(session=session, store=store, prepared=data)}, queue=request.queue)


def check_references(*, model: str, version: Version) -> None:
    """409 unless every task of the version has reference features (2 rows or more)."""
    if not version.tasks:
        raise Conflict(f"version {version.number} of model {model!r} has learned no task: nothing to test against")
    missing = tasks_without_reference(version)
    if missing:
        raise Conflict(f"version {version.number} of model {model!r} has no reference features for task(s) "
                       f"{missing} (made before drift reports, or the task's training data is gone): learn a task "
                       "with this release, whose job measures them")


def tasks_without_reference(version: Version) -> list[str]:
    """The version's tasks that keep fewer than 2 reference rows (a two-sample test needs 2)."""
    entries = {entry["task"]: entry for entry in version.class_statistics or []}
    return [t["name"] for t in version.tasks if entries.get(t["name"], {}).get("reference_rows", 0) < 2]


def has_references(version: Version) -> bool:
    return bool(version.tasks) and not tasks_without_reference(version)


def test_batch(*, store: BlobStore, entries: list[dict[str, Any]], batch: Tensor, alpha: float,
               permutations: int, seed: int) -> dict[str, Any]:
    """Every task's test of `batch` (trunk features [n, d]) against its reference; the report's fields."""
    level = corrected_level(alpha, len(entries))
    tasks = {}
    for entry in entries:
        reference = load_statistics(store, entry["blob"]).reference
        assert reference is not None
        result = mmd_test(reference.float(), batch.float().cpu(), permutations=permutations, seed=seed)
        tasks[entry["task"]] = {"statistic": result.statistic, "p_value": result.p_value,
                                "drift": result.p_value <= level, "reference_rows": len(reference),
                                "at_this_trunk": entry["at_trunk"]}
    nearest = min(tasks, key=lambda task: tasks[task]["statistic"]) if tasks else None
    return {"tasks": tasks, "nearest_task": nearest, "alpha": alpha, "n": len(batch),
            "drift": any(t["drift"] for t in tasks.values())}


def record_report(*, session: Session, model_id: int, version: int, job_id: str, source: str,
                  report: dict[str, Any]) -> DriftReport:
    """The report kept (once per job: a job run again finds its own), with its event when it found drift."""
    existing = session.scalar(select(DriftReport).where(DriftReport.job_id == job_id))
    if existing is not None:
        return existing
    row = DriftReport(model_id=model_id, version=version, job_id=job_id, source=source, n=report["n"],
                      alpha=report["alpha"], drift=report["drift"], nearest_task=report["nearest_task"],
                      tasks=report["tasks"])
    session.add(row)
    session.flush()
    if row.drift:
        emit_drift_detected(session, row)
    return row


def list_reports(*, session: Session, model: Model, limit: int) -> list[DriftReportOut]:
    rows = session.scalars(select(DriftReport).where(DriftReport.model_id == model.id)
                           .order_by(DriftReport.created_at.desc(), DriftReport.id.desc()).limit(limit))
    return [report_out(model=model.name, row=row) for row in rows]


def report_out(*, model: str, row: DriftReport) -> DriftReportOut:
    return DriftReportOut(id=row.id, model=model, version=row.version, job=row.job_id, source=row.source, n=row.n,
                          alpha=row.alpha, drift=row.drift, nearest_task=row.nearest_task, tasks=row.tasks,
                          created_at=row.created_at)
