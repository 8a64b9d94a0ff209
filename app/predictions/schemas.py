"""Request and response shapes of predictions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.db.tables import MAX_VERSION
from app.names import NAME_PATTERN
from app.request_schema import Integer, at_most_one_of, exactly_one_of


def _schema(schema: dict[str, Any]) -> None:
    exactly_one_of(schema, {"inputs": "PredictArrays", "texts": "PredictTexts"})
    at_most_one_of(schema, ["version", "alias"])


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_schema)

    task: str | None = Field(None, pattern=NAME_PATTERN,
                             description="the task whose head answers; without it, the answer covers every class "
                                         "learned (task-free)")
    inputs: list[Any] | None = Field(None, description="rows of numbers, for array models")
    texts: list[str] | None = Field(None, description="strings, for text models")
    version: Integer | None = Field(None, ge=0, le=MAX_VERSION, description="a version by number (not with alias)")
    alias: str | None = Field(None, pattern=NAME_PATTERN,
                              description="a version by alias (not with version); default production")
    probabilities: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.inputs is None) == (self.texts is None):
            raise ValueError("give either 'inputs' (rows of numbers) or 'texts' (strings), not both and not neither")
        if self.version is not None and self.alias is not None:
            raise ValueError("give either 'version' or 'alias', not both")
        return self


class PredictQuery(BaseModel):
    """The query of a POST prediction: what an .npy, image or multipart body cannot say (a JSON body says it
    in the body). Validated by the route itself, and only when a query is sent (app/predictions/routes.py)."""

    model_config = ConfigDict(extra="ignore")

    task: str | None = Field(None, pattern=NAME_PATTERN,
                             description="with an .npy, image or multipart body; without it the answer is task-free")
    version: int | None = Field(None, ge=0, le=MAX_VERSION, description="with an .npy body")
    alias: str | None = Field(None, pattern=NAME_PATTERN,
                              description="a version by alias, not with version (default: production)")
    probabilities: bool = Field(False, description="with an .npy body")


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """`model`'s fields as OpenAPI query parameters, as FastAPI writes those it validates itself."""
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": False, "schema": field,
             **({"description": field["description"]} if "description" in field else {})}
            for name, field in schema["properties"].items()]


class ClassOut(BaseModel):
    task: str
    label: str


class PredictOut(BaseModel):
    model: str
    version: int
    alias: str | None = Field(None, description="the alias the request named, which named `version`")
    task: str | None = Field(None, description="the task the request named (absent: a task-free answer)")
    predictions: list[int] = Field(description="class indices: within the task, or (task-free) over every class "
                                               "learned, in the order of `classes`")
    labels: list[str] | None = Field(None, description="class names, for tasks learned from named labels; task-free: "
                                                       "always, `task/index` where a task's labels were numbers")
    probabilities: list[list[float]] | None = None
    tasks: list[str] | None = Field(None, description="task-free: the task of each row's class")
    confidence: list[float] | None = Field(None, description="task-free: the calibrated probability of each row's "
                                                             "class (0–1)")
    unknown: list[bool] | None = Field(None, description="task-free: the row is unlike every class learned (its "
                                                         "score is below the version's threshold)")
    score: list[float] | None = Field(None, description="task-free: how familiar the row is (minus the squared "
                                                        "Mahalanobis distance to the nearest class mean)")
    threshold: float | None = Field(None, description="task-free: rows scoring below it are unknown")
    predictor: str | None = Field(None, description="task-free: the model's predictor that answered")
    classes: list[ClassOut] | None = Field(None, description="task-free, with probabilities: every class learned, "
                                                             "in the order of the probabilities")
