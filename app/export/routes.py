"""HTTP routes of a version as a file: θ as a safetensors checkpoint, one task's network as ONNX or TorchScript.

They share the versions' router settings (the `versions` tag, `/v1/models/{name}`, read scope), so the
OpenAPI lists them with the other routes of versions.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from app.auth.deps import ReadScope
from app.db.lookups import get_model, get_version
from app.deps import ReadSessionDep, SessionDep, StoreDep
from app.export.checkpoint import checkpoint_file
from app.export.graphs import ExportFormat
from app.export.service import export_task
from app.names import NAME_PATTERN
from app.versions.http import SAFETENSORS_FILE, VersionNumber

router = APIRouter(prefix="/v1/models/{name}", tags=["versions"], dependencies=[ReadScope])

BINARY = "application/octet-stream"
EXPORT_FILE = {200: {"description": "an ONNX model (.onnx) or a TorchScript archive (.pt)",
                     "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}}}}


def bytes_download(data: bytes, *, filename: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """Bytes as a download, with the content-disposition header FileResponse would write."""
    download = Response(data, media_type=BINARY, headers=headers)
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
    version = get_version(session, model, number)
    return bytes_download(checkpoint_file(store, model, version), filename=f"{name}-v{number}.safetensors")


@router.get("/versions/{number}/export", response_class=Response, responses=EXPORT_FILE)
def export_version(
    name: str, number: VersionNumber, session: ReadSessionDep, store: StoreDep,
    task: Annotated[str, Query(pattern=NAME_PATTERN, description="the task whose head the network ends in")],
    format: Annotated[ExportFormat, Query(description="onnx (opset 17) or torchscript")] = "onnx",  # noqa: A002
) -> Response:
    """The trunk and `task`'s head at this version as one file, with the kind's preprocessing inside where a
    graph can hold it; outputs `logits` and `probabilities`. 422 names why a network cannot be exported."""
    exported = export_task(session=session, store=store, model_name=name, number=number, task=task, fmt=format)
    return bytes_download(exported.content, filename=exported.filename)
