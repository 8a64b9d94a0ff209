"""Request and response shapes of datasets, and the data reference every data-taking request uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DataRef(BaseModel):
    """Either `{"dataset": id}` or inline `{"inputs": [[...]], "labels": [...]}`."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, min_length=1, max_length=64)
    inputs: list[Any] | None = None
    labels: list[int] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataRef:
        if (self.dataset is None) == (self.inputs is None):
            raise ValueError("give either 'dataset' (an id) or inline 'inputs', not both and not neither")
        if self.dataset is not None and self.labels is not None:
            raise ValueError("'labels' go with inline 'inputs'; a dataset carries its own")
        return self


class DatasetOut(BaseModel):
    id: str
    n: int
    input_shape: list[int]
    has_labels: bool
    max_label: int | None
    sha256: str
    bytes: int
    format: str
    created_at: datetime
