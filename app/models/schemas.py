"""Request and response shapes of models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.db.promotion import DEFAULT_MAX_FORGETTING, Policy
from app.jobs.dispatch import Queue
from app.mas.drift import DEFAULT_ALPHA
from app.models.lambda_selection import LambdaSelection, LambdaSelectionPatch
from app.names import NAME_PATTERN
from app.request_schema import Integer, not_null, refuse_null
from app.task_free.options import TaskFreeOptions, TaskFreePatch

# The largest integer every JSON parser reads exactly (I-JSON, RFC 7493): JavaScript's and the float64 of
# most schema validators round larger ones, so a bound of 2**63 could not be checked by a client.
MAX_SEED = 2**53 - 1


class Promotion(BaseModel):
    """When a job's version becomes production (app/aliases/promotion.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    policy: Policy = Field("guarded", description="auto: every successful job; manual: never (it waits as "
                                                  "candidate); guarded: when no earlier task forgot too much")
    max_forgetting: float = Field(DEFAULT_MAX_FORGETTING, ge=0, le=1, allow_inf_nan=False,
                                  description="guarded: the most an earlier task's accuracy may drop (0.05: 5 points)")
    min_accuracy: float | None = Field(None, ge=0, le=1, allow_inf_nan=False,
                                       description="guarded: the least accuracy on the new task's eval set")
    min_task_free_accuracy: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="guarded: the least task-free accuracy (over every class learned, with the model's predictor) "
                    "on the eval sets of every task")
    max_negative_flip_rate: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="guarded: the largest share of an earlier task's eval rows that the base version answered right "
                    "and the new version answers wrong (null: not checked)")


class PromotionPatch(BaseModel):
    """A change of some of a model's promotion settings; the others stay (send min_accuracy null to drop it)."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra=lambda schema: not_null(schema, ["policy", "max_forgetting"]))

    policy: Policy | None = None
    max_forgetting: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    min_accuracy: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    min_task_free_accuracy: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    max_negative_flip_rate: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)

    _refuse_null = field_validator("policy", "max_forgetting")(refuse_null)


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    promotion: PromotionPatch | None = None
    task_free: TaskFreePatch | None = Field(None, description="how requests that name no task are answered")
    drift_alpha: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                      description="the level of drift reports' verdicts")
    lambda_selection: LambdaSelectionPatch | None = Field(
        None, description="how λ 'auto' chooses when a task request does not say")


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=NAME_PATTERN, description="lower-case letters, digits, '_' and '-', up to 64")
    architecture: dict[str, Any]
    seed: Integer = Field(0, ge=0, le=MAX_SEED)
    queue: Queue | None = Field(None, description="where this model's jobs go: cpu or gpu workers (default: cpu)")
    promotion: Promotion = Field(Promotion(), description="when a job's version becomes production "
                                                          "(default: guarded, max_forgetting 0.05)")
    task_free: TaskFreeOptions = Field(TaskFreeOptions(), description="how requests that name no task are answered")
    drift_alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=1, allow_inf_nan=False,
                               description="the level of drift reports' verdicts, before Bonferroni over the tasks")
    lambda_selection: LambdaSelection = Field(
        LambdaSelection(), description="how λ 'auto' chooses when a task request does not say "
                                       "(default: constrained, new_task_tolerance 0.02)")


class ModelOut(BaseModel):
    name: str
    architecture: dict[str, Any]
    seed: int
    head: int = Field(description="the version the alias production names (what predictions and new tasks use)")
    queue: str
    promotion: Promotion
    task_free: TaskFreeOptions
    drift_alpha: float = Field(description="the level of drift reports' verdicts, before Bonferroni over the tasks")
    lambda_selection: LambdaSelection = Field(description="how λ 'auto' chooses when a task request does not say")
    aliases: dict[str, int] = Field(description="every alias and the version it names, production first")
    tasks: list[str]
    created_at: datetime
