"""A train job: learn one task on the base version with the chosen method, measure Ω, evaluate, record.

This is the sequence of MAS.md §3–4, done by `learn_task`: the penalty anchors θ* = the base's θ with
Ω = the base's total importance (Σ_t S_t/n_t); after training, this task's own estimate is measured
on its training inputs (unless `importance.on` is "none") and added to the base's estimates, which are
carried over unchanged; then the new version is evaluated on the eval set of every task it knows,
which makes a row of the accuracy matrix.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Dataset, Job, Model, Task, Version
from app.jobs.service import succeed_job
from app.learning.context import JobContext
from app.learning.data import load_inputs, task_labels
from app.learning.measured import log_fallback
from app.learning.provenance import made_by
from app.learning.spec import JobSpec
from app.learning.watch import JobWatch
from app.mas.accumulation import TaskImportance, total_importance
from app.mas.devices import to_cpu, to_device
from app.mas.evaluation import accuracy
from app.mas.learn import ImportanceChoice, MethodChoice, importance_measure, learn_task
from app.mas.networks import network_state
from app.mas.training import TrainConfig, TrainingCancelled, precision_for
from app.models.networks import save_network, version_network
from app.versions.importance import importance_stats, load_total, with_task
from app.versions.service import get_version, lineage, record_version


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
    omega = load_total(ctx.store, base.importance_parts)
    net = version_network(ctx.store, architecture, base, request.get("trainable")).to(ctx.device)
    x, y = load_inputs(ctx.store, architecture, train_set, net.input_spec)
    x, y = x.to(ctx.device), task_labels(y, train_set, classes).to(ctx.device)

    options = request["importance"]
    precision = precision_for(ctx.device)
    learned = learn_task(
        net, job.task, request["num_classes"], x, y,
        method=MethodChoice(request["method"], request["lambda"], request["penalty"]),
        theta_star=to_device(network_state(net), ctx.device), omega=to_device(omega, ctx.device),
        config=TrainConfig(epochs=request["epochs"], batch_size=request["batch_size"],
                           optimizer=request["optimizer"], lr=request["lr"], momentum=request["momentum"],
                           seed=request["seed"], precision=precision),
        importance=ImportanceChoice(options["variant"], options["output"], options["reduction"])
        if options["on"] == "train" else None,
        progress=watch.progress, should_stop=watch.should_stop,
    )
    parts = base.importance_parts
    if learned.estimate is not None:
        log_fallback(learned.fallback, job.id)
        estimate = TaskImportance(to_cpu(learned.estimate.sums), learned.estimate.n)
        parts = with_task(ctx.store, parts, job.task, estimate, importance_measure(request["method"]))
        omega = total_importance([TaskImportance(omega, 1), estimate])
    scores = {}
    for task, (dataset, task_classes) in eval_sets.items():
        inputs, labels = load_inputs(ctx.store, architecture, dataset, net.input_spec)
        labels = task_labels(labels, dataset, task_classes)
        scores[task] = accuracy(net, task, inputs.to(ctx.device), labels.to(ctx.device))

    new_theta = to_cpu(network_state(net))
    stored = save_network(ctx.store, architecture, net, new_theta, base)
    with ctx.sessions.begin() as session:
        if watch.cancelled_now(session):
            raise TrainingCancelled("cancelled before the version was written")
        row = session.get(Job, job.id)
        version = record_version(
            session, model_id=job.model_id, job_id=job.id, base=job.base_version, kind="train", task=job.task,
            theta_blob=stored.manifest, theta_parts=stored.parts, importance_parts=parts,
            tasks=[*base.tasks, _task_entry(job.task, request)], accuracy=scores,
            importance=importance_stats(new_theta, omega),
            made_by=made_by(row, precision=precision, loss_per_epoch=learned.training.loss_per_epoch,
                            steps=learned.training.steps),
        )
        if session.scalar(select(Task.id).where(Task.version_id == version.id)) is None:
            session.add(Task(model_id=job.model_id, version_id=version.id, name=job.task,
                             num_classes=request["num_classes"], train_dataset_id=request["train_dataset"],
                             eval_dataset_id=request["eval_dataset"]))
        succeed_job(row, version.number)
        return version.number


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
