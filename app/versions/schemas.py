"""Response shapes of versions, the head and the evaluation matrix."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import DatasetStateOut
from app.db.tables import MAX_VERSION, Version
from app.request_schema import Integer


class VersionOut(BaseModel):
    version: int
    parent: int | None
    kind: str
    task: str | None
    job: str | None
    created_at: datetime
    aliases: list[str] = Field([], description="the aliases that name this version (production first)")

    @classmethod
    def of(cls, v: Version, aliases: list[str] | None = None) -> VersionOut:
        return cls(version=v.number, parent=v.parent, kind=v.kind, task=v.task, job=v.job_id, created_at=v.created_at,
                   aliases=aliases or [])


class LayerImportance(BaseModel):
    mean: float
    max: float


class TaskImportanceOut(BaseModel):
    n: int = Field(description="samples the estimate sums over")
    measure: str | None = Field(description="mas, fisher (EWC), path-integral (SI), uniform (L2); "
                                            "None for estimates carried over from before per-task importance")
    sha256: str = Field(description="the blob of S_t, shared by every version that did not change it")
    layers: dict[str, LayerImportance] | None = Field(
        description="mean and max of S_t/n_t per parameter; None for estimates carried over by a migration")


class ImportanceOut(BaseModel):
    n_open: int = Field(description="the last task's sample count (the first API's open estimate)")
    layers: dict[str, LayerImportance] = Field(description="mean and max of the total Ω = Σ_t S_t/n_t")
    tasks: dict[str, TaskImportanceOut] = Field(description="each task's own estimate, in the order learned")

    @classmethod
    def of(cls, v: Version) -> ImportanceOut:
        parts = v.importance_parts
        return cls(
            n_open=parts[-1]["n"] if parts else 0, layers=v.importance,
            tasks={p["task"]: TaskImportanceOut(n=p["n"], measure=p.get("measure"), sha256=p["blob"],
                                                layers=p.get("layers")) for p in parts},
        )


class ThetaSource(DatasetStateOut):
    task: str = Field(description="the task θ was trained on this dataset for")


class StatisticsSource(BaseModel):
    dataset: DatasetStateOut = Field(description="the task's training set, which its statistics were measured on")
    at_this_trunk: bool = Field(description="measured with this version's trunk (else kept from an older one)")
    kept_because: str | None = Field(description="why they were kept from an older trunk (e.g. the training "
                                                 "dataset was deleted); None when measured at this trunk")


class DataSources(BaseModel):
    """Which datasets each derived part of the version came from, and whether they still exist. The parts are
    the version's own blobs: deleting a dataset removes none of them (docs/data-retention.md)."""

    theta: list[ThetaSource] = Field(description="θ: the training set of every task along the lineage, in turn")
    importance: dict[str, list[DatasetStateOut]] = Field(
        description="each task's Ω: its training set and the data of each importance refresh since")
    class_statistics: dict[str, StatisticsSource] = Field(
        description="each task's class statistics and drift reference features")
    accuracy: dict[str, DatasetStateOut | None] = Field(description="each task's eval set (None: it has none)")
    deleted: list[str] = Field(description="the datasets above that no longer exist")


class VersionDetail(VersionOut):
    tasks: list[str]
    num_classes: dict[str, int]
    # Class names per task learned from named labels (index order), and a task's own `trainable`.
    classes: dict[str, list[str]]
    trainable: dict[str, Any]
    accuracy: dict[str, float]
    importance: ImportanceOut
    theta_sha256: str
    made_by: dict[str, Any] | None = Field(
        description="the job's full request (datasets by id), lifelong version, worker, device, precision, "
                    "wall time and loss per epoch; None for version 0 and versions made before it was kept")
    task_free: dict[str, Any] | None = Field(
        None, description="answers without a task: the model's predictor, its held-back accuracy, task accuracy, "
                          "calibration error (ECE) and unknown threshold; every predictor's held-back and eval "
                          "scores; per task whether its class statistics were measured with this version's trunk. "
                          "None for version 0 and versions made before task-free answers")

    flips: dict[str, Any] = Field(
        default_factory=dict, description="a train version's flips against its parent on each earlier task's eval set: "
                                          "{task: {negative, positive, n}} (empty: none measured)")
    data: DataSources | None = Field(None, description="which datasets θ, Ω, class statistics and accuracy came "
                                                       "from, and whether each still exists")

    @classmethod
    def of(cls, v: Version, aliases: list[str] | None = None,
           task_free: dict[str, Any] | None = None, data: dict[str, Any] | None = None) -> VersionDetail:
        return cls(
            **VersionOut.of(v, aliases).model_dump(),
            tasks=[t["name"] for t in v.tasks],
            num_classes={t["name"]: t["num_classes"] for t in v.tasks},
            classes={t["name"]: t["classes"] for t in v.tasks if t.get("classes")},
            trainable={t["name"]: t["trainable"] for t in v.tasks if t.get("trainable") is not None},
            accuracy=v.accuracy,
            importance=ImportanceOut.of(v),
            theta_sha256=v.theta_blob,
            made_by=v.made_by,
            task_free=task_free,
            flips=v.flips or {},
            data=DataSources.model_validate(data) if data is not None else None,
        )


class HeadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Integer = Field(ge=0, le=MAX_VERSION)
    reason: str | None = Field(None, max_length=2000, description="why, kept in production's history")


class TaskFreeScores(BaseModel):
    accuracy: float | None = Field(description="over every class learned so far, on every task's eval set")
    task_accuracy: float | None = Field(description="how often the chosen class's task is the row's task")
    ece: float | None = Field(description="expected calibration error of the confidence (15 bins)")


class EvaluationRow(BaseModel):
    version: int
    task: str
    accuracy: dict[str, float]
    task_free: TaskFreeScores | None = Field(None, description="the model's task-free predictor on the eval sets of "
                                                               "every task learned so far (None: not measured)")
    negative_flips: dict[str, float | None] = Field(
        default_factory=dict, description="per earlier task, the share of its eval rows the parent version got right "
                                          "and this version gets wrong (empty: not measured)")
    positive_flips: dict[str, float | None] = Field(
        default_factory=dict,
        description="per earlier task, the share the parent got wrong and this version gets right")


class EvaluationOut(BaseModel):
    model: str
    head: int
    tasks: list[str]
    rows: list[EvaluationRow]
    average_accuracy: float | None
    forgetting: float | None
    bwt: float | None
