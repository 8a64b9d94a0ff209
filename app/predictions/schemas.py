"""Request and response shapes of predictions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models.schemas import NAME_PATTERN
from app.versions.schemas import MAX_VERSION


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(pattern=NAME_PATTERN)
    inputs: list[Any] | None = Field(None, description="rows of numbers, for array models")
    texts: list[str] | None = Field(None, description="strings, for text models")
    version: int | None = Field(None, ge=0, le=MAX_VERSION)
    probabilities: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.inputs is None) == (self.texts is None):
            raise ValueError("give either 'inputs' (rows of numbers) or 'texts' (strings), not both and not neither")
        return self


class PredictOut(BaseModel):
    model: str
    version: int
    task: str
    predictions: list[int]
    labels: list[str] | None = Field(None, description="class names, for tasks learned from named labels")
    probabilities: list[list[float]] | None = None
