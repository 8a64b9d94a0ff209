"""Request and response shapes of drift reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.datasets.schemas import DataRef
from app.db.tables import MAX_VERSION
from app.jobs.dispatch import Queue
from app.models.schemas import NAME_PATTERN
from app.request_schema import Integer, at_most_one_of


def _schema(schema: dict[str, Any]) -> None:
    at_most_one_of(schema, ["version", "alias"])


class DriftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_schema)

    data: DataRef = Field(description="a deployment batch (labels, if any, are ignored): a dataset id, or inline "
                                      "inputs or texts")
    version: Integer | None = Field(None, ge=0, le=MAX_VERSION, description="the version whose trunk and references "
                                                                            "test the batch (not with alias)")
    alias: str | None = Field(None, pattern=NAME_PATTERN, description="a version by alias; default production")
    queue: Queue | None = Field(None, description="cpu or gpu workers; default the model's queue")

    @model_validator(mode="after")
    def _one_version(self) -> DriftRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give either 'version' or 'alias', not both")
        return self


class DriftJobRequest(BaseModel):
    """A drift job's stored request, as the worker reads it back."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dataset: str


class DriftTaskOut(BaseModel):
    statistic: float = Field(description="MMD² (unbiased) between the task's reference features and the batch's")
    p_value: float = Field(description="by permutation: (1 + shuffles reaching the statistic) / (1 + shuffles)")
    drift: bool = Field(description="p_value ≤ alpha / the number of tasks (Bonferroni)")
    reference_rows: int
    at_this_trunk: bool = Field(description="whether the reference was measured with this version's trunk")


class DriftReportOut(BaseModel):
    id: int
    model: str
    version: int
    job: str
    source: str = Field(description="drift (a drift job) or importance (an importance refresh's batch)")
    n: int = Field(description="rows in the batch")
    alpha: float = Field(description="the model's drift_alpha; each task is tested at alpha / the number of tasks")
    drift: bool = Field(description="whether any task's verdict is positive")
    nearest_task: str | None = Field(description="the task whose reference is nearest the batch (smallest MMD²)")
    tasks: dict[str, DriftTaskOut]
    created_at: datetime
