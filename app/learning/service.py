"""Accepting a request to learn a task or to refresh importance: check everything, then queue a job.

Every check that can be made before training is made here, so that a request that would fail is
refused at once with a reason (and writes nothing) rather than queued to fail later. What is
queued is a job row holding the normalised request with dataset ids (inline data is stored as a
dataset first): the worker re-reads everything from ids.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.aliases.service import resolve_version
from app.architectures import registry
from app.architectures.spec import ArchitectureSpec
from app.datasets.inputs import check_model_takes
from app.datasets.schemas import DataRef
from app.datasets.service import PreparedData, prepare_data, save_data
from app.db.lookups import get_model, get_version
from app.db.tables import Job, Model, Version
from app.errors import Conflict, Invalid, NotFound
from app.jobs.service import create_job
from app.learning.job_requests import ImportanceJobRequest, TrainJobRequest
from app.learning.schemas import ImportanceRequest, TaskRequest
from app.limits import (
    UnpackLimits,
    check_active_jobs,
    check_class_count,
    check_inline_rows,
    check_job_samples,
    check_network_parameters,
)
from app.models.lambda_selection import LambdaSelection
from app.settings import Settings
from app.store import BlobStore


def submit_task(*, session: Session, store: BlobStore, model_name: str, request: TaskRequest,
                settings: Settings) -> Job:
    model = get_model(session, model_name)
    check_active_jobs(session, model, settings.max_active_jobs_per_model)
    base = _base(session, model, request)
    if request.task in _task_names(base):
        raise Conflict(f"version {base.number} of model {model.name!r} already has a task {request.task!r}")
    check_inline_rows(_inline_rows(request.train), settings.max_inline_rows, "train")
    check_inline_rows(_inline_rows(request.eval) if request.eval else None, settings.max_inline_rows, "eval")
    limits = UnpackLimits.of(settings)
    train = prepare_data(session=session, ref=request.train, purpose="train", limits=limits)
    check_job_samples(request.epochs, train.n, settings.max_job_samples)
    evaluation = (prepare_data(session=session, ref=request.eval, purpose="eval", limits=limits)
                  if request.eval is not None else None)
    classes = train.classes
    for data in (train, evaluation):
        if data is not None:
            check_model_takes(model.architecture, data, labels=True, num_classes=request.num_classes, classes=classes)
    num_classes = _num_classes(request, train, evaluation, settings.max_classes)
    trunk, feature_dim = registry.trunk_size(model.architecture)
    check_network_parameters(trunk=trunk, feature_dim=feature_dim, heads=[int(t["num_classes"]) for t in base.tasks],
                             num_classes=num_classes, max_parameters=settings.max_model_parameters)
    check_trainable(model.architecture, request.trainable)
    normalised = request.model_dump(by_alias=True,
                                    exclude={"train", "eval", "base_version", "base_alias", "queue",
                                             "lambda_selection", "new_task_tolerance"})
    normalised |= {
        "num_classes": num_classes,
        "classes": classes,
        "seed": model.seed if request.seed is None else request.seed,
        **_lambda_selection(request, LambdaSelection.of(model.lambda_selection)),
        "train_dataset": save_data(session=session, store=store, prepared=train),
        "eval_dataset": (save_data(session=session, store=store, prepared=evaluation)
                         if evaluation is not None else None),
    }
    TrainJobRequest.model_validate(normalised)  # as the worker will read it at claim: a mismatch is ours, found now
    return create_job(session=session, kind="train", model=model, task=request.task, base_version=base.number,
                      request=normalised, queue=request.queue)


def submit_importance(*, session: Session, store: BlobStore, model_name: str, request: ImportanceRequest,
                      settings: Settings) -> Job:
    model = get_model(session, model_name)
    check_active_jobs(session, model, settings.max_active_jobs_per_model)
    check_inline_rows(_inline_rows(request.data), settings.max_inline_rows, "data")
    base = _base(session, model, request)
    names = _task_names(base)
    if not names:
        raise Invalid(f"version {base.number} has learned no task yet, and Ω is measured on a task's head")
    task = request.task or names[-1]
    if task not in names:
        raise NotFound(f"version {base.number} of model {model.name!r} has no task {task!r} (it has {names})")
    _check_same_measure(base, task, request.mode)
    data = prepare_data(session=session, ref=request.data, purpose="data", limits=UnpackLimits.of(settings))
    check_model_takes(model.architecture, data, labels=False)
    normalised = request.model_dump(exclude={"data", "base_version", "base_alias", "task", "queue"})
    normalised |= {"task": task, "dataset": save_data(session=session, store=store, prepared=data)}
    ImportanceJobRequest.model_validate(normalised)  # as the worker will read it at claim
    return create_job(session=session, kind="importance", model=model, task=task, base_version=base.number,
                      request=normalised, queue=request.queue)


def _num_classes(request: TaskRequest, train: PreparedData, evaluation: PreparedData | None, max_classes: int) -> int:
    """The task's class count: its class names, or `num_classes`, or one more than the largest label; within
    LIFELONG_MAX_CLASSES (a label of 2⁶³−1 would otherwise ask the worker for that many head rows)."""
    classes = train.classes
    if classes:
        num_classes = len(classes)
        check_class_count(num_classes, max_classes, "train: the labels name as many class names")
        if request.num_classes is not None and request.num_classes != num_classes:
            raise Invalid(f"num_classes is {request.num_classes}, but the train labels name {num_classes} classes")
    elif request.num_classes is not None:
        num_classes = request.num_classes
        check_class_count(num_classes, max_classes, "num_classes")
    else:
        top = max(train.max_label or 0, (evaluation.max_label or 0) if evaluation is not None else 0)
        check_class_count(top + 1, max_classes, f"labels: the largest is {top:,}")
        num_classes = max(2, top + 1)
    if num_classes < 2:
        raise Invalid(f"train: a task needs at least 2 classes, the labels name only {classes}")
    return num_classes


def _lambda_selection(request: TaskRequest, model_default: LambdaSelection) -> dict[str, object]:
    """How "auto" chooses: the request's rule and tolerance, else the model's (a job queued without them chose
    by the mean rule, so the stored request always names its rule)."""
    if request.lambda_ != "auto":
        return {}
    rule = request.lambda_selection or model_default.rule
    if rule == "mean" and request.new_task_tolerance is not None:
        raise Invalid("new_task_tolerance belongs to lambda_selection 'constrained', and this model's λ selection "
                      "is 'mean': send lambda_selection 'constrained' with it, or leave it out")
    tolerance = request.new_task_tolerance if request.new_task_tolerance is not None else \
        model_default.new_task_tolerance
    return {"lambda_selection": rule, "new_task_tolerance": tolerance}


def _base(session: Session, model: Model, request: TaskRequest | ImportanceRequest) -> Version:
    """The version a request starts from: its base_version, or the version its base_alias names, or production
    (at request time; a job whose base is no longer production by the time it finishes is not promoted)."""
    return get_version(session, model, resolve_version(session=session, model=model, version=request.base_version,
                                                       alias=request.base_alias, version_field="base_version",
                                                       alias_field="base_alias"))


def check_trainable(architecture: ArchitectureSpec, trainable: object) -> None:
    """422 for a `trainable` the architecture cannot honour (more blocks than it has)."""
    if trainable is None:
        return
    spec = trainable.model_dump() if hasattr(trainable, "model_dump") else trainable
    try:
        registry.validate_architecture({**architecture, "trainable": spec})
    except ValueError as error:
        raise Invalid(f"trainable: {error}") from error


def _check_same_measure(base: Version, task: str, mode: str) -> None:
    """422 for adding MAS samples to an estimate of another unit (EWC's Fisher, SI's path): a refresh
    measures with MAS, so it may only replace such an estimate (MAS.md §4)."""
    part = next((p for p in base.importance_parts if p["task"] == task), None)
    measure = part.get("measure") if part else None
    if mode == "accumulate" and measure not in (None, "mas"):
        raise Invalid(f"task {task!r}'s importance at version {base.number} is measured as {measure!r}; a refresh "
                      "measures MAS importance and cannot add to it: send mode 'replace'")


def _inline_rows(ref: DataRef) -> list | None:
    return ref.inputs if ref.inputs is not None else ref.texts


def _task_names(version: Version) -> list[str]:
    return [t["name"] for t in version.tasks]
