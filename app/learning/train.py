"""A train job: learn one task on the base version with the chosen method, measure Ω, evaluate, record.

This is the sequence of MAS.md §3–4, done by `learn_task`: the penalty anchors θ* = the base's θ with
Ω = the base's total importance (Σ_t S_t/n_t); after training, this task's own estimate is measured
on its training inputs (unless `importance.on` is "none") and added to the base's estimates, which are
carried over unchanged; then the new version is evaluated on the eval set of every task it knows,
which makes a row of the accuracy matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import Tensor

from app.architectures import get_architecture, trunk_split
from app.architectures.spec import ArchitectureSpec, stored_spec
from app.datasets.inputs import load_inputs, task_labels
from app.db.lookups import get_version, lineage
from app.db.tables import Dataset, Job, Model, Task, Version
from app.jobs.checkpoints import JobCheckpoints, step_of
from app.jobs.context import JobContext
from app.jobs.kinds import JobResult, PlannedWork, RecordResult
from app.jobs.spec import JobSpec
from app.jobs.watch import JobWatch
from app.learning.job_requests import TrainJobRequest
from app.learning.measured import log_fallback
from app.learning.provenance import made_by
from app.mas.accumulation import TaskImportance, total_importance
from app.mas.devices import to_cpu, to_device
from app.mas.evaluation import flip_rates, fraction_correct, predict
from app.mas.head_warmup import warmup_epochs
from app.mas.learn import ImportanceChoice, LearnedTask, MethodChoice, SearchSnapshot, importance_measure, learn_task
from app.mas.methods import METHODS
from app.mas.networks import MultiHeadNet, network_state
from app.mas.samples import LazySamples, rows_of
from app.mas.training import TrainConfig, precision_for
from app.mas.validation import DEFAULT_GRID, ValidationSet, split_validation
from app.models.networks import save_network, version_network
from app.task_free.measure import TaskFreeRecord, TaskSource, measure_and_fit, trunk_moved
from app.task_free.options import TaskFreeOptions
from app.versions.importance import importance_stats, load_total, with_task
from app.versions.service import TaskEntry, ValidationSlice, record_version
from app.versions.theta import StoredTheta


def train_version(ctx: JobContext, job: JobSpec, request: TrainJobRequest, watch: JobWatch) -> RecordResult:
    """MAS.md §3–4 for one task: read the base and the data, learn the task, evaluate, then hand the runner
    the step that records the version (it runs in the transaction that marks the job succeeded)."""
    base = _read_base(ctx, job, request)
    rows = _read_rows(ctx, job, request, base)
    theta_star = to_device(network_state(rows.net), ctx.device)  # the anchor, and the trunk the job started from
    checkpoints = JobCheckpoints(ctx.sessions, ctx.store, job.id, request.checkpoint_interval_s)
    resume = checkpoints.latest()
    learned = _learn(ctx, job, request, watch, rows, theta_star, resume, checkpoints)
    net, omega, parts = learned.net, rows.omega, base.version.importance_parts
    if learned.estimate is not None:
        log_fallback(learned.fallback, job.id)
        estimate = TaskImportance(to_cpu(learned.estimate.sums), learned.estimate.n)
        parts = with_task(ctx.store, parts, job.task, estimate, importance_measure(request.method))
        omega = total_importance([TaskImportance(omega, 1), estimate])
    after = {task: predict(net, task, inputs)[0] for task, (inputs, _) in rows.evaluated.items()}
    new_theta = to_cpu(network_state(net))
    record = measure_and_fit(
        ctx.store, net, [*_earlier_sources(ctx, base.architecture, net, base.version, base.train_sets,
                                           rows.validation, rows.evaluated),
                         TaskSource(job.task, request.num_classes, lambda: (rows.x, rows.y),
                                    _rows_of_set(rows.validation[-1]), _stored_rows(rows.evaluated.get(job.task)))],
        kept=base.version.class_statistics, trunk_moved=trunk_moved(theta_star, new_theta),
        new_task=job.task, options=TaskFreeOptions.of(base.model.task_free), seed=base.model.seed,
        reference_rows=ctx.settings.drift_reference_rows)
    trained = _Trained(
        learned=learned, split=rows.split, resumed_from_step=step_of(resume), precision=rows.precision,
        stored=save_network(ctx.store, base.architecture, net, new_theta, base.version), parts=parts,
        accuracy={task: fraction_correct(after[task], labels) for task, (_, labels) in rows.evaluated.items()},
        flips={task: flip_rates(rows.before[task], after[task], rows.evaluated[task][1]).as_dict()
               for task in rows.before},
        importance=importance_stats(new_theta, omega), task_free=record)
    return partial(_record, job, request, base.version, trained)


@dataclass(frozen=True)
class _Base:
    """What the job reads of the database: its model, its base version, and the datasets of every task."""

    model: Model
    version: Version
    architecture: ArchitectureSpec
    train_set: Dataset
    eval_sets: dict[str, tuple[Dataset, list[str] | None]]  # task → (eval set, class names)
    train_sets: dict[str, Dataset | None]  # earlier task → its training set (None: deleted)
    held_back: list[tuple[str, Dataset, ValidationSlice, list[str] | None]]  # earlier tasks' validation slices


def _read_base(ctx: JobContext, job: JobSpec, request: TrainJobRequest) -> _Base:
    with ctx.sessions() as session:
        model = session.get(Model, job.model_id)
        base = get_version(session, model, job.base_version)
        learned_tasks = _learned_tasks(session, model, base)
        # An earlier task whose data was deleted is left out of what reads it (its accuracy, its validation
        # slice, its statistics measured again); what the base derived from that data is kept instead.
        eval_sets = {t.name: (dataset, _classes_of(base, t.name)) for t in learned_tasks
                     if t.eval_dataset_id is not None and (dataset := session.get(Dataset, t.eval_dataset_id))}
        if request.eval_dataset is not None:
            eval_sets[job.task] = (session.get(Dataset, request.eval_dataset), request.classes)
        train_sets = {t.name: session.get(Dataset, t.train_dataset_id) for t in learned_tasks}
        held_back = [(t.name, train_sets[t.name], entry["validation"], _classes_of(base, t.name))
                     for t in learned_tasks
                     if (entry := _entry(base, t.name)) and entry.get("validation") and train_sets[t.name]]
        return _Base(model, base, stored_spec(model.architecture), session.get(Dataset, request.train_dataset),
                     eval_sets, train_sets, held_back)


@dataclass(frozen=True)
class _Rows:
    """The base's network on the job's device and every row the job reads, read once."""

    net: MultiHeadNet
    omega: dict[str, Tensor]  # the base's total Ω, on the CPU
    x: Tensor | LazySamples  # the rows this task trains on
    y: Tensor
    split: Split
    validation: list[ValidationSet]  # every earlier task's validation slice, then this task's
    evaluated: dict[str, tuple[Tensor | LazySamples, Tensor]]  # task → its eval set
    before: dict[str, Tensor]  # the base's predictions on the eval sets of the tasks it knows
    precision: str


def _read_rows(ctx: JobContext, job: JobSpec, request: TrainJobRequest, base: _Base) -> _Rows:
    architecture = base.architecture
    omega = load_total(ctx.store, base.version.importance_parts)
    net = version_network(ctx.store, architecture, base.version, request.trainable_spec()).to(ctx.device)
    x, y = load_inputs(ctx.store, architecture, base.train_set, net.input_spec)
    x, y = x.to(ctx.device), task_labels(y, base.train_set, request.classes).to(ctx.device)
    split = _validation_split(len(y), request)
    validation = [*_earlier_validation(ctx, architecture, net, base.held_back),
                  ValidationSet(job.task, rows_of(x, split.validation), y[split.validation.to(y.device)])]
    x, y = rows_of(x, split.train), y[split.train.to(y.device)]
    evaluated = {task: _eval_data(ctx, architecture, net, dataset, task_classes)
                 for task, (dataset, task_classes) in base.eval_sets.items()}
    before = {task: predict(net, task, inputs)[0] for task, (inputs, _) in evaluated.items() if task in net.heads}
    return _Rows(net, omega, x, y, split, validation, evaluated, before, precision_for(ctx.device))


def _learn(ctx: JobContext, job: JobSpec, request: TrainJobRequest, watch: JobWatch, rows: _Rows,
           theta_star: dict[str, Tensor], resume: SearchSnapshot | None, checkpoints: JobCheckpoints) -> LearnedTask:
    """`learn_task` with the request's method, λ (or its search), training and importance options."""
    options = request.importance
    return learn_task(
        rows.net, job.task, request.num_classes, rows.x, rows.y,
        method=MethodChoice(request.method, 1.0 if request.auto else request.lambda_, request.penalty,
                            request.method_options),
        theta_star=theta_star, omega=to_device(rows.omega, ctx.device),
        config=TrainConfig(epochs=request.epochs, batch_size=request.batch_size, optimizer=request.optimizer,
                           lr=request.lr, momentum=request.momentum, seed=request.seed, precision=rows.precision,
                           head_warmup=warmup_epochs(request.head_warmup,
                                                     get_architecture(rows.net.architecture["kind"]).pretrained_weights)),
        importance=ImportanceChoice(options.variant, options.output, options.reduction)
        if options.on == "train" else None,
        lambda_grid=(request.lambda_grid or DEFAULT_GRID) if request.auto else None, validation=rows.validation,
        selection=request.selection,
        progress=_with_epochs(watch, epochs=request.epochs,
                              steps_per_epoch=math.ceil(len(rows.y) / request.batch_size)),
        should_stop=watch.should_stop,
        resume=resume, checkpoint=checkpoints,
        prefix=trunk_split(stored_spec(rows.net.architecture), rows.net), prefix_budget=ctx.settings.prefix_cache_bytes,
    )


@dataclass(frozen=True)
class _Trained:
    """What the job made, stored in blobs and ready to be recorded as a version."""

    learned: LearnedTask
    split: Split
    resumed_from_step: int | None
    precision: str
    stored: StoredTheta
    parts: list[dict[str, Any]]  # the new version's importance parts
    accuracy: dict[str, float]
    flips: dict[str, dict[str, Any]]
    importance: dict[str, Any]
    task_free: TaskFreeRecord

    def search(self, method: str) -> dict[str, Any]:
        """The λ trained with and how it was chosen, as both the version's provenance and the job's row say;
        None for a method that λ weighs nothing in (fine-tune: no penalty), which trains with no λ at all.
        With them, the passes the new head was warmed up for before training."""
        learned = self.learned
        return {"head_warmup": learned.head_warmup, "lambda": learned.lam if METHODS[method].uses_lambda else None,
                "lambda_search": [trial.as_dict() for trial in learned.trials],
                "lambda_selection": learned.choice.as_dict() if learned.choice is not None else None}


def _record(job: JobSpec, request: TrainJobRequest, base: Version, trained: _Trained, session: Session) -> JobResult:
    """The new version (with its Task row), in the runner's transaction that marks the job succeeded."""
    training = trained.learned.training
    recorded = record_version(
        session=session, model_id=job.model_id, job_id=job.id, base=job.base_version, kind="train", task=job.task,
        theta_blob=trained.stored.manifest, theta_parts=trained.stored.parts, importance_parts=trained.parts,
        tasks=[*base.tasks, _task_entry(job.task, request, trained.split)], accuracy=trained.accuracy,
        importance=trained.importance,
        made_by=made_by(session.get(Job, job.id), precision=trained.precision,
                        loss_per_epoch=training.loss_per_epoch, steps=training.steps,
                        trained_rows=len(trained.split.train), validation_rows=len(trained.split.validation),
                        resumed_from_step=trained.resumed_from_step, **trained.search(request.method)),
        class_statistics=trained.task_free.class_statistics, task_free=trained.task_free.task_free,
        flips=trained.flips,
    )
    if session.scalar(select(Task.id).where(Task.version_id == recorded.version.id)) is None:
        session.add(Task(model_id=job.model_id, version_id=recorded.version.id, name=job.task,
                         num_classes=request.num_classes, train_dataset_id=request.train_dataset,
                         eval_dataset_id=request.eval_dataset))
    return JobResult(recorded.version.number, recorded.promotion,
                     details={**trained.search(request.method), "resumed_from_step": trained.resumed_from_step})


def _task_entry(task: str, request: TrainJobRequest, split: Split) -> TaskEntry:
    """A task as a version lists it; `classes` (class names, index order) where its labels were names,
    and where its validation slice lies (so that later tasks' λ "auto" can read it again)."""
    entry = TaskEntry(name=task, num_classes=request.num_classes)
    if request.classes:
        entry["classes"] = list(request.classes)
    if request.trainable is not None:  # a refresh of this task measures Ω on what it trained
        entry["trainable"] = request.trainable_spec()
    if len(split.validation):
        entry["validation"] = ValidationSlice(fraction=split.fraction, seed=split.seed, n=len(split.validation))
    return entry


def _with_epochs(watch: JobWatch, *, epochs: int, steps_per_epoch: int) -> Callable[[int, int, float], None]:
    """Progress with where it stands within the run: the epoch, and the trial of a λ search (every trial
    trains the same steps, so both follow from the step counts)."""
    per_trial = epochs * steps_per_epoch

    def report(done: int, total: int, loss: float) -> None:
        within = (max(done, 1) - 1) % per_trial
        detail = {"epoch": within // steps_per_epoch + 1, "epochs": epochs,
                  "trial": (max(done, 1) - 1) // per_trial + 1, "trials": max(1, total // per_trial)}
        watch.progress(done, total, loss, detail=detail)

    return report


def planned_work(session: Session, job: Job, request: TrainJobRequest) -> PlannedWork | None:
    """The optimizer steps of the whole job, as its claim writes progress 0 of them."""
    dataset = session.get(Dataset, request.train_dataset)
    if dataset is None:
        return None
    base = session.scalar(select(Version).where(Version.model_id == job.model_id, Version.number == job.base_version))
    return PlannedWork(planned_steps(request, dataset.n, base_has_tasks=bool(base and base.tasks)), "steps")


def planned_steps(request: TrainJobRequest, n: int, *, base_has_tasks: bool) -> int:
    """The optimizer steps the job will take: every λ of an "auto" search trains the same steps (a
    first task, with nothing to protect, trains once)."""
    train_rows = len(split_validation(n, request.validation_fraction, request.seed)[0])
    trials = len(request.lambda_grid or DEFAULT_GRID) if request.auto and base_has_tasks else 1
    if request.method == "finetune":
        trials = 1
    return trials * request.epochs * math.ceil(train_rows / request.batch_size)


@dataclass(frozen=True)
class Split:
    train: Tensor
    validation: Tensor
    fraction: float
    seed: int


def _validation_split(n: int, request: TrainJobRequest) -> Split:
    """The rows this task trains on and the rows it holds back (jobs queued before validation slices
    existed hold back none)."""
    fraction, seed = request.validation_fraction, request.seed
    return Split(*split_validation(n, fraction, seed), fraction, seed)


def _earlier_validation(ctx: JobContext, architecture: ArchitectureSpec, net: MultiHeadNet,
                        held_back: list[tuple[str, Dataset, ValidationSlice, list[str] | None]]) -> list[ValidationSet]:
    """Each earlier task's validation slice, read again from its training set with its own split."""
    return [ValidationSet(task, *_task_rows(ctx, architecture, net, dataset, task_classes, validation, HELD_BACK))
            for task, dataset, validation, task_classes in held_back]


def _earlier_sources(ctx: JobContext, architecture: ArchitectureSpec, net: MultiHeadNet, base: Version,
                     train_sets: dict[str, Dataset | None], validation: list[ValidationSet],
                     evaluated: dict[str, tuple[Tensor | LazySamples, Tensor]]) -> list[TaskSource]:
    """The base's tasks as task-free fitting reads them: training rows (its train split) while its dataset
    is stored, the validation slice already read for λ "auto", and its eval set."""
    held = {v.task: v for v in validation}
    sources = []
    for entry in base.tasks:
        name, dataset = entry["name"], train_sets.get(entry["name"])
        train, unavailable = None, "its training dataset was deleted"
        if dataset is not None and ctx.store.exists(dataset.blob):
            train = partial(_task_rows, ctx, architecture, net, dataset, entry.get("classes"), entry.get("validation"),
                            TRAINED)
        elif dataset is not None:
            unavailable = "its training dataset's blob is missing from the store"
        sources.append(TaskSource(name, entry["num_classes"], train, _rows_of_set(held.get(name)),
                                  _stored_rows(evaluated.get(name)), unavailable=unavailable))
    return sources


TRAINED, HELD_BACK = 0, 1  # the two parts of `split_validation`


def _task_rows(ctx: JobContext, architecture: ArchitectureSpec, net: MultiHeadNet, dataset: Dataset,
               task_classes: list[str] | None, validation: ValidationSlice | None,
               part: int) -> tuple[Tensor | LazySamples, Tensor]:
    """One part of a task's training set, split as its own job split it: the rows it trained on (TRAINED) or
    its validation slice (HELD_BACK); a task that held nothing back trained on every row."""
    inputs, labels = _labelled(ctx, architecture, net, dataset, task_classes)
    validation = validation or ValidationSlice(fraction=0.0, seed=0, n=0)
    rows = split_validation(len(labels), validation["fraction"], validation["seed"])[part]
    return rows_of(inputs, rows).to(ctx.device), labels[rows].to(ctx.device)


def _rows_of_set(validation: ValidationSet | None) -> Callable[[], tuple[Tensor | LazySamples, Tensor]] | None:
    return None if validation is None else lambda: (validation.inputs, validation.labels)


def _stored_rows(rows: tuple[Tensor | LazySamples, Tensor] | None
                 ) -> Callable[[], tuple[Tensor | LazySamples, Tensor]] | None:
    return None if rows is None else lambda: rows


def _eval_data(ctx: JobContext, architecture: ArchitectureSpec, net: MultiHeadNet, dataset: Dataset,
               task_classes: list[str] | None) -> tuple[Tensor | LazySamples, Tensor]:
    """A task's eval set (inputs, its class indices) on the job's device, read once for the whole job."""
    inputs, labels = _labelled(ctx, architecture, net, dataset, task_classes)
    return inputs.to(ctx.device), labels.to(ctx.device)


def _labelled(ctx: JobContext, architecture: ArchitectureSpec, net: MultiHeadNet, dataset: Dataset,
              task_classes: list[str] | None) -> tuple[Tensor | LazySamples, Tensor]:
    """A dataset's inputs as the network takes them and its labels as the task's class indices."""
    inputs, labels = load_inputs(ctx.store, architecture, dataset, net.input_spec)
    return inputs, task_labels(labels, dataset, task_classes)


def _entry(version: Version, task: str) -> TaskEntry | None:
    return next((t for t in version.tasks if t["name"] == task), None)


def _classes_of(version: Version, task: str) -> list[str] | None:
    entry = _entry(version, task)
    return entry.get("classes") if entry else None


def _learned_tasks(session: Session, model: Model, base: Version) -> list[Task]:
    """The tasks learned along the base's lineage, in the order they were learned."""
    train_versions = [v.id for v in lineage(session, model, base.number) if v.kind == "train"]
    return list(session.scalars(select(Task).where(Task.version_id.in_(train_versions)).order_by(Task.id)))
