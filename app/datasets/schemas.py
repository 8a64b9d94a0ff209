"""Request and response shapes of datasets, and the data reference every data-taking request uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.request_schema import Integer, exactly_one_of

DatasetKind = Literal["array", "text", "image"]


class DataRef(BaseModel):
    """`{"dataset": id}`, inline arrays `{"inputs": [[...]], "labels": [...]}` or inline texts
    `{"texts": [...], "labels": [...]}`; labels are integers or, with texts, class names."""

    # strict, as every request model: JSON types as the OpenAPI says them (app/request_schema.py).
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=lambda schema: exactly_one_of(
        schema, {"dataset": "StoredData", "inputs": "InlineArrays", "texts": "InlineTexts"},
        absent_with={"dataset": ["labels"]}))

    dataset: str | None = Field(None, min_length=1, max_length=64)
    inputs: list[Any] | None = None
    texts: list[Any] | None = None
    labels: list[Integer] | list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataRef:
        given = [name for name in ("dataset", "inputs", "texts") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give either 'dataset' (an id), inline 'inputs' or inline 'texts': exactly one"
                             f" (got {', '.join(given) or 'none'})")
        if self.dataset is not None and self.labels is not None:
            raise ValueError("'labels' go with inline 'inputs' or 'texts'; a dataset carries its own")
        return self


class DatasetOut(BaseModel):
    """A stored dataset. `input_shape` is the shape of one row of an array dataset, and [] for text
    and image datasets, whose items (a string, an image file) have no fixed shape. `classes` are the
    class names when labels were given as names (label i is classes[i]), else None."""

    id: str
    kind: DatasetKind = "array"
    n: int
    input_shape: list[int]
    has_labels: bool
    max_label: int | None
    classes: list[str] | None = None
    sha256: str
    bytes: int
    format: str
    created_at: datetime
    retain_until: datetime | None = Field(
        None, description="when the sweeper deletes the dataset (given at upload); None: "
                          "LIFELONG_DATASET_RETENTION_DAYS after created_at, or never when that is unset")


class DatasetStateOut(BaseModel):
    """A dataset a job or version names: whether it still exists, and if not, when and why it was deleted."""

    id: str
    exists: bool
    deleted_at: datetime | None = Field(None, description="None while it exists (or for an id never stored)")
    deleted_by: Literal["request", "retention"] | None = Field(
        None, description="request: DELETE /v1/datasets/{id}; retention: the sweeper")
