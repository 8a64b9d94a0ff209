"""A model as the API answers it (`ModelOut`): its row with its aliases and the tasks production knows.

Models' own routes answer with it, `PUT /v1/models/{name}/head` among them (app/models/routes.py).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.aliases.moves import aliases_of
from app.db.tables import Model
from app.mas.drift import DEFAULT_ALPHA
from app.models.lambda_selection import LambdaSelection
from app.models.schemas import ModelOut, Promotion
from app.models.service import head_tasks
from app.task_free.options import TaskFreeOptions


def shape_model(session: Session, model: Model) -> ModelOut:
    return ModelOut(
        name=model.name, architecture=model.architecture, seed=model.seed, head=model.head, queue=model.queue,
        promotion=Promotion.model_validate(model.promotion), task_free=TaskFreeOptions.of(model.task_free),
        drift_alpha=model.drift_alpha if model.drift_alpha is not None else DEFAULT_ALPHA,
        lambda_selection=LambdaSelection.of(model.lambda_selection),
        aliases=aliases_of(session=session, model=model),
        tasks=head_tasks(session=session, model=model), created_at=model.created_at,
    )
