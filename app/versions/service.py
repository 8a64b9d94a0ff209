"""Versions of a model: reading them, writing a new one and promoting it, moving production, the accuracy matrix.

A version is written once and never changed; its tensors live in the blob store, its row names
them. `record_version` inserts a job's version and, in the same transaction with the model's row
locked (`lock_model`, app/db/lookups.py), applies the model's promotion policy (app/aliases/promotion.py): a promoted
version moves `production` (the model's head) by compare-and-set (`advance_head`), one that is only
kept moves `candidate`; either move is recorded in the alias history, by the job. Under the `auto`
policy a job whose base is no longer production creates nothing, however many workers finish at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from torch import Tensor

from app.aliases.moves import CANDIDATE, PRODUCTION, Mover, move_alias, record_move
from app.aliases.promotion import Decision, PromotionPolicy, decide
from app.db.lookups import get_version, lineage, lock_model
from app.db.tables import Job, Model, Version
from app.mas.evaluation import continual_metrics
from app.store import BlobStore
from app.task_free.stored import eval_accuracy, eval_scores
from app.versions.theta import load_theta_parts
from app.webhooks.events import emit_version_created


class ValidationSlice(TypedDict):
    """Where a task's validation slice lies in its training set (`split_validation(n, fraction, seed)`), so
    that a later task's λ "auto" reads the same rows again."""

    fraction: float
    seed: int
    n: int


class TaskEntry(TypedDict):
    """A task as a version lists it (`Version.tasks`, in the order learned: JSON, so a plain dict)."""

    name: str
    num_classes: int
    classes: NotRequired[list[str]]  # class names in index order, where its labels were names
    trainable: NotRequired[Any]  # what it trained ("all", "none", {"last": N}): a refresh measures Ω on it
    validation: NotRequired[ValidationSlice]  # where it held rows back


def set_head(*, session: Session, model: Model, number: int, by: Mover | None = None,
             reason: str | None = None) -> Model:
    """Move production (the head) to version `number`, recorded in the alias history."""
    lock_model(session, model.id)
    session.refresh(model)  # the head as it is now that the row is ours
    get_version(session, model, number)
    move_alias(session=session, model=model, alias=PRODUCTION, version=number, by=by or Mover(), reason=reason)
    return model


def advance_head(*, session: Session, model_id: int, expected: int, new: int) -> bool:
    """Compare-and-set: move the head to `new` only if it still is `expected`."""
    result = session.execute(
        update(Model).where(Model.id == model_id, Model.head == expected).values(head=new)
    )
    return result.rowcount == 1


def next_version_number(*, session: Session, model_id: int) -> int:
    latest = session.scalar(select(func.max(Version.number)).where(Version.model_id == model_id))
    return 0 if latest is None else latest + 1


def load_theta(*, store: BlobStore, version: Version) -> dict[str, Tensor]:
    return load_theta_parts(store, version.theta_blob, version.theta_parts)


def evaluation(*, session: Session, model: Model) -> dict[str, Any]:
    """The accuracy matrix along the head's lineage (one row per train version) and its summary."""
    rows = [
        {"version": v.number, "task": v.task, "accuracy": dict(v.accuracy),
         "task_free": eval_scores(v.task_free, model.task_free),
         "negative_flips": {t: f["negative"] for t, f in (v.flips or {}).items()},
         "positive_flips": {t: f["positive"] for t, f in (v.flips or {}).items()}}
        for v in lineage(session, model, model.head)
        if v.kind == "train"
    ]
    tasks = [row["task"] for row in rows]
    summary = continual_metrics([row["accuracy"] for row in rows], tasks)
    return {"model": model.name, "head": model.head, "tasks": tasks, "rows": rows, **summary}


class VersionConflict(Exception):
    """The job's base version is no longer production and its model's policy is auto: it must create nothing."""


@dataclass(frozen=True)
class Recorded:
    version: Version
    promotion: dict[str, Any] | None  # the decision as the job's result shows it (None: recorded before aliases)


def record_version(
    *, session: Session, model_id: int, job_id: str, base: int, kind: str, task: str,
    theta_blob: str, importance_parts: list[dict[str, Any]], tasks: list[TaskEntry],
    accuracy: dict[str, float], importance: dict[str, Any], theta_parts: dict[str, str] | None = None,
    made_by: dict[str, Any] | None = None, class_statistics: list[dict[str, Any]] | None = None,
    task_free: dict[str, Any] | None = None, flips: dict[str, Any] | None = None,
) -> Recorded:
    """Insert the job's version and promote it or keep it as its model's policy decides, or raise
    VersionConflict (auto, and production moved); one transaction.

    A job that already wrote its version (a repeated delivery) gets that version back unchanged, with
    the decision its first delivery stored on the job's row.
    """
    lock_model(session, model_id)
    existing = session.scalar(select(Version).where(Version.job_id == job_id))
    if existing is not None:
        return Recorded(existing, session.scalar(select(Job.promotion).where(Job.id == job_id)))
    model = session.get(Model, model_id, populate_existing=True)
    decision = _decide(session, model, base=base, kind=kind, task=task, accuracy=accuracy,
                       task_free_accuracy=eval_accuracy(task_free, model.task_free), flips=flips)
    if decision.conflict:
        raise VersionConflict(decision.reason)
    number = next_version_number(session=session, model_id=model_id)
    if decision.promoted and not advance_head(session=session, model_id=model_id, expected=base, new=number):
        raise VersionConflict(f"production is no longer version {base}")  # the lock makes this unreachable
    version = Version(
        model_id=model_id, number=number, parent=base, kind=kind, task=task, job_id=job_id,
        theta_blob=theta_blob, theta_parts=theta_parts, importance_parts=importance_parts,
        tasks=tasks, accuracy=accuracy, importance=importance, made_by=made_by,
        class_statistics=class_statistics, task_free=task_free, flips=flips,
    )
    session.add(version)
    session.flush()
    emit_version_created(session, version)
    by = Mover(job_id=job_id)
    if decision.promoted:
        record_move(session=session, model_id=model_id, alias=PRODUCTION, old=base, new=number, by=by,
                    reason=decision.reason)
    else:
        move_alias(session=session, model=model, alias=CANDIDATE, version=number, by=by, reason=decision.reason)
    return Recorded(version, decision.as_dict())


def _decide(session: Session, model: Model, *, base: int, kind: str, task: str,
            accuracy: dict[str, float], task_free_accuracy: float | None,
            flips: dict[str, Any] | None) -> Decision:
    """The model's policy applied to a version made from `base` with `accuracy` on its tasks."""
    base_version = get_version(session, model, base)
    return decide(PromotionPolicy.of(model.promotion), kind=kind, task=task, base=base, production=model.head,
                  earlier_tasks=[t["name"] for t in base_version.tasks], before=base_version.accuracy,
                  after=accuracy, task_free_accuracy=task_free_accuracy,
                  negative_flips={t: f["negative"] for t, f in (flips or {}).items() if f.get("negative") is not None})
