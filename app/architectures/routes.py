"""`GET /v1/architectures`: the installed kinds (built-ins and plugins) with their options."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from app.architectures.registry import installed_architectures
from app.auth.deps import ReadScope

router = APIRouter(prefix="/v1/architectures", tags=["architectures"], dependencies=[ReadScope])


class ArchitectureOut(BaseModel):
    kind: str
    input_kind: str  # "array" | "text" | "image": what its datasets and predictions carry
    options: dict[str, dict[str, Any]]  # option -> {"default", "description"}


@router.get("", response_model=list[ArchitectureOut])
def list_architectures() -> list[ArchitectureOut]:
    return [ArchitectureOut(kind=kind, input_kind=plugin.input_kind, options=plugin.options())
            for kind, plugin in installed_architectures().items()]
