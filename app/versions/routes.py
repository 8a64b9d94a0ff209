"""HTTP routes of versions: list, detail, the importance download, evaluation (the checkpoint is
downloaded through app/export/routes.py, with the other files of a version; `PUT …/head`, which answers
with the model, is among the models' routes)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.aliases.moves import aliases_by_version
from app.auth.deps import ReadScope
from app.db import lookups
from app.db.lookups import get_model
from app.deps import SessionDep, StoreDep
from app.errors import NotFound
from app.mas.tensors_io import tensors_to_bytes
from app.task_free.stored import details as task_free_details
from app.versions import service
from app.versions.http import SAFETENSORS, SAFETENSORS_FILE, VersionNumber
from app.versions.importance import importance_download
from app.versions.schemas import EvaluationOut, VersionDetail, VersionOut
from app.versions.sources import data_sources

router = APIRouter(prefix="/v1/models/{name}", tags=["versions"], dependencies=[ReadScope])


@router.get("/versions", response_model=list[VersionOut])
def list_versions(name: str, session: SessionDep) -> list[VersionOut]:
    model = get_model(session, name)
    named = aliases_by_version(session=session, model=model)
    return [VersionOut.of(v, named.get(v.number, [])) for v in lookups.list_versions(session, model)]


@router.get("/versions/{number}", response_model=VersionDetail)
def get_version(name: str, number: VersionNumber, session: SessionDep, store: StoreDep) -> VersionDetail:
    model = get_model(session, name)
    named = aliases_by_version(session=session, model=model)
    version = lookups.get_version(session, model, number)
    return VersionDetail.of(version, named.get(number, []),
                            task_free_details(store, version.class_statistics, version.task_free, model.task_free),
                            data_sources(session, model, version))


@router.get("/versions/{number}/importance", response_class=Response, responses=SAFETENSORS_FILE)
def download_importance(
    name: str, number: VersionNumber, session: SessionDep, store: StoreDep,
    task: Annotated[str | None, Query(max_length=64, description="one task's Ω (S_t/n_t) instead of a part")] = None,
    part: Literal["total", "frozen", "open"] = "total",
) -> Response:
    """Ω of the version as safetensors: the total used by the next task's penalty (Σ_t S_t/n_t), or one
    task's estimate S_t/n_t (`task`, with its sample count in X-Lifelong-N). `frozen` and `open` are the
    first API's parts: every task's mean but the last, and the last task's running sum S with
    X-Lifelong-N-Open."""
    version = lookups.get_version(session, get_model(session, name), number)
    tensors, headers = importance_download(store, version.importance_parts, task, part)
    if tensors is None:
        raise NotFound(f"version {number} of model {name!r} has no importance estimate for task {task!r}")
    return Response(tensors_to_bytes(tensors), media_type=SAFETENSORS, headers=headers)


@router.get("/evaluation", response_model=EvaluationOut)
def get_evaluation(name: str, session: SessionDep) -> EvaluationOut:
    return EvaluationOut.model_validate(service.evaluation(session=session, model=get_model(session, name)))
