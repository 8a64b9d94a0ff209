"""Models: create one (its version 0 is the initial network with Ω = 0, and production), look up, list,
change the promotion policy, delete."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.aliases.moves import PRODUCTION, Mover, record_move
from app.aliases.promotion import PromotionPolicy
from app.architectures import registry
from app.db.lookups import get_model
from app.db.tables import Alias, AliasMove, Job, Model, Task, Version
from app.errors import Conflict, Invalid
from app.jobs.service import active_job_count
from app.limits import check_input_values, check_model_parameters
from app.mas.networks import network_state
from app.models.networks import save_network
from app.models.schemas import Promotion, PromotionPatch
from app.store import BlobStore
from app.task_free.options import TaskFreeOptions, TaskFreePatch
from app.versions.importance import importance_stats


def create_model(*, session: Session, store: BlobStore, name: str, architecture: dict[str, Any], seed: int,
                 max_input_values: int | None = None, queue: str = "cpu",
                 model_dirs: Sequence[Path] = (), max_parameters: int | None = None,
                 promotion: PromotionPolicy | None = None, task_free: dict[str, Any] | None = None,
                 drift_alpha: float | None = None, lambda_selection: dict[str, Any] | None = None,
                 by: Mover | None = None) -> Model:
    """A new model, its version 0 and its production alias on it; `promotion` defaults to guarded."""
    if isinstance(architecture, dict):
        # before validation, which would read the directory
        check_model_path(architecture=architecture, model_dirs=model_dirs)
    try:
        architecture = registry.validate_architecture(architecture)
    except ValueError as error:
        raise Invalid(f"architecture: {error}") from error
    if max_input_values is not None and "input_shape" in architecture:
        check_input_values(architecture["input_shape"], max_input_values)
    if max_parameters is not None:
        check_model_parameters(registry.trunk_parameter_count(architecture), max_parameters)
    if session.scalar(select(Model.id).where(Model.name == name)) is not None:
        raise Conflict(f"a model named {name!r} exists")
    net = registry.build_network(architecture, seed)  # version 0: pretrained weights, or drawn from the seed
    theta = network_state(net)
    stored = save_network(store, architecture, net, theta)
    model = Model(name=name, architecture=architecture, seed=seed, head=0, queue=queue,
                  promotion=(promotion or PromotionPolicy()).as_dict(), task_free=task_free, drift_alpha=drift_alpha,
                  lambda_selection=lambda_selection)
    session.add(model)
    session.flush()
    record_move(session=session, model_id=model.id, alias=PRODUCTION, old=None, new=0, by=by or Mover(),
                reason="model created")
    session.add(
        Version(
            model_id=model.id, number=0, parent=None, kind="init", task=None, job_id=None,
            theta_blob=stored.manifest, theta_parts=stored.parts,
            importance_parts=[],
            tasks=[], accuracy={}, importance=importance_stats(theta, {}),
        )
    )
    return model


def check_model_path(*, architecture: dict[str, Any], model_dirs: Sequence[Path]) -> None:
    """422 for an architecture `path` outside the directories LIFELONG_MODEL_DIRS allows."""
    path = architecture.get("path")
    if path is None:
        return
    if not isinstance(path, str) or not path:
        raise Invalid("architecture: path must be a directory name (a string)")
    if "\x00" in path:  # no file name holds one, and os.path would raise ValueError on it
        raise Invalid("architecture: path contains a NUL byte (\\x00), which no directory name can hold")
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(Path(allowed).resolve()) for allowed in model_dirs):
        raise Invalid(f"architecture: path {path!r} is not inside a directory that LIFELONG_MODEL_DIRS allows"
                      f" ({[str(d) for d in model_dirs] or 'none set'})")


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.name)))


def head_tasks(*, session: Session, model: Model) -> list[str]:
    tasks = session.scalar(select(Version.tasks).where(Version.model_id == model.id, Version.number == model.head))
    return [t["name"] for t in tasks or []]


def update_promotion(*, session: Session, model: Model, patch: PromotionPatch) -> Model:
    """Change the fields of the model's promotion policy that `patch` names; the rest stay."""
    merged: dict[str, Any] = {**model.promotion, **patch.model_dump(exclude_unset=True)}
    try:
        model.promotion = Promotion.model_validate(merged).model_dump()
    except ValidationError as error:
        raise Invalid("promotion: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                for e in error.errors())) from error
    return model


def update_task_free(*, model: Model, patch: TaskFreePatch) -> Model:
    """Change the task-free options that `patch` names; the rest stay."""
    merged = {**TaskFreeOptions.of(model.task_free).model_dump(), **patch.model_dump(exclude_none=True)}
    model.task_free = TaskFreeOptions.model_validate(merged).model_dump()
    return model


def delete_model(*, session: Session, name: str) -> None:
    """Delete a model with its versions, tasks and jobs; refused while a job of it may still write."""
    model = get_model(session, name)
    active = active_job_count(session=session, model_id=model.id)
    if active:
        raise Conflict(f"model {name!r} has {active} queued or running job(s): cancel them first")
    # Blobs are left in place: they are content-addressed and may be shared with other models.
    for table in (Task, Job, Version, Alias, AliasMove):
        session.execute(delete(table).where(table.model_id == model.id))
    session.delete(model)
