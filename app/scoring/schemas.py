"""Request and response shapes of scoring."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.datasets.schemas import DataRef
from app.db.tables import MAX_VERSION
from app.models.schemas import NAME_PATTERN
from app.request_schema import Integer, at_most_one_of


def _schema(schema: dict[str, Any]) -> None:
    at_most_one_of(schema, ["version", "alias"])


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_schema)

    task: str | None = Field(None, pattern=NAME_PATTERN,
                             description="the task whose head is scored; without it, the task-free answer over every "
                                         "class learned (labels: global class indices, or class names / task/name)")
    data: DataRef = Field(description="labeled data: {\"dataset\": id}, or inline inputs or texts with labels")
    version: Integer | None = Field(None, ge=0, le=MAX_VERSION, description="a version by number (not with alias)")
    alias: str | None = Field(None, pattern=NAME_PATTERN,
                              description="a version by alias (not with version); default production")

    @model_validator(mode="after")
    def _one_version(self) -> EvaluateRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give either 'version' or 'alias', not both")
        return self


class ClassScore(BaseModel):
    index: int = Field(description="the class index, as predictions answer it")
    label: str | None = Field(None, description="the class name, for tasks learned from named labels")
    precision: float | None = Field(description="of the rows predicted as this class, the share labeled so;"
                                                " null when no row was predicted as it")
    recall: float | None = Field(description="of the rows labeled this class, the share predicted so;"
                                             " null when no row is labeled so")
    support: int = Field(description="rows labeled this class")
    predicted: int = Field(description="rows predicted as this class")


class CellCount(BaseModel):
    labeled: int = Field(description="the rows' labeled class index")
    predicted: int = Field(description="the class index they were predicted as")
    count: int = Field(description="rows labeled `labeled` and predicted `predicted`")


class TaskFreeScore(BaseModel):
    accuracy: float = Field(description="over every class learned")
    task_accuracy: float = Field(description="how often the answer's task is the row's task")
    ece: float | None = Field(description="expected calibration error of the confidence (15 equal-width bins)")
    unknown: float = Field(description="the share of rows the answer called unknown")


class EvaluateOut(BaseModel):
    model: str
    version: int
    alias: str | None = Field(None, description="the alias the request named, which named `version`")
    task: str | None = Field(None, description="the task scored (absent: task-free, over every class learned)")
    predictor: str | None = Field(None, description="task-free: the model's predictor that answered")
    task_free: TaskFreeScore | None = None
    n: int = Field(description="rows scored")
    accuracy: float
    classes: int | None = Field(None, description="the classes scored (the task's, or every class learned)")
    per_class: list[ClassScore] = Field(description="every class when `truncated` is false; else the "
                                        "LIFELONG_MAX_CONFUSION_CLASSES classes with the most support")
    confusion_matrix: list[list[int]] | None = Field(
        description="[labeled class][predicted class] row counts; null when `truncated` (more classes than "
                    "LIFELONG_MAX_CONFUSION_CLASSES): see `top_confusions`")
    top_confusions: list[CellCount] = Field(
        default_factory=list, description="the largest off-diagonal cells of the confusion matrix, largest first, "
                                          "at most LIFELONG_MAX_CONFUSION_CLASSES")
    truncated: bool = Field(False, description="whether the classes outnumber LIFELONG_MAX_CONFUSION_CLASSES, so "
                                               "that per_class is partial and confusion_matrix is null")
    parent: int | None = Field(None, description="the version this one was made from: flips are counted against it")
    negative_flips: dict[str, float] = Field(
        default_factory=dict, description="per task (task-free: per task of the rows' labels), the share of rows the "
                                          "parent answered right and this version answers wrong")
    positive_flips: dict[str, float] = Field(default_factory=dict,
                                             description="per task, the share the parent answered wrong and this "
                                                         "version answers right")
