"""Request and response shapes of predictions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.models.schemas import NAME_PATTERN
from app.versions.schemas import MAX_VERSION


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(pattern=NAME_PATTERN)
    inputs: list[Any]
    version: int | None = Field(None, ge=0, le=MAX_VERSION)
    probabilities: bool = False


class PredictOut(BaseModel):
    model: str
    version: int
    task: str
    predictions: list[int]
    probabilities: list[list[float]] | None = None
