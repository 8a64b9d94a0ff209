"""Accepting a request to learn a task or to refresh importance: check everything, then queue a job.

Every check that can be made before training is made here, so that a request that would fail is
refused at once with a reason (and writes nothing) rather than queued to fail later. What is
queued is a job row holding the normalised request with dataset ids (inline data is stored as a
dataset first): the worker re-reads everything from ids.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.datasets.service import check_fits, prepare_data, save_data
from app.db.tables import Job, Version
from app.errors import Conflict, Invalid, NotFound
from app.jobs.service import create_job
from app.learning.schemas import ImportanceRequest, TaskRequest
from app.limits import check_active_jobs, check_inline_rows, check_job_samples
from app.models.service import get_model
from app.settings import Settings, get_settings
from app.store import BlobStore
from app.versions.service import get_version


def submit_task(session: Session, store: BlobStore, model_name: str, request: TaskRequest,
                settings: Settings | None = None) -> Job:
    settings = settings or get_settings()
    model = get_model(session, model_name)
    check_active_jobs(session, model, settings.max_active_jobs_per_model)
    base = get_version(session, model, model.head if request.base_version is None else request.base_version)
    if request.task in _task_names(base):
        raise Conflict(f"version {base.number} of model {model.name!r} already has a task {request.task!r}")
    input_shape = model.architecture["input_shape"]
    check_inline_rows(request.train.inputs, settings.max_inline_rows, "train")
    check_inline_rows(request.eval.inputs if request.eval else None, settings.max_inline_rows, "eval")
    train = prepare_data(session, request.train, "train")
    check_job_samples(request.epochs, train.n, settings.max_job_samples)
    check_fits(train, input_shape, labels=True, num_classes=request.num_classes)
    evaluation = prepare_data(session, request.eval, "eval") if request.eval is not None else None
    if evaluation is not None:
        check_fits(evaluation, input_shape, labels=True, num_classes=request.num_classes)
    num_classes = request.num_classes or max(
        2, 1 + max(train.max_label or 0, (evaluation.max_label or 0) if evaluation is not None else 0)
    )
    normalised = request.model_dump(by_alias=True, exclude={"train", "eval", "base_version", "queue"})
    normalised |= {
        "num_classes": num_classes,
        "seed": model.seed if request.seed is None else request.seed,
        "train_dataset": save_data(session, store, train),
        "eval_dataset": save_data(session, store, evaluation) if evaluation is not None else None,
    }
    return create_job(session, kind="train", model=model, task=request.task, base_version=base.number,
                      request=normalised, queue=request.queue)


def submit_importance(session: Session, store: BlobStore, model_name: str, request: ImportanceRequest,
                      settings: Settings | None = None) -> Job:
    settings = settings or get_settings()
    model = get_model(session, model_name)
    check_active_jobs(session, model, settings.max_active_jobs_per_model)
    check_inline_rows(request.data.inputs, settings.max_inline_rows, "data")
    base = get_version(session, model, model.head if request.base_version is None else request.base_version)
    names = _task_names(base)
    if not names:
        raise Invalid(f"version {base.number} has learned no task yet, and Ω is measured on a task's head")
    task = request.task or names[-1]
    if task not in names:
        raise NotFound(f"version {base.number} of model {model.name!r} has no task {task!r} (it has {names})")
    data = prepare_data(session, request.data, "data")
    check_fits(data, model.architecture["input_shape"], labels=False)
    normalised = request.model_dump(exclude={"data", "base_version", "task", "queue"})
    normalised |= {"task": task, "dataset": save_data(session, store, data)}
    return create_job(session, kind="importance", model=model, task=task, base_version=base.number,
                      request=normalised, queue=request.queue)


def _task_names(version: Version) -> list[str]:
    return [t["name"] for t in version.tasks]
