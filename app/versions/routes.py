"""HTTP routes of versions: list, detail, checkpoint and importance downloads, head, evaluation."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response

from app.aliases.moves import aliases_by_version
from app.aliases.routes import MoverDep
from app.auth.deps import ReadScope, WriteScope
from app.deps import SessionDep, StoreDep
from app.errors import NotFound
from app.export.checkpoint import checkpoint_file
from app.mas.tensors_io import tensors_to_bytes
from app.models.routes import shape_model
from app.models.schemas import ModelOut
from app.models.service import get_model
from app.task_free.stored import details as task_free_details
from app.versions import service
from app.versions.importance import importance_download
from app.versions.schemas import MAX_VERSION, EvaluationOut, HeadIn, VersionDetail, VersionOut
from app.versions.sources import data_sources

router = APIRouter(prefix="/v1/models/{name}", tags=["versions"], dependencies=[ReadScope])

SAFETENSORS = "application/octet-stream"
# The downloads' 200 in the OpenAPI: a binary safetensors file, not JSON.
SAFETENSORS_FILE = {200: {"description": "a safetensors file",
                          "content": {SAFETENSORS: {"schema": {"type": "string", "format": "binary"}}}}}
VersionNumber = Annotated[int, Path(ge=0, le=MAX_VERSION)]


@router.get("/versions", response_model=list[VersionOut])
def list_versions(name: str, session: SessionDep) -> list[VersionOut]:
    model = get_model(session, name)
    named = aliases_by_version(session, model)
    return [VersionOut.of(v, named.get(v.number, [])) for v in service.list_versions(session, model)]


@router.get("/versions/{number}", response_model=VersionDetail)
def get_version(name: str, number: VersionNumber, session: SessionDep, store: StoreDep) -> VersionDetail:
    model = get_model(session, name)
    named = aliases_by_version(session, model)
    version = service.get_version(session, model, number)
    return VersionDetail.of(version, named.get(number, []),
                            task_free_details(store, version.class_statistics, version.task_free, model.task_free),
                            data_sources(session, model, version))


def bytes_download(data: bytes, *, filename: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """Safetensors bytes as a download, with the content-disposition header FileResponse would write."""
    download = Response(data, media_type=SAFETENSORS, headers=headers)
    if filename is not None:
        # The same header FileResponse writes, so a client cannot tell the stores apart.
        quoted = quote(filename)
        download.headers["content-disposition"] = (
            f'attachment; filename="{filename}"' if quoted == filename else f"attachment; filename*=utf-8''{quoted}"
        )
    return download


@router.get("/versions/{number}/checkpoint", response_class=FileResponse, responses=SAFETENSORS_FILE)
def download_checkpoint(name: str, number: VersionNumber, session: SessionDep, store: StoreDep) -> Response:
    """θ of the version as a safetensors file; its metadata names the model, version, architecture and tasks."""
    model = get_model(session, name)
    version = service.get_version(session, model, number)
    return bytes_download(checkpoint_file(store, model, version), filename=f"{name}-v{number}.safetensors")


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
    version = service.get_version(session, get_model(session, name), number)
    tensors, headers = importance_download(store, version.importance_parts, task, part)
    if tensors is None:
        raise NotFound(f"version {number} of model {name!r} has no importance estimate for task {task!r}")
    return Response(tensors_to_bytes(tensors), media_type=SAFETENSORS, headers=headers)


@router.put("/head", response_model=ModelOut, dependencies=[WriteScope])
def set_head(name: str, body: HeadIn, session: SessionDep, by: MoverDep) -> ModelOut:
    """Move production to a version (the first API's name for it; recorded in production's history)."""
    model = service.set_head(session, get_model(session, name), body.version, by=by, reason=body.reason)
    session.commit()
    return shape_model(session, model)


@router.get("/evaluation", response_model=EvaluationOut)
def get_evaluation(name: str, session: SessionDep) -> EvaluationOut:
    return EvaluationOut.model_validate(service.evaluation(session, get_model(session, name)))
