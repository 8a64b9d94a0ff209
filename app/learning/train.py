"""A train job: learn one task on the base version with the chosen method, measure Ω, evaluate, record.

This is the sequence of MAS.md §3–4: the penalty anchors θ* = the base's θ with Ω = the base's total
importance; after training, the base's open estimate is frozen into the sum and a new open estimate
is measured on the task's training inputs (unless `importance.on` is "none"); then the new version
is evaluated on the eval set of every task it knows, which makes a row of the accuracy matrix.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import Tensor

from app.db.tables import Dataset, Job, Model, Task, Version
from app.jobs.service import succeed_job
from app.learning.context import JobContext
from app.learning.data import load_inputs, task_labels
from app.learning.measured import kept_measurement
from app.learning.spec import JobSpec
from app.learning.watch import JobWatch
from app.mas.devices import to_cpu, to_device
from app.mas.evaluation import accuracy
from app.mas.importance import ImportanceSum
from app.mas.methods import Method, make_method
from app.mas.networks import MultiHeadNet, network_state
from app.mas.samples import LazySamples
from app.mas.training import TrainConfig, TrainingCancelled, precision_for, train_task
from app.models.networks import save_network, version_network
from app.versions.service import (
    get_version,
    importance_stats,
    lineage,
    load_importance,
    record_version,
    store_tensors,
)


def train_version(ctx: JobContext, job: JobSpec, watch: JobWatch) -> int:
    request = job.request
    with ctx.sessions() as session:
        model = session.get(Model, job.model_id)
        base = get_version(session, model, job.base_version)
        train_set = session.get(Dataset, request["train_dataset"])
        eval_sets = _known_eval_sets(session, model, base)
        if request["eval_dataset"] is not None:
            eval_sets[job.task] = (session.get(Dataset, request["eval_dataset"]), request.get("classes"))
    architecture, classes = model.architecture, request.get("classes")
    state = load_importance(ctx.store, base)
    net = version_network(ctx.store, architecture, base, request.get("trainable")).to(ctx.device)
    theta = network_state(net)
    x, y = load_inputs(ctx.store, architecture, train_set, net.input_spec)
    x, y = x.to(ctx.device), task_labels(y, train_set, classes).to(ctx.device)

    method = make_method(request["method"], lam=request["lambda"], theta_star=to_device(theta, ctx.device),
                         omega=to_device(state.total(), ctx.device), form=request["penalty"])
    config = TrainConfig(epochs=request["epochs"], batch_size=request["batch_size"], optimizer=request["optimizer"],
                         lr=request["lr"], momentum=request["momentum"], seed=request["seed"],
                         precision=precision_for(ctx.device))
    train_task(net, job.task, request["num_classes"], x, y, method, config,
               progress=watch.progress, should_stop=watch.should_stop)

    options = request["importance"]
    state = state.close_task()
    if options["on"] == "train":
        if watch.should_stop():
            raise TrainingCancelled("stopped before measuring importance")
        state = state.accumulate(_measure_importance(method, net, job, x, y, options))
    scores = {}
    for task, (dataset, task_classes) in eval_sets.items():
        inputs, labels = load_inputs(ctx.store, architecture, dataset, net.input_spec)
        labels = task_labels(labels, dataset, task_classes)
        scores[task] = accuracy(net, task, inputs.to(ctx.device), labels.to(ctx.device))

    new_theta = to_cpu(network_state(net))
    stored = save_network(ctx.store, architecture, net, new_theta, base)
    blobs = {
        "theta_blob": stored.manifest, "theta_parts": stored.parts,
        "omega_frozen_blob": store_tensors(ctx.store, state.frozen_tensors()),
        "omega_open_blob": store_tensors(ctx.store, state.open_tensors()),
    }
    with ctx.sessions.begin() as session:
        if watch.cancelled_now(session):
            raise TrainingCancelled("cancelled before the version was written")
        version = record_version(
            session, model_id=job.model_id, job_id=job.id, base=job.base_version, kind="train", task=job.task,
            n_open=state.n_open, tasks=[*base.tasks, _task_entry(job.task, request)],
            accuracy=scores, importance=importance_stats(new_theta, state.total()), **blobs,
        )
        if session.scalar(select(Task.id).where(Task.version_id == version.id)) is None:
            session.add(Task(model_id=job.model_id, version_id=version.id, name=job.task,
                             num_classes=request["num_classes"], train_dataset_id=request["train_dataset"],
                             eval_dataset_id=request["eval_dataset"]))
        succeed_job(session.get(Job, job.id), version.number)
        return version.number


def _measure_importance(method: Method, net: MultiHeadNet, job: JobSpec, x: Tensor | LazySamples, y: Tensor,
                        options: dict[str, str]) -> ImportanceSum:
    """Ω of the task just learned: the method's own measure where it has one (EWC's Fisher, SI's path),
    else MAS's (MAS.md §1), so that a later task trained with MAS has an Ω to protect this one."""
    measured = method.task_importance(net, job.task, x, y, {k: options[k] for k in ("variant", "output", "reduction")})
    return kept_measurement(measured, job.id)


def _task_entry(task: str, request: dict[str, Any]) -> dict[str, Any]:
    """A task as a version lists it; `classes` (class names, index order) where its labels were names."""
    entry: dict[str, Any] = {"name": task, "num_classes": request["num_classes"]}
    if request.get("classes"):
        entry["classes"] = list(request["classes"])
    if request.get("trainable") is not None:  # a refresh of this task measures Ω on what it trained
        entry["trainable"] = request["trainable"]
    return entry


def _known_eval_sets(session: Session, model: Model, base: Version) -> dict[str, tuple[Dataset, list[str] | None]]:
    """Eval datasets of the tasks learned along the base's lineage, in the order they were learned,
    with each task's class names (None for integer labels)."""
    train_versions = [v.id for v in lineage(session, model, base.number) if v.kind == "train"]
    tasks = session.scalars(select(Task).where(Task.version_id.in_(train_versions)).order_by(Task.id))
    classes = {t["name"]: t.get("classes") for t in base.tasks}
    return {t.name: (session.get(Dataset, t.eval_dataset_id), classes.get(t.name))
            for t in tasks if t.eval_dataset_id is not None}
