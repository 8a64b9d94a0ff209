"""Request and response shapes of models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="lower-case letters, digits, '_' and '-', up to 64")
    architecture: dict[str, Any]
    seed: int = Field(0, ge=0, lt=2**63)


class ModelOut(BaseModel):
    name: str
    architecture: dict[str, Any]
    seed: int
    head: int
    tasks: list[str]
    created_at: datetime
