"""Request shapes of `POST …/tasks` (learn a task) and `POST …/importance` (refresh Ω)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.datasets.schemas import DataRef
from app.jobs.dispatch import Queue
from app.mas.methods import METHODS
from app.models.schemas import NAME_PATTERN
from app.versions.schemas import MAX_VERSION

Variant = Literal["global", "local"]
Output = Literal["l2", "vector"]
Reduction = Literal["per_sample", "batch"]


def _check_local_l2(variant: str, output: str) -> None:
    if variant == "local" and output != "l2":
        raise ValueError("the local variant measures each layer's own squared output norm: output must be 'l2'")


class ImportanceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: Literal["train", "none"] = "train"
    variant: Variant = "global"
    output: Output = "l2"
    reduction: Reduction = "per_sample"

    @model_validator(mode="after")
    def _compatible(self) -> ImportanceOptions:
        _check_local_l2(self.variant, self.output)
        return self


class LastBlocks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    last: int = Field(ge=0, le=1000, description="train the last N blocks of the trunk")


Trainable = Literal["all", "none"] | LastBlocks


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    task: str = Field(pattern=NAME_PATTERN)
    train: DataRef
    eval: DataRef | None = None
    num_classes: int | None = Field(None, ge=2, le=65536)
    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)
    method: str = "mas"
    lambda_: float = Field(1.0, alias="lambda", ge=0, le=1e12, allow_inf_nan=False)
    penalty: Literal["proximal", "gradient"] = "proximal"
    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1 << 20)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0, le=100, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    seed: int | None = Field(None, ge=0, lt=2**63)
    importance: ImportanceOptions = ImportanceOptions()
    queue: Queue | None = Field(None, description="cpu or gpu workers; default the model's queue")
    trainable: Trainable | None = Field(
        None, description="'all', 'none' (heads only) or {'last': N} blocks; default the model's own setting")

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}")
        return method


class ImportanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: DataRef
    task: str | None = Field(None, pattern=NAME_PATTERN)
    mode: Literal["accumulate", "replace"] = "accumulate"
    variant: Variant = "global"
    output: Output = "l2"
    reduction: Reduction = "per_sample"
    base_version: int | None = Field(None, ge=0, le=MAX_VERSION)
    queue: Queue | None = Field(None, description="cpu or gpu workers; default the model's queue")

    @model_validator(mode="after")
    def _compatible(self) -> ImportanceRequest:
        _check_local_l2(self.variant, self.output)
        return self
