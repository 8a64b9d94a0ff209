"""`GET /v1/models/{name}/versions/{number}/export`: one task's network as an ONNX or TorchScript download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.auth.deps import ReadScope
from app.deps import ReadSessionDep, StoreDep
from app.export.graphs import ExportFormat
from app.export.service import export_task
from app.models.schemas import NAME_PATTERN
from app.versions.routes import VersionNumber, bytes_download

router = APIRouter(prefix="/v1/models/{name}", tags=["versions"], dependencies=[ReadScope])

BINARY = "application/octet-stream"
EXPORT_FILE = {200: {"description": "an ONNX model (.onnx) or a TorchScript archive (.pt)",
                     "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/versions/{number}/export", response_class=Response, responses=EXPORT_FILE)
def export_version(
    name: str, number: VersionNumber, session: ReadSessionDep, store: StoreDep,
    task: Annotated[str, Query(pattern=NAME_PATTERN, description="the task whose head the network ends in")],
    format: Annotated[ExportFormat, Query(description="onnx (opset 17) or torchscript")] = "onnx",  # noqa: A002
) -> Response:
    """The trunk and `task`'s head at this version as one file, with the kind's preprocessing inside where a
    graph can hold it; outputs `logits` and `probabilities`. 422 names why a network cannot be exported."""
    exported = export_task(session, store, model_name=name, number=number, task=task, fmt=format)
    return bytes_download(exported.content, filename=exported.filename)
