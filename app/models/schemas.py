"""Request and response shapes of models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.dispatch import Queue

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="lower-case letters, digits, '_' and '-', up to 64")
    architecture: dict[str, Any]
    seed: int = Field(0, ge=0, lt=2**63)
    queue: Queue | None = Field(None, description="where this model's jobs go: cpu or gpu workers (default: cpu)")


class ModelOut(BaseModel):
    name: str
    architecture: dict[str, Any]
    seed: int
    head: int
    queue: str
    tasks: list[str]
    created_at: datetime
