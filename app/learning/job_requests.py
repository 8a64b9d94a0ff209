"""The request a job runs, as its worker reads it back from the job row: typed, and checked at claim.

The API stores the request normalised (defaults filled in, inline data stored as datasets named by id).
A worker reads it again, possibly after an upgrade, so it is validated once more when the job is
claimed: a row that does not fit fails the job as `invalid` before any work, and the job's code reads
typed fields instead of dictionary keys. Fields added since a job was queued take the value that
meant "as before" (no validation slice, the default checkpoint interval).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.learning.schemas import ImportanceOptions, Output, Reduction, Trainable, Variant, known_method
from app.mas.methods import PENALTY_FORMS
from app.mas.training import OPTIMIZERS
from app.mas.validation import DEFAULT_NEW_TASK_TOLERANCE, SELECTION_RULES, Selection


class TrainJobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    task: str
    num_classes: int = Field(ge=2)
    classes: list[str] | None = None
    train_dataset: str
    eval_dataset: str | None = None
    method: str
    lambda_: float | Literal["auto"] = Field(alias="lambda")
    lambda_grid: list[float] | None = None
    # Jobs queued before the constrained rule chose by the mean rule.
    lambda_selection: Literal[SELECTION_RULES] = "mean"
    new_task_tolerance: float = Field(DEFAULT_NEW_TASK_TOLERANCE, ge=0, le=1)
    penalty: Literal[PENALTY_FORMS] = "proximal"
    method_options: dict[str, float] | None = None
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    optimizer: Literal[OPTIMIZERS]
    lr: float = Field(gt=0)
    momentum: float = Field(ge=0, lt=1)
    head_warmup: Annotated[int, Field(ge=0)] | Literal["auto"] = 0  # jobs queued before the warm-up: none
    seed: int = Field(ge=0)
    importance: ImportanceOptions
    trainable: Trainable | None = None
    validation_fraction: float = Field(0.0, ge=0, lt=1)  # jobs queued before validation slices: none
    checkpoint_interval_s: float = Field(60.0, ge=0)

    _known_method = field_validator("method")(lambda method: known_method(method))

    @property
    def auto(self) -> bool:
        return self.lambda_ == "auto"

    @property
    def selection(self) -> Selection:
        return Selection(self.lambda_selection, self.new_task_tolerance)

    def trainable_spec(self) -> Any:
        """`trainable` as the architecture plugins take it ("all", "none" or {"last": N}), or None."""
        return self.trainable.model_dump() if isinstance(self.trainable, BaseModel) else self.trainable


class ImportanceJobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    task: str
    dataset: str
    mode: Literal["accumulate", "replace"]
    variant: Variant
    output: Output
    reduction: Reduction
