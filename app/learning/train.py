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

from app.datasets.service import load_arrays
from app.db.tables import Dataset, Job, Model, Task, Version
from app.jobs.service import succeed_job
from app.learning.context import JobContext
from app.learning.spec import JobSpec, shaped
from app.learning.watch import JobWatch
from app.mas.devices import to_cpu, to_device
from app.mas.evaluation import accuracy
from app.mas.importance import ImportanceSum
from app.mas.methods import Method, make_method
from app.mas.networks import MultiHeadNet, load_network, network_state
from app.mas.training import TrainConfig, TrainingCancelled, train_task
from app.versions.service import (
    get_version,
    importance_stats,
    lineage,
    load_importance,
    load_theta,
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
            eval_sets[job.task] = session.get(Dataset, request["eval_dataset"])
    input_shape = model.architecture["input_shape"]
    theta, state = load_theta(ctx.store, base), load_importance(ctx.store, base)
    x, y = load_arrays(ctx.store, train_set)
    x, y = shaped(x, input_shape).to(ctx.device), y.to(ctx.device)

    net = load_network(model.architecture, theta).to(ctx.device)
    method = make_method(request["method"], lam=request["lambda"], theta_star=to_device(theta, ctx.device),
                         omega=to_device(state.total(), ctx.device), form=request["penalty"])
    config = TrainConfig(epochs=request["epochs"], batch_size=request["batch_size"], optimizer=request["optimizer"],
                         lr=request["lr"], momentum=request["momentum"], seed=request["seed"])
    train_task(net, job.task, request["num_classes"], x, y, method, config,
               progress=watch.progress, should_stop=watch.should_stop)

    options = request["importance"]
    state = state.close_task()
    if options["on"] == "train":
        if watch.should_stop():
            raise TrainingCancelled("stopped before measuring importance")
        state = state.accumulate(_measure_importance(method, net, job.task, x, y, options))
    scores = {}
    for task, dataset in eval_sets.items():
        inputs, labels = load_arrays(ctx.store, dataset)
        scores[task] = accuracy(net, task, shaped(inputs, input_shape).to(ctx.device), labels.to(ctx.device))

    new_theta = to_cpu(network_state(net))
    blobs = {
        "theta_blob": store_tensors(ctx.store, new_theta),
        "omega_frozen_blob": store_tensors(ctx.store, state.frozen_tensors()),
        "omega_open_blob": store_tensors(ctx.store, state.open_tensors()),
    }
    with ctx.sessions.begin() as session:
        if watch.cancelled_now(session):
            raise TrainingCancelled("cancelled before the version was written")
        version = record_version(
            session, model_id=job.model_id, job_id=job.id, base=job.base_version, kind="train", task=job.task,
            n_open=state.n_open, tasks=[*base.tasks, {"name": job.task, "num_classes": request["num_classes"]}],
            accuracy=scores, importance=importance_stats(new_theta, state.total()), **blobs,
        )
        if session.scalar(select(Task.id).where(Task.version_id == version.id)) is None:
            session.add(Task(model_id=job.model_id, version_id=version.id, name=job.task,
                             num_classes=request["num_classes"], train_dataset_id=request["train_dataset"],
                             eval_dataset_id=request["eval_dataset"]))
        succeed_job(session.get(Job, job.id), version.number)
        return version.number


def _measure_importance(method: Method, net: MultiHeadNet, task: str, x: Tensor, y: Tensor,
                        options: dict[str, str]) -> ImportanceSum:
    """Ω of the task just learned: the method's own measure where it has one (EWC's Fisher, SI's path),
    else MAS's (MAS.md §1), so that a later task trained with MAS has an Ω to protect this one."""
    measured = method.task_importance(net, task, x, y, {k: options[k] for k in ("variant", "output", "reduction")})
    return ImportanceSum(to_cpu(measured.sums), measured.n)


def _known_eval_sets(session: Session, model: Model, base: Version) -> dict[str, Any]:
    """Eval datasets of the tasks learned along the base's lineage, in the order they were learned."""
    train_versions = [v.id for v in lineage(session, model, base.number) if v.kind == "train"]
    tasks = session.scalars(select(Task).where(Task.version_id.in_(train_versions)).order_by(Task.id))
    return {t.name: session.get(Dataset, t.eval_dataset_id) for t in tasks if t.eval_dataset_id is not None}
