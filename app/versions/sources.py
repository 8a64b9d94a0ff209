"""Where a version's derived parts came from: the datasets behind θ, each task's Ω, its class statistics
(with their drift reference features) and its accuracy, and whether each dataset still exists.

Everything here is derived data the version keeps in its own blobs, so none of it needs the datasets any
more: this is the list a team answering a deletion request reads to see what was learned from the data.
It is worked out from the lineage: θ was trained on the training set of every task learned along it, in
turn; a task's Ω was measured on its training set (unless the job measured none) and on each importance
refresh's data since (a `replace` refresh starts it again); its class statistics on its training set,
kept from an older trunk when that set was gone (`kept_because`); its accuracy on its eval set.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.deletion import DatasetState, dataset_states
from app.db.lookups import lineage
from app.db.tables import Job, Model, Task, Version


def data_sources(session: Session, model: Model, version: Version) -> dict[str, Any]:
    """The version's `data`: {"theta", "importance", "class_statistics", "accuracy", "deleted"}."""
    chain = lineage(session, model, version.number)
    tasks = {t.version_id: t for t in session.scalars(select(Task).where(Task.version_id.in_([v.id for v in chain])))}
    job_ids = [v.job_id for v in chain if v.job_id]
    requests = dict(session.execute(select(Job.id, Job.request).where(Job.id.in_(job_ids))).tuples().all()) \
        if job_ids else {}
    theta: list[tuple[str, str]] = []  # (task, dataset id)
    importance: dict[str, list[str]] = {}
    learned: dict[str, Task] = {}
    for v in chain:
        request = requests.get(v.job_id or "", {})
        if v.kind == "train" and v.id in tasks:
            task = tasks[v.id]
            learned[task.name] = task
            theta.append((task.name, task.train_dataset_id))
            measured = request.get("importance", {}).get("on", "train") != "none"
            importance[task.name] = [task.train_dataset_id] if measured else []
        elif v.kind == "importance" and v.task and request.get("dataset"):
            earlier = [] if request.get("mode") == "replace" else importance.get(v.task, [])
            importance[v.task] = [*earlier, request["dataset"]]
    names = [t["name"] for t in version.tasks]
    statistics = {entry["task"]: entry for entry in version.class_statistics or []}
    ids = [d for _, d in theta] + [d for task in names for d in importance.get(task, [])] + \
          [learned[n].eval_dataset_id for n in names if n in learned]
    states = dataset_states(session, ids)
    return {
        "theta": [{"task": task, **_state(states, dataset)} for task, dataset in theta],
        "importance": {task: [_state(states, d) for d in importance.get(task, [])] for task in names},
        "class_statistics": {
            task: {"dataset": _state(states, learned[task].train_dataset_id), "at_this_trunk": entry["at_trunk"],
                   "kept_because": entry.get("kept_because")}
            for task, entry in statistics.items() if task in learned},
        "accuracy": {task: _state(states, learned[task].eval_dataset_id) if learned[task].eval_dataset_id else None
                     for task in names if task in learned},
        "deleted": sorted(i for i, state in states.items() if not state.exists),
    }


def _state(states: dict[str, DatasetState], dataset_id: str) -> dict[str, Any]:
    state = states.get(dataset_id, DatasetState(dataset_id, False))
    return {"id": state.id, "exists": state.exists, "deleted_at": state.deleted_at, "deleted_by": state.deleted_by}
