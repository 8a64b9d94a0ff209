"""A model's `lambda_selection` option: how λ "auto" chooses among its trials when a task request does not say.

The rule of MAS.md: `constrained` keeps the λ with the least forgetting on the earlier tasks' validation
slices among those within `new_task_tolerance` of the best new-task validation accuracy (the new task stays
close to what fine-tuning would reach); `mean` keeps the best mean accuracy over every task's slice. A team
whose new tasks matter more (or less) than the old ones sets it once on the model rather than on every
request; a request's own `lambda_selection` and `new_task_tolerance` still win.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.mas.validation import DEFAULT_NEW_TASK_TOLERANCE, DEFAULT_SELECTION, SELECTION_RULES


class LambdaSelection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rule: Literal[SELECTION_RULES] = Field(
        DEFAULT_SELECTION, description="'constrained': the least forgetting among the λ within new_task_tolerance "
                                       "of the best new-task validation accuracy; 'mean': the best mean accuracy "
                                       "over every task's validation slice")
    new_task_tolerance: float = Field(
        DEFAULT_NEW_TASK_TOLERANCE, ge=0, le=1, allow_inf_nan=False,
        description="constrained: how far below the best new-task validation accuracy a λ may fall (0.02: 2 points)")

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> LambdaSelection:
        """The option as stored on a model (NULL: the defaults, as for models made before migration 0015)."""
        return cls.model_validate(stored or {})


class LambdaSelectionPatch(BaseModel):
    """A change of the model's λ selection; the field not given stays."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rule: Literal[SELECTION_RULES] | None = None
    new_task_tolerance: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)

    def applied_to(self, stored: dict[str, Any] | None) -> dict[str, Any]:
        return LambdaSelection.model_validate(
            {**LambdaSelection.of(stored).model_dump(), **self.model_dump(exclude_none=True)}).model_dump()
