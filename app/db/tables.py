"""The ORM tables: models, versions, tasks, datasets, jobs, aliases and API keys (SQLAlchemy 2, typed).

Versions are immutable rows that name their θ/Ω blobs; names that move are aliases. A model's `head`
column stores its `production` alias (the version predictions and new tasks start from, moved by
jobs only by compare-and-set); other aliases are rows of `aliases`, and every move of any alias is a
row of `alias_moves`. A version is
unique per job (`job_id`), so a job that runs twice writes its version once. The job row, not
Celery's result backend, is the truth about a job: state, progress, attempts and error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from app.db.promotion import PromotionPolicy


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes everywhere, also on SQLite (which stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    architecture: Mapped[dict[str, Any]]
    seed: Mapped[int]
    head: Mapped[int]
    # Where this model's jobs go unless a request says otherwise: "cpu" or "gpu".
    queue: Mapped[str] = mapped_column(String(8), default="cpu", server_default="cpu")
    # When a job's version becomes `production` (app/aliases/promotion.py): {"policy": "auto" | "manual" |
    # "guarded", "max_forgetting", "min_accuracy"}. Migration 0008 gave models made before it "auto".
    promotion: Mapped[dict[str, Any]] = mapped_column(default=lambda: PromotionPolicy().as_dict())
    # How requests that name no task are answered: {"predictor", "unknown_rate", "projection"}
    # (app/task_free/options.py); NULL: the defaults (models made before migration 0011 too).
    task_free: Mapped[dict[str, Any] | None]
    # The level of drift reports' verdicts before the correction for the number of tasks; NULL: 0.01.
    drift_alpha: Mapped[float | None] = mapped_column(Float)
    # How λ "auto" chooses when a request does not say: {"rule", "new_task_tolerance"}
    # (app/models/lambda_selection.py); NULL: the defaults (models made before migration 0015 too).
    lambda_selection: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alias(Base):
    """A movable name for one version of a model, other than `production` (which is `models.head`)."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_aliases_model_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasMove(Base):
    """One move of an alias (production included): from which version to which (None: the alias did not
    exist, or was deleted), by which API key or job, and why. Rows are only ever added."""

    __tablename__ = "alias_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    key_prefix: Mapped[str | None] = mapped_column(String(16))  # the API key's prefix; None: a job, or open mode
    job_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(2000))
    at: Mapped[datetime] = mapped_column(default=utcnow)


# Version numbers are database integers: anything larger is refused as input, never sent to SQL. The
# bound lives with the column, so that every request schema naming a version takes it from below them all.
MAX_VERSION = 2**31 - 1


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_versions_model_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    parent: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(16))  # init | train | importance
    task: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    theta_blob: Mapped[str] = mapped_column(String(64))
    # {group: blob} of θ's parts (app/versions/theta.py); NULL: theta_blob is one file with all of θ.
    theta_parts: Mapped[dict[str, Any] | None]
    # One importance estimate per task, in the order learned (MAS.md §4): [{"task", "blob" (Σ|g| as
    # safetensors), "n", "measure", "layers" ({name: {"mean", "max"}} of S/n, absent for estimates
    # carried over by migration 0007)}]. Versions share the blobs of the estimates they did not change.
    importance_parts: Mapped[list[Any]]
    tasks: Mapped[list[Any]]  # [{"name", "num_classes"}] in the order learned: θ alone does not keep order
    accuracy: Mapped[dict[str, Any]]
    importance: Mapped[dict[str, Any]]  # {name: {"mean", "max"}} of the total Ω
    # How the version was made: the job's request, lifelong's version, worker, device, precision,
    # wall time and loss per epoch. NULL for version 0 and for versions made before migration 0007.
    made_by: Mapped[dict[str, Any] | None]
    # Per task, in the order learned, its class statistics (app/task_free/stored.py): [{"task", "blob",
    # "n", "at_trunk" (measured with this version's trunk), "remeasured" (by this version's job)}].
    # NULL: made before migration 0011, or version 0.
    class_statistics: Mapped[list[Any] | None]
    # The fitted task-free predictors: {"blob", "projection_blob", "meta", "held_back", "eval", ...}.
    task_free: Mapped[dict[str, Any] | None]
    # A train version's flips against its parent on each earlier task's eval set: {task: {"negative",
    # "positive", "n"}} (app/mas/evaluation.py). NULL: made before migration 0011, or not a train version.
    flips: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """A task as learned by one train version: its eval set makes that lineage's accuracy matrix."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    num_classes: Mapped[int]
    # Dataset ids, not foreign keys (since migration 0012): a task outlives the deletion of its data, and
    # `dataset_deletions` says when that happened.
    train_dataset_id: Mapped[str] = mapped_column(String(32))
    eval_dataset_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the bytes as uploaded
    # The parsed data, in one blob (the blob collector keeps exactly the blob a row names): arrays as
    # safetensors (x float32, y int64), texts as JSON lines, images as a re-packed zip with its index
    # (app/datasets/text.py, images.py; app/datasets/reader.py reads all three).
    blob: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(8))  # npz | csv | inline | jsonl | zip | tar | tar.gz
    # array | text | image
    kind: Mapped[str] = mapped_column(String(8), default="array", server_default="array")
    n: Mapped[int]
    input_shape: Mapped[list[Any]]  # [] for text and image datasets, whose items have no fixed shape
    has_labels: Mapped[bool]
    max_label: Mapped[int | None]
    # Class names, when labels were given as names: label i is classes[i]. None for integer labels.
    classes: Mapped[list[Any] | None]
    bytes: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Deleted by the sweeper once past (app/datasets/retention.py), whatever LIFELONG_DATASET_RETENTION_DAYS
    # says; NULL: the retention setting decides.
    retain_until: Mapped[datetime | None]


class DatasetDeletion(Base):
    """One deletion of a dataset (its row is gone): when, why, and whether its blob is gone too. Rows are
    only ever added; a dataset uploaded again after its deletion is a live row again, and keeps its history.
    `blob_purged_at` stays NULL while another dataset row names the same blob (same parsed content)."""

    __tablename__ = "dataset_deletions"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    blob: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # request | retention
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)
    blob_purged_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # train | importance
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    task: Mapped[str | None] = mapped_column(String(64))
    base_version: Mapped[int]
    request: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    progress_done: Mapped[int | None]
    progress_total: Mapped[int | None]
    progress_unit: Mapped[str | None] = mapped_column(String(16))
    progress_loss: Mapped[float | None] = mapped_column(Float)
    result_version: Mapped[int | None]
    error_type: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Written every few seconds by the process running the job: a stale one means the worker is gone.
    heartbeat_at: Mapped[datetime | None]
    # The queue the job was sent to, and the worker (Celery node name) and torch device of its last run.
    queue: Mapped[str] = mapped_column(String(8), default="cpu", server_default="cpu")
    worker: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(32))
    # The process that runs it on that worker's host: a redelivery to the same worker checks it is gone.
    worker_pid: Mapped[int | None]
    # A train job's latest checkpoint (app/jobs/checkpoints.py) and the step it holds: a job that
    # runs again resumes from it. Only queued and running jobs keep theirs from the blob collector.
    checkpoint_blob: Mapped[str | None] = mapped_column(String(64))
    checkpoint_step: Mapped[int | None]
    # What the result shows beyond the version: {"lambda", "lambda_search", "resumed_from_step"}.
    result_details: Mapped[dict[str, Any] | None]
    # Where the progress stands within the run: {"epoch", "epochs", "trial", "trials"} for training.
    progress_detail: Mapped[dict[str, Any] | None]
    # What became of the job's version under its model's promotion policy (app/aliases/promotion.py):
    # {"promoted", "policy", "alias", "reason", "violations", "unchecked"}; None before it succeeded.
    promotion: Mapped[dict[str, Any] | None]


class ApiKey(Base):
    """An API key: only the sha256 of the secret is stored; `prefix` names the key in lists and tokens."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))  # read | write | admin
    # The models the key reaches (app/auth/scoping.py): these names, and those starting with model_prefix;
    # both NULL: every model.
    models: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    model_prefix: Mapped[str | None] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class DriftReport(Base):
    """One drift report: a deployment batch tested against every task's reference features at one version
    (app/drift/service.py), by a drift job or an importance refresh. Rows are only ever added."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # drift | importance: the kind of job that wrote it
    n: Mapped[int]  # rows in the batch
    alpha: Mapped[float]  # the model's drift_alpha when it was tested (before the correction)
    drift: Mapped[bool]  # whether any task's verdict is positive
    nearest_task: Mapped[str | None] = mapped_column(String(64))
    tasks: Mapped[dict[str, Any]]  # {task: {"statistic", "p_value", "drift", "reference_rows", "at_this_trunk"}}
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Shadow(Base):
    """A model's shadow: a share of production's predictions replayed on the version an alias named when the
    shadow was set (app/shadow/), and what the comparison has counted so far. It ends (the row goes) when
    the alias moves or is deleted, or on DELETE."""

    __tablename__ = "shadows"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), unique=True)
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    fraction: Mapped[float] = mapped_column(Float)
    compared: Mapped[int] = mapped_column(Integer, default=0)  # rows answered by both
    agreed: Mapped[int] = mapped_column(Integer, default=0)  # rows both answered alike
    dropped: Mapped[int] = mapped_column(Integer, default=0)  # rows sampled but not replayed (queue full)
    tasks: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {task: {"compared", "agreed"}}
    disagreements: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"production\tshadow": count}
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
