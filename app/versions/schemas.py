"""Response shapes of versions, the head and the evaluation matrix."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.db.tables import Version

# Version numbers are database integers: anything larger is refused as input, never sent to SQL.
MAX_VERSION = 2**31 - 1


class VersionOut(BaseModel):
    version: int
    parent: int | None
    kind: str
    task: str | None
    job: str | None
    created_at: datetime

    @classmethod
    def of(cls, v: Version) -> VersionOut:
        return cls(version=v.number, parent=v.parent, kind=v.kind, task=v.task, job=v.job_id, created_at=v.created_at)


class LayerImportance(BaseModel):
    mean: float
    max: float


class ImportanceOut(BaseModel):
    n_open: int
    layers: dict[str, LayerImportance]


class VersionDetail(VersionOut):
    tasks: list[str]
    num_classes: dict[str, int]
    # Class names per task learned from named labels (index order), and a task's own `trainable`.
    classes: dict[str, list[str]]
    trainable: dict[str, Any]
    accuracy: dict[str, float]
    importance: ImportanceOut
    theta_sha256: str
    omega_frozen_sha256: str
    omega_open_sha256: str

    @classmethod
    def of(cls, v: Version) -> VersionDetail:
        return cls(
            **VersionOut.of(v).model_dump(),
            tasks=[t["name"] for t in v.tasks],
            num_classes={t["name"]: t["num_classes"] for t in v.tasks},
            classes={t["name"]: t["classes"] for t in v.tasks if t.get("classes")},
            trainable={t["name"]: t["trainable"] for t in v.tasks if t.get("trainable") is not None},
            accuracy=v.accuracy,
            importance=ImportanceOut(n_open=v.n_open, layers=v.importance),
            theta_sha256=v.theta_blob,
            omega_frozen_sha256=v.omega_frozen_blob,
            omega_open_sha256=v.omega_open_blob,
        )


class HeadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=0, le=MAX_VERSION)


class EvaluationRow(BaseModel):
    version: int
    task: str
    accuracy: dict[str, float]


class EvaluationOut(BaseModel):
    model: str
    head: int
    tasks: list[str]
    rows: list[EvaluationRow]
    average_accuracy: float | None
    forgetting: float | None
    bwt: float | None
