"""HTTP routes of models: create, list, get, change the promotion policy, move production (`PUT …/head`),
delete.

`PUT …/head` is here rather than among the versions' routes because it answers with the model
(`ModelOut`): versions' routes answering with it would tie app/versions to app/models, which builds on
versions (a model is created with its version 0).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from app.aliases.deps import MoverDep
from app.aliases.promotion import PromotionPolicy
from app.auth.deps import AdminScope, ModelScopeDep, ReadScope, WriteScope
from app.db import lookups
from app.deps import SessionDep, SettingsDep, StoreDep
from app.models import service
from app.models.http import shape_model
from app.models.schemas import ModelIn, ModelOut, ModelPatch
from app.versions import service as versions
from app.versions.schemas import HeadIn

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[ReadScope])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ModelOut, dependencies=[WriteScope])
def create_model(body: ModelIn, session: SessionDep, store: StoreDep, settings: SettingsDep, by: MoverDep,
                 reach: ModelScopeDep) -> ModelOut:
    if not reach.reaches(body.name):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key reaches {reach.describe()}: it cannot create a "
                            f"model named {body.name!r}")
    model = service.create_model(session=session, store=store, name=body.name, architecture=body.architecture,
                                 seed=body.seed, max_input_values=settings.max_input_values,
                                 queue=body.queue or settings.default_queue,
                                 model_dirs=settings.model_dirs, max_parameters=settings.max_model_parameters,
                                 promotion=PromotionPolicy(**body.promotion.model_dump()),
                                 task_free=body.task_free.model_dump(), drift_alpha=body.drift_alpha,
                                 lambda_selection=body.lambda_selection.model_dump(), by=by)
    session.commit()
    return shape_model(session, model)


@router.get("", response_model=list[ModelOut])
def list_models(session: SessionDep, reach: ModelScopeDep) -> list[ModelOut]:
    return [shape_model(session, m) for m in service.list_models(session) if reach.reaches(m.name)]


@router.get("/{name}", response_model=ModelOut)
def get_model(name: str, session: SessionDep) -> ModelOut:
    return shape_model(session, lookups.get_model(session, name))


@router.patch("/{name}", response_model=ModelOut, dependencies=[WriteScope])
def update_model(name: str, body: ModelPatch, session: SessionDep) -> ModelOut:
    """Change the model's promotion policy, task-free options, drift_alpha or λ selection (the fields given;
    the others stay; a body that gives none changes nothing)."""
    model = lookups.get_model(session, name)
    if body.promotion is not None:
        service.update_promotion(session=session, model=model, patch=body.promotion)
    if body.task_free is not None:
        service.update_task_free(model=model, patch=body.task_free)
    if body.drift_alpha is not None:
        model.drift_alpha = body.drift_alpha
    if body.lambda_selection is not None:
        model.lambda_selection = body.lambda_selection.applied_to(model.lambda_selection)
    session.commit()
    return shape_model(session, model)


@router.put("/{name}/head", response_model=ModelOut, dependencies=[WriteScope])
def set_head(name: str, body: HeadIn, session: SessionDep, by: MoverDep) -> ModelOut:
    """Move production to a version (the first API's name for it; recorded in production's history)."""
    model = versions.set_head(session=session, model=lookups.get_model(session, name), number=body.version, by=by,
                              reason=body.reason)
    session.commit()
    return shape_model(session, model)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[AdminScope])
def delete_model(name: str, session: SessionDep) -> Response:
    service.delete_model(session=session, name=name)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
