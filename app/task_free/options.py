"""A model's `task_free` option: which predictor answers requests that name no task, and how often held-back
rows may be called unknown. Every predictor is fitted with every version, so a change applies at once."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.mas.task_free import DEFAULT_PREDICTOR, DEFAULT_UNKNOWN_RATE

Predictor = Literal["max_softmax", "energy", "ncm", "ridge", "ridge_routed"]
DEFAULT_PROJECTION = 1024
MAX_PROJECTION = 8192


class TaskFreeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    predictor: Predictor = Field(DEFAULT_PREDICTOR, description="which predictor answers requests that name no task "
                                 "(default: the one that won benchmarks/task_free.py)")
    unknown_rate: float = Field(DEFAULT_UNKNOWN_RATE, ge=0, le=0.5, allow_inf_nan=False,
                                description="the largest share of held-back in-distribution rows called unknown")
    projection: int = Field(DEFAULT_PROJECTION, ge=0, le=MAX_PROJECTION,
                            description="width of RanPAC's random projection for the ridge head (0: none, the ridge "
                                        "head on the trunk's features); set at creation only, since every task's "
                                        "statistics are kept in it")

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> TaskFreeOptions:
        """The options as stored on a model (NULL: the defaults)."""
        return cls.model_validate(stored or {})


class TaskFreePatch(BaseModel):
    """A change of some of a model's task-free options; the others stay (`projection` cannot change)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    predictor: Predictor | None = None
    unknown_rate: float | None = Field(None, ge=0, le=0.5, allow_inf_nan=False)
