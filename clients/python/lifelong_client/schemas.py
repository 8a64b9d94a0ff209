"""The shapes of the service's JSON answers, as TypedDicts (the server may send more fields).

They document what each `Client` method returns without wrapping it: an answer is the server's own
dict, so a field the server adds later is there before the client knows its name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import numpy as np

if TYPE_CHECKING:
    from lifelong_client.jobs import Job

Predictor = Literal["max_softmax", "energy", "ncm", "ridge", "ridge_routed"]
SelectionRule = Literal["constrained", "mean"]  # how λ "auto" chooses among its trials


class TaskFreeOptions(TypedDict):
    """How a model answers requests that name no task (the server's defaults where not given)."""

    predictor: Predictor
    unknown_rate: float  # the largest share of held-back in-distribution rows called unknown (0 to 0.5)
    projection: int  # width of the ridge head's random projection (0: none); set at creation only


class Promotion(TypedDict):
    """When a job's version becomes production; the guarded policy's limits (None: not checked)."""

    policy: Literal["auto", "manual", "guarded"]
    max_forgetting: float  # the most an earlier task's accuracy may drop
    min_accuracy: float | None  # the least accuracy on the new task's eval set
    min_task_free_accuracy: float | None
    max_negative_flip_rate: float | None  # the largest share of an earlier task's eval rows the base version
    # answered right and the new version answers wrong


class LambdaSelection(TypedDict):
    """How λ "auto" chooses when a task request does not say (a model's default)."""

    rule: SelectionRule
    new_task_tolerance: float  # constrained: how far below the best new-task validation accuracy a λ may fall


class ModelInfo(TypedDict):
    name: str
    architecture: dict[str, Any]
    seed: int
    head: int  # the version the alias production names
    queue: str
    promotion: Promotion
    task_free: TaskFreeOptions
    drift_alpha: float  # the level of drift reports' verdicts, before Bonferroni over the tasks
    lambda_selection: LambdaSelection
    aliases: dict[str, int]
    tasks: list[str]
    created_at: str


class AliasInfo(TypedDict):
    alias: str
    version: int
    updated_at: str | None


class AliasMove(TypedDict):
    alias: str
    at: str
    to: int | None  # and "from": the version it named before (a keyword, so not declared here)
    by: str | None  # "key <prefix>", "job <id>", or None on a server without keys
    key: str | None
    job: str | None
    reason: str | None


class DatasetInfo(TypedDict):
    id: str
    n: int
    input_shape: list[int]
    has_labels: bool
    sha256: str
    bytes: int
    retain_until: str | None


class VersionInfo(TypedDict):
    version: int
    parent: int | None
    kind: str
    task: str | None
    job: str | None
    created_at: str


class TaskFreeScores(TypedDict):
    accuracy: float | None  # over every class learned
    task_accuracy: float | None  # how often the answer's task is the row's task
    ece: float | None  # expected calibration error of the confidence


class TaskFreeTask(TypedDict):
    n: int  # rows its class statistics were measured on
    at_this_trunk: bool  # measured with this version's trunk
    remeasured: bool  # measured again because the trunk moved since the task was learned
    blob: str


class TaskFreeDetail(TypedDict):
    """What a version keeps for answers without a task: the model's predictor and its held-back scores."""

    predictor: Predictor
    accuracy: float | None
    task_accuracy: float | None
    ece: float | None
    unknown_rate: float
    threshold: float | None  # rows scoring below it are unknown
    temperature: float | None
    rho: float | None
    projection: int
    held_back_rows: int
    held_back_from: str
    predictors: dict[str, TaskFreeScores]  # every predictor's held-back scores
    eval: dict[str, TaskFreeScores]  # every predictor's scores on the eval sets of every task
    eval_rows: int
    tasks: dict[str, TaskFreeTask]
    blob: str


class VersionDetail(VersionInfo):
    tasks: list[str]
    accuracy: dict[str, float]
    importance: dict[str, Any]
    task_free: TaskFreeDetail | None  # None for version 0 and versions made before task-free answers


class EvaluationRow(TypedDict):
    """One row of the accuracy matrix: the version made by learning `task`, scored on every task so far."""

    version: int
    task: str
    accuracy: dict[str, float]
    task_free: TaskFreeScores | None
    # Against the version's parent, per earlier task (on its eval set): the share of rows the parent answered
    # right and this version answers wrong (negative), and wrong then right (positive); {} for the first task.
    negative_flips: dict[str, float]
    positive_flips: dict[str, float]


class Evaluation(TypedDict):
    tasks: list[str]
    rows: list[EvaluationRow]
    average_accuracy: float | None
    forgetting: float | None
    bwt: float | None


class ClassScores(TypedDict):
    index: int
    label: str | None
    precision: float | None
    recall: float | None
    support: int
    predicted: int


class Scores(TypedDict, total=False):
    """`evaluate`'s answer: a version's scores on labeled data (task-free where `task` is None)."""

    model: str
    version: int
    alias: str | None
    task: str | None
    predictor: str | None  # task-free: the model's predictor that answered
    task_free: dict[str, float | None] | None  # {"accuracy", "task_accuracy", "ece", "unknown"}
    n: int
    accuracy: float
    per_class: list[ClassScores]
    classes: int  # the classes scored
    confusion_matrix: list[list[int]] | None  # [labeled class][predicted class]; None when truncated
    top_confusions: list[dict[str, int]]  # [{"labeled", "predicted", "count"}], largest off-diagonal cells first
    truncated: bool  # more classes than LIFELONG_MAX_CONFUSION_CLASSES: per_class partial, no matrix
    parent: int | None  # the version this one was made from: flips are counted against it
    negative_flips: dict[str, float]  # per task: the share of rows the parent answered right and this one wrong
    positive_flips: dict[str, float]  # per task: wrong then right


class DriftVerdict(TypedDict):
    """One task's test of a batch against its reference features (MMD², by permutation)."""

    statistic: float  # unbiased MMD² between the task's reference features and the batch's
    p_value: float
    drift: bool  # p_value ≤ alpha / the number of tasks (Bonferroni)
    reference_rows: int
    at_this_trunk: bool  # the reference was measured with this version's trunk


class DriftResult(TypedDict):
    """A drift job's result: the batch tested against every task of `version`."""

    version: int
    tasks: dict[str, DriftVerdict]
    nearest_task: str | None  # the task whose reference is nearest the batch (smallest MMD²)
    alpha: float  # the model's drift_alpha
    n: int  # rows in the batch
    drift: bool  # any task's verdict is positive


class ShadowState(TypedDict):
    """A model's shadow (`GET …/shadow`)."""

    model: str
    alias: str
    version: int  # the version the alias named when the shadow was set
    fraction: float
    compared: int
    dropped: int  # sampled rows not replayed: the replay queue was full
    agreement: float | None
    tasks: dict[str, dict[str, Any]]  # {task: {"compared", "agreement"}}
    disagreements: list[dict[str, Any]]  # [{"production", "shadow", "count"}], most first
    started_at: str


class DriftReport(DriftResult):
    """A kept drift report: a drift job's, or an importance refresh's batch (`source` "importance")."""

    id: int
    model: str
    job: str
    source: Literal["drift", "importance"]
    created_at: str



class KeyInfo(TypedDict):
    id: int
    prefix: str
    name: str | None
    scope: str  # read | write | admin
    models: list[str] | None  # with model_prefix None: every model
    model_prefix: str | None
    created_at: str
    revoked_at: str | None


class NewKeyInfo(KeyInfo):
    key: str  # the token, shown this once


class WebhookInfo(TypedDict):
    id: int
    model: str
    url: str
    events: list[str]
    created_at: str


class WebhookDeliveryInfo(TypedDict):
    id: str  # the X-Lifelong-Delivery id, the same on every retry
    event: str
    state: str  # pending | delivered | failed (out of attempts)
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: str | None
    delivered_at: str | None
    created_at: str
    attempt_log: list[dict[str, Any]]  # [{"at", "attempt", "status", "error"}], oldest first
    payload: dict[str, Any]  # the body sent: {"id", "event", "created_at", "model", "data"}


# Wherever a request takes data: a dataset id, a dataset returned by `upload_dataset`, a .npz/.csv
# path, an array of inputs, or an (inputs, labels) pair. Arrays and files are uploaded first.
Data = str | os.PathLike | DatasetInfo | np.ndarray | tuple[np.ndarray, np.ndarray | None]
QueueName = Literal["cpu", "gpu"]
Progress = bool | Callable[["Job"], None]
