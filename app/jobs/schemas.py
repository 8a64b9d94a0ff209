"""Response shape of a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import DatasetStateOut
from app.db.tables import Job
from app.mas.training import precision_for


class Progress(BaseModel):
    done: int
    total: int
    unit: str
    loss: float | None
    # Training: the epoch of the run in progress, and which λ of an "auto" search it trains.
    epoch: int | None = None
    epochs: int | None = None
    trial: int | None = None
    trials: int | None = None


class PromotionViolation(BaseModel):
    task: str
    rule: Literal["max_forgetting", "min_accuracy", "min_task_free_accuracy", "max_negative_flip_rate"]
    before: float | None = Field(description="the base version's accuracy on the task (max_forgetting)")
    after: float = Field(description="the new version's accuracy on the task")
    drop: float | None = Field(description="before − after (max_forgetting)")
    limit: float = Field(description="max_forgetting or min_accuracy")


class PromotionOut(BaseModel):
    promoted: bool = Field(description="whether the version became production")
    policy: str
    alias: str = Field(description="the alias the job moved: production, or candidate when the version was kept")
    reason: str
    violations: list[PromotionViolation] = Field(description="the guarded policy's rules the version broke")
    unchecked: list[str] = Field(description="tasks whose accuracy could not be checked (no eval set)")


class Checkpoint(BaseModel):
    step: int = Field(description="the optimizer steps its last checkpoint holds: a run again resumes there")


class JobResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    version: int
    lambda_: float | None = Field(None, alias="lambda", description="the λ the version was trained with")
    lambda_search: list[dict[str, Any]] | None = Field(
        None, description="λ 'auto': every λ tried with its validation accuracy and cross-entropy per task "
                          "and their means")
    lambda_selection: dict[str, Any] | None = Field(
        None, description="λ 'auto': how the λ was chosen: {rule, new_task_tolerance, basis ('accuracy', or "
                          "'loss' where a validation slice is too small for the tolerance), admissible (the λ "
                          "within the tolerance), lambda, reason}; None when nothing was searched")
    head_warmup: int | None = Field(
        None, description="passes the new task's head trained alone on the trunk's features before the task "
                          "(the request's head_warmup, 'auto' resolved); None for jobs before the warm-up")
    resumed_from_step: int | None = Field(None, description="the checkpoint this run continued from, if any")
    promotion: PromotionOut | None = Field(
        None, description="what the model's promotion policy made of the version; None for jobs before aliases")
    # A drift job's report (`version` is the version it tested): per task the statistic, p-value and verdict.
    tasks: dict[str, Any] | None = Field(None, description="drift: each task's statistic, p_value and drift verdict")
    nearest_task: str | None = Field(None, description="drift: the task whose reference is nearest the batch")
    alpha: float | None = Field(None, description="drift: the level before the correction for the number of tasks")
    n: int | None = Field(None, description="drift: rows in the batch")
    drift: bool | None = Field(None, description="drift: whether any task's verdict is positive")


class JobError(BaseModel):
    type: str
    message: str


def _precision(job: Job) -> str | None:
    """The precision the job's code chose for its device: training follows `precision_for`, Ω is fp32."""
    if job.device is None:
        return None
    return precision_for(torch.device(job.device)) if job.kind == "train" else "fp32"


class JobOut(BaseModel):
    id: str
    kind: str
    model: str
    state: str
    task: str | None
    base_version: int
    # The request as the job runs it: defaults filled in, inline data stored as datasets named by id.
    request: dict[str, Any]
    attempts: int
    cancel_requested: bool
    queue: str
    # The Celery node and torch device of the job's latest run (None until a worker claims it).
    worker: str | None
    device: str | None
    # How the job computed: "bf16" (training under bfloat16 autocast on CUDA, fp32 master weights; Ω
    # and the penalty in fp32) or "fp32"; None until a worker claims it.
    precision: str | None
    progress: Progress | None
    checkpoint: Checkpoint | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: JobResult | None
    error: JobError | None
    datasets: dict[str, DatasetStateOut] = Field(
        default_factory=dict, description="per field of `request` that names a dataset (train_dataset, "
                                          "eval_dataset, dataset): whether it still exists, or when it was deleted")

    @classmethod
    def of(cls, job: Job, model_name: str, datasets: dict[str, Any] | None = None) -> JobOut:
        progress = None
        if job.progress_total is not None:
            progress = Progress(done=job.progress_done or 0, total=job.progress_total,
                                unit=job.progress_unit or "steps", loss=job.progress_loss,
                                **(job.progress_detail or {}))
        return cls(
            id=job.id, kind=job.kind, model=model_name, state=job.state, task=job.task,
            base_version=job.base_version, request=dict(job.request), attempts=job.attempts,
            cancel_requested=job.cancel_requested,
            queue=job.queue, worker=job.worker, device=job.device, precision=_precision(job),
            progress=progress, created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            checkpoint=Checkpoint(step=job.checkpoint_step) if job.checkpoint_step is not None else None,
            result=JobResult(version=job.result_version, promotion=job.promotion, **(job.result_details or {}))
            if job.result_version is not None else None,
            error=JobError(type=job.error_type, message=job.error_message or "") if job.error_type else None,
            datasets={name: (datasets or {})[job.request[name]] for name in ("train_dataset", "eval_dataset", "dataset")
                      if job.request.get(name) in (datasets or {})},
        )
