"""Request shapes of `POST …/tasks` (learn a task) and `POST …/importance` (refresh Ω)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.datasets.schemas import DataRef
from app.db.tables import MAX_VERSION
from app.jobs.dispatch import Queue
from app.mas.head_warmup import MAX_WARMUP_EPOCHS, PRETRAINED_WARMUP_EPOCHS
from app.mas.importance import OUTPUTS, REDUCTIONS, VARIANTS
from app.mas.methods import METHODS, PENALTY_FORMS
from app.mas.training import OPTIMIZERS
from app.mas.validation import DEFAULT_GRID, DEFAULT_NEW_TASK_TOLERANCE, SELECTION_RULES
from app.models.schemas import MAX_SEED, NAME_PATTERN
from app.request_schema import Integer, at_most_one_of

# The option lists are declared once, in app/mas, and only named here.
Variant = Literal[VARIANTS]
Output = Literal[OUTPUTS]
Reduction = Literal[REDUCTIONS]


def known_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}")
    return method


def _check_local_l2(variant: str, output: str) -> None:
    if variant == "local" and output != "l2":
        raise ValueError("the local variant measures each layer's own squared output norm: output must be 'l2'")


class ImportanceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    on: Literal["train", "none"] = "train"
    variant: Variant = "global"
    output: Output = "l2"
    reduction: Reduction = "per_sample"

    @model_validator(mode="after")
    def _compatible(self) -> ImportanceOptions:
        _check_local_l2(self.variant, self.output)
        return self


class LastBlocks(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    last: Integer = Field(ge=0, le=1000, description="train the last N blocks of the trunk")


Trainable = Literal["all", "none"] | LastBlocks


def _one_base_in_schema(schema: dict) -> None:
    at_most_one_of(schema, ["base_version", "base_alias"])


class TaskRequest(BaseModel):
    # Strict: JSON types exactly as the OpenAPI states them (app/request_schema.py).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True,
                              json_schema_extra=_one_base_in_schema)

    task: str = Field(pattern=NAME_PATTERN)
    train: DataRef
    eval: DataRef | None = None
    num_classes: Integer | None = Field(None, ge=2, le=65536)
    base_version: Integer | None = Field(None, ge=0, le=MAX_VERSION, description="default: production")
    base_alias: str | None = Field(None, pattern=NAME_PATTERN, description="the base by alias (not with base_version)")
    method: str = "mas"
    lambda_: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] | Literal["auto"] = Field(
        "auto", alias="lambda",
        description="the penalty's strength, or 'auto': each λ of `lambda_grid` is trained and "
                    "`lambda_selection` chooses on every task's validation slice")
    lambda_grid: list[Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]] | None = Field(
        None, min_length=2, max_length=8, description=f"the λ tried by 'auto'; default {list(DEFAULT_GRID)}")
    lambda_selection: Literal[SELECTION_RULES] | None = Field(
        None, description="how 'auto' chooses: 'constrained' (the least forgetting on the earlier tasks' "
                          "validation slices among the λ within new_task_tolerance of the best new-task "
                          "validation accuracy) or 'mean' (the best mean accuracy over every task's slice); "
                          "default: the model's, else 'constrained'")
    new_task_tolerance: float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False,
        description="constrained: how far below the best new-task validation accuracy a λ may fall "
                    f"(0.02: 2 points); default: the model's, else {DEFAULT_NEW_TASK_TOLERANCE}")
    checkpoint_interval_s: float = Field(
        60.0, ge=0, le=86_400, description="the job saves its training state at most this often, and a job "
                                           "stopped or killed resumes from its last save; 0: after every step")
    validation_fraction: float = Field(
        0.1, ge=0, le=0.5, description="the share of the training data held back as this task's validation "
                                       "slice (never trained on); 0 turns it off, and then 'auto' is refused")
    penalty: Literal[PENALTY_FORMS] = "proximal"
    method_options: dict[str, float] | None = Field(
        None, description="the method's own options: si {damping}, lwf {temperature}; defaults filled in")
    epochs: Integer = Field(20, ge=1, le=100_000)
    batch_size: Integer = Field(64, ge=1, le=1 << 20)
    optimizer: Literal[OPTIMIZERS] = "sgd"
    lr: float = Field(0.05, gt=0, le=100, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    head_warmup: Literal["auto"] | Integer = Field(
        "auto", description="passes a new task's head trains alone on the frozen trunk's features before the "
                            "task trains (at most 20,000 steps); 'auto': "
                            f"{PRETRAINED_WARMUP_EPOCHS} on a trunk with pretrained weights, 0 on one without")
    seed: Integer | None = Field(None, ge=0, le=MAX_SEED)
    importance: ImportanceOptions = ImportanceOptions()
    queue: Queue | None = Field(None, description="cpu or gpu workers; default the model's queue")
    trainable: Trainable | None = Field(
        None, description="'all', 'none' (heads only) or {'last': N} blocks; default the model's own setting")

    @model_validator(mode="after")
    def _auto_needs_validation(self) -> TaskRequest:
        if self.lambda_ == "auto" and self.validation_fraction == 0:
            raise ValueError("lambda 'auto' chooses λ on validation data: give a validation_fraction above 0, "
                             "or a number for lambda")
        if self.lambda_grid is not None and self.lambda_ != "auto":
            raise ValueError("lambda_grid is the list that lambda 'auto' searches: send it with lambda 'auto'")
        if self.lambda_ != "auto" and (self.lambda_selection is not None or self.new_task_tolerance is not None):
            raise ValueError("lambda_selection and new_task_tolerance say how lambda 'auto' chooses: send them "
                             "with lambda 'auto'")
        if self.lambda_selection == "mean" and self.new_task_tolerance is not None:
            raise ValueError("new_task_tolerance belongs to lambda_selection 'constrained'; 'mean' has none")
        return self

    @model_validator(mode="after")
    def _one_base(self) -> TaskRequest:
        _check_one_base(self.base_version, self.base_alias)
        return self

    _known_method = field_validator("method")(lambda method: known_method(method))

    @field_validator("head_warmup")
    @classmethod
    def _warmup_in_range(cls, passes: int | str) -> int | str:
        if passes != "auto" and not 0 <= int(passes) <= MAX_WARMUP_EPOCHS:
            raise ValueError(f"head_warmup is 'auto' or a number of passes from 0 to {MAX_WARMUP_EPOCHS}")
        return passes

    @model_validator(mode="after")
    def _options_the_method_takes(self) -> TaskRequest:
        """What the method does not use is refused, not ignored (app/mas/methods: METHODS)."""
        spec, sent = METHODS[self.method], self.model_fields_set
        if not spec.anchored and "penalty" in sent:
            raise ValueError(f"method {self.method!r} has no quadratic penalty: leave out `penalty`")
        if not spec.uses_lambda and sent & {"lambda_", "lambda_grid", "lambda_selection", "new_task_tolerance"}:
            raise ValueError(f"method {self.method!r} has no λ: leave out `lambda`, `lambda_grid`, "
                             "`lambda_selection` and `new_task_tolerance`")
        self.method_options = spec.checked_options(self.method, self.method_options)
        return self


def _check_one_base(base_version: int | None, base_alias: str | None) -> None:
    if base_version is not None and base_alias is not None:
        raise ValueError("give either base_version or base_alias, not both")


class ImportanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_one_base_in_schema)

    data: DataRef
    task: str | None = Field(None, pattern=NAME_PATTERN)
    mode: Literal["accumulate", "replace"] = "accumulate"
    variant: Variant = "global"
    output: Output = "l2"
    reduction: Reduction = "per_sample"
    base_version: Integer | None = Field(None, ge=0, le=MAX_VERSION, description="default: production")
    base_alias: str | None = Field(None, pattern=NAME_PATTERN, description="the base by alias (not with base_version)")
    queue: Queue | None = Field(None, description="cpu or gpu workers; default the model's queue")

    @model_validator(mode="after")
    def _compatible(self) -> ImportanceRequest:
        _check_local_l2(self.variant, self.output)
        _check_one_base(self.base_version, self.base_alias)
        return self
