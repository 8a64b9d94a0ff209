"""The Python client of the lifelong HTTP API (../shared/API.md), on httpx: numpy in, numpy out.

ML engineers drive the service from notebooks and scripts, so every endpoint is one typed method,
data goes in as arrays or files (uploaded once, content-addressed by the server), predictions use
the raw .npy body, and every refusal is raised as a `LifelongError` subclass that carries the HTTP
status and the server's own `detail`. A job is a `Job` object whose `wait()` polls its row, the
truth about it, optionally drawing a progress bar. The CLI (`app/commands/`) is built on this.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

import httpx
import numpy as np

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = ("succeeded", "failed", "cancelled")
NPY = "application/x-npy"


# --- errors ----------------------------------------------------------------------------------------


class LifelongError(Exception):
    """Anything the service refused or that kept a request from reaching it; `detail` is for people."""

    status_code: int | None = None

    def __init__(self, detail: Any, status_code: int | None = None):
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        super().__init__(_describe(detail) if self.status_code is None else f"{self.status_code}: {_describe(detail)}")

    @property
    def message(self) -> str:
        return _describe(self.detail)


class BadRequest(LifelongError):
    status_code = 400


class Unauthorized(LifelongError):
    status_code = 401


class Forbidden(LifelongError):
    status_code = 403


class NotFound(LifelongError):
    status_code = 404


class Conflict(LifelongError):
    status_code = 409


class TooLarge(LifelongError):
    status_code = 413


class Invalid(LifelongError):
    status_code = 422


class ServerError(LifelongError):
    status_code = 500


class Unavailable(ServerError):
    status_code = 503


class ConnectionFailed(LifelongError):
    """The server could not be reached (or did not answer in time): no status code."""


class WaitTimeout(LifelongError, TimeoutError):
    """`Job.wait` ran out of time; the job itself goes on."""


_BY_STATUS: dict[int, type[LifelongError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
    422: Invalid, 503: Unavailable,
}


def _describe(detail: Any) -> str:
    """FastAPI's validation details are lists of {loc, msg}; everything else is said as it is."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_for(response: httpx.Response) -> LifelongError:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text or response.reason_phrase
    kind = _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else LifelongError)
    return kind(detail, response.status_code)


# --- response shapes (the server may send more fields) ---------------------------------------------


Predictor = Literal["max_softmax", "energy", "ncm", "ridge", "ridge_routed"]


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


class ModelInfo(TypedDict):
    name: str
    architecture: dict[str, Any]
    seed: int
    head: int  # the version the alias production names
    queue: str
    promotion: Promotion
    task_free: TaskFreeOptions
    drift_alpha: float  # the level of drift reports' verdicts, before Bonferroni over the tasks
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


@dataclass(frozen=True)
class Prediction:
    """A prediction's answer. With a task: classes within that task. Without one (task-free, `task` None):
    classes over every class learned, with each row's task, confidence and whether it is unknown."""

    model: str
    version: int
    task: str | None  # None: a task-free answer
    predictions: np.ndarray  # int64 class per row (task-free: over every class learned, in `classes` order)
    probabilities: np.ndarray | None  # float32 [n, classes] when asked for
    labels: list[str] | None = None  # class names (task-free: always, "task/index" where labels were numbers)
    alias: str | None = None  # the alias the request named
    tasks: list[str] | None = None  # task-free: the task of each row's class
    confidence: np.ndarray | None = None  # task-free: float32 calibrated probability of each row's class
    unknown: np.ndarray | None = None  # task-free: bool, the row is unlike every class learned
    score: np.ndarray | None = None  # task-free: float32 familiarity; below `threshold` is unknown
    threshold: float | None = None
    predictor: str | None = None  # task-free: the model's predictor that answered
    classes: list[dict[str, str]] | None = None  # task-free with probabilities: [{"task", "label"}] per column

    @property
    def task_free(self) -> bool:
        return self.task is None

    @classmethod
    def of(cls, answer: Mapping[str, Any]) -> Prediction:
        """The server's JSON answer as arrays."""
        def array(key: str, dtype: type) -> np.ndarray | None:
            return None if answer.get(key) is None else np.asarray(answer[key], dtype=dtype)

        return cls(model=answer["model"], version=answer["version"], task=answer.get("task"),
                   predictions=np.asarray(answer["predictions"], dtype=np.int64),
                   probabilities=array("probabilities", np.float32), labels=answer.get("labels"),
                   alias=answer.get("alias"), tasks=answer.get("tasks"), confidence=array("confidence", np.float32),
                   unknown=array("unknown", np.bool_), score=array("score", np.float32),
                   threshold=answer.get("threshold"), predictor=answer.get("predictor"), classes=answer.get("classes"))

    def as_json(self) -> dict[str, Any]:
        """The answer as the server sent it (arrays as lists, absent fields left out)."""
        fields = {"model": self.model, "version": self.version, "alias": self.alias, "task": self.task,
                  "predictions": self.predictions, "labels": self.labels, "tasks": self.tasks,
                  "confidence": self.confidence, "unknown": self.unknown, "score": self.score,
                  "threshold": self.threshold, "predictor": self.predictor, "probabilities": self.probabilities,
                  "classes": self.classes}
        return {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in fields.items() if value is not None}


# Wherever a request takes data: a dataset id, a dataset returned by `upload_dataset`, a .npz/.csv
# path, an array of inputs, or an (inputs, labels) pair. Arrays and files are uploaded first.
Data = str | os.PathLike | DatasetInfo | np.ndarray | tuple[np.ndarray, np.ndarray | None]
QueueName = Literal["cpu", "gpu"]
Progress = bool | Callable[["Job"], None]


def _image_file(item: str | os.PathLike | bytes) -> tuple[str, bytes, str]:
    """(name, bytes, content type) of one image for a multipart upload."""
    if isinstance(item, bytes):
        kind = "image/png" if item.startswith(b"\x89PNG") else "image/jpeg"
        return ("image.png" if kind == "image/png" else "image.jpg", item, kind)
    path = Path(item)
    kind = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return (path.name, path.read_bytes(), kind)


# --- jobs ------------------------------------------------------------------------------------------


class Job:
    """A job as last read from the server; `refresh`, `wait` and `cancel` read it again."""

    def __init__(self, client: Client, data: Mapping[str, Any]):
        self._client = client
        self.data: dict[str, Any] = dict(data)

    id = property(lambda self: self.data["id"])
    kind = property(lambda self: self.data["kind"])
    model = property(lambda self: self.data["model"])
    state = property(lambda self: self.data["state"])
    progress = property(lambda self: self.data.get("progress"))
    error = property(lambda self: self.data.get("error"))

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    @property
    def version(self) -> int | None:
        """The version the job created, once it succeeded."""
        return (self.data.get("result") or {}).get("version")

    @property
    def drift(self) -> DriftResult | None:
        """A drift job's report once it succeeded: per task its statistic, p-value and verdict."""
        return self.data.get("result") if self.kind == "drift" and self.succeeded else None

    @property
    def lambda_selection(self) -> dict[str, Any] | None:
        """How a train job's λ "auto" chose, once it succeeded: {"rule", "new_task_tolerance", "basis",
        "admissible", "lambda", "reason"}; None where nothing was searched."""
        return (self.data.get("result") or {}).get("lambda_selection")

    @property
    def promotion(self) -> dict[str, Any] | None:
        """What the model's promotion policy made of the version: {"promoted", "policy", "alias", "reason",
        "violations", "unchecked"}, once the job succeeded."""
        return (self.data.get("result") or {}).get("promotion")

    def refresh(self) -> Job:
        self.data = self._client._json("GET", f"/v1/jobs/{self.id}")
        return self

    def cancel(self) -> Job:
        self.data = self._client._json("POST", f"/v1/jobs/{self.id}/cancel")
        return self

    def wait(self, *, progress: Progress = False, timeout: float | None = None, poll_s: float = 0.25) -> Job:
        """Poll until the job ends (in any state: check `succeeded`); `progress=True` draws a bar on
        stderr, a callable is called with the job after every poll. Raises WaitTimeout past `timeout`."""
        if progress is True:
            with ProgressBar() as bar:
                return self.wait(progress=bar, timeout=timeout, poll_s=poll_s)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if callable(progress):
                progress(self)
            if self.finished:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {self.id} still {self.state} after {timeout} s")
            time.sleep(poll_s)
            self.refresh()

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, kind={self.kind!r}, model={self.model!r}, state={self.state!r})"


class ProgressBar:
    """A rich progress bar of one job on stderr: steps (or samples) done of total, epoch when the
    number of epochs is known, and the last loss. Use as `with ProgressBar() as bar: job.wait(progress=bar)`."""

    def __init__(self, epochs: int | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.epochs = epochs
        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("job", total=None, unit="", status="")

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def __call__(self, job: Job) -> None:
        progress = job.progress or {}
        done, total = progress.get("done", 0), progress.get("total")
        status = job.state
        if self.epochs and total and progress.get("unit") == "steps":
            epoch = min(self.epochs, done * self.epochs // total + (done < total))
            status += f"  epoch {epoch}/{self.epochs}"
        if progress.get("loss") is not None:
            status += f"  loss {progress['loss']:.4f}"
        description = f"{job.kind} {job.data.get('task') or ''}".strip()
        self._progress.update(self._task, description=description, completed=done, total=total,
                              unit=progress.get("unit", ""), status=status)


# --- the client ------------------------------------------------------------------------------------


class Client:
    """One connection pool to one server: `Client("http://host:8000", api_key=...)`, or a context manager."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 *, transport: httpx.BaseTransport | None = None):
        self.base_url = (base_url or os.environ.get("LIFELONG_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("LIFELONG_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing --

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise ConnectionFailed(f"{self.base_url} did not answer in time ({type(error).__name__})") from error
        except httpx.TransportError as error:
            raise ConnectionFailed(f"cannot reach {self.base_url}: {error}") from error
        if response.status_code >= 400:
            raise error_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # -- health --

    def healthz(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def readyz(self) -> dict[str, Any]:
        """The readiness checks; not ready (503) is an answer here, not an error."""
        try:
            return self._json("GET", "/readyz")
        except Unavailable as error:
            try:
                return json.loads(str(error.detail))
            except ValueError:
                return {"status": "not ready", "detail": error.detail}

    # -- models --

    def create_model(self, name: str, architecture: Mapping[str, Any], seed: int = 0,
                     queue: QueueName | None = None, promotion: Mapping[str, Any] | None = None,
                     task_free: Mapping[str, Any] | None = None, drift_alpha: float | None = None) -> ModelInfo:
        """A new model; `queue` is where its jobs go (cpu or gpu workers; the server's default otherwise),
        `promotion` when a job's version becomes production (default {"policy": "guarded"}; the guarded
        limits max_forgetting, min_accuracy, min_task_free_accuracy, max_negative_flip_rate), `task_free` how
        requests that name no task are answered ({"predictor", "unknown_rate", "projection"}, each optional),
        `drift_alpha` the level of its drift reports' verdicts (the server's default 0.01)."""
        body: dict[str, Any] = {"name": name, "architecture": dict(architecture), "seed": seed}
        if queue is not None:
            body["queue"] = queue
        if promotion is not None:
            body["promotion"] = dict(promotion)
        if task_free is not None:
            body["task_free"] = dict(task_free)
        if drift_alpha is not None:
            body["drift_alpha"] = drift_alpha
        return self._json("POST", "/v1/models", json=body)

    def update_model(self, name: str, *, promotion: Mapping[str, Any] | None = None,
                     task_free: Mapping[str, Any] | None = None, drift_alpha: float | None = None) -> ModelInfo:
        """Change some of the model's promotion settings ({"policy": "manual"}, {"max_negative_flip_rate": None}),
        its task-free options ({"predictor": "ncm", "unknown_rate": 0.1}) and/or its `drift_alpha`; the others
        stay. Give at least one of the three."""
        changes: dict[str, Any] = {key: dict(value) for key, value in (("promotion", promotion),
                                                                       ("task_free", task_free)) if value is not None}
        if drift_alpha is not None:
            changes["drift_alpha"] = drift_alpha
        if not changes:
            raise ValueError("give promotion, task_free or drift_alpha (or several)")
        return self._json("PATCH", f"/v1/models/{name}", json=changes)

    def list_models(self) -> list[ModelInfo]:
        return self._json("GET", "/v1/models")

    def get_model(self, name: str) -> ModelInfo:
        return self._json("GET", f"/v1/models/{name}")

    def delete_model(self, name: str) -> None:
        self._request("DELETE", f"/v1/models/{name}")

    # -- datasets --

    def upload_dataset(self, source: str | os.PathLike | np.ndarray, labels: np.ndarray | None = None, *,
                       retain_until: datetime | str | None = None) -> DatasetInfo:
        """Upload a file (.npz/.csv arrays, .jsonl/.csv texts, .zip/.tar images), or arrays (sent as .npz
        with `x` and `y`). Same bytes, same dataset. `retain_until`: when the server deletes it (a datetime
        or an ISO 8601 string), whatever its retention setting says."""
        if isinstance(source, np.ndarray):
            arrays = {"x": source} if labels is None else {"x": source, "y": np.asarray(labels)}
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            files = {"file": ("arrays.npz", buffer.getvalue(), "application/octet-stream")}
        else:
            path = Path(source)
            files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        if retain_until is None:
            return self._json("POST", "/v1/datasets", files=files)
        until = retain_until.isoformat() if isinstance(retain_until, datetime) else retain_until
        return self._json("POST", "/v1/datasets", files=files, data={"retain_until": until})

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset and its blob; ApiError 409 (naming the jobs) while a queued or running job needs
        it. The versions trained on it keep working."""
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    def get_dataset(self, dataset_id: str) -> DatasetInfo:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    def list_datasets(self) -> list[DatasetInfo]:
        return self._json("GET", "/v1/datasets")

    def data_ref(self, data: Data) -> dict[str, str]:
        """`{"dataset": id}` for any `Data`, uploading files and arrays first."""
        if isinstance(data, Mapping):
            return {"dataset": data["id"]}
        if isinstance(data, tuple):
            return {"dataset": self.upload_dataset(data[0], data[1])["id"]}
        if isinstance(data, np.ndarray) or isinstance(data, os.PathLike):
            return {"dataset": self.upload_dataset(data)["id"]}
        if isinstance(data, str) and os.path.isfile(data):
            return {"dataset": self.upload_dataset(data)["id"]}
        return {"dataset": str(data)}

    # -- learning --

    def add_task(self, model: str, task: str, train: Data, eval: Data | None = None, *,  # noqa: A002 - API name
                 num_classes: int | None = None, base_version: int | None = None, method: str | None = None,
                 lambda_: float | Literal["auto"] | None = None, lambda_grid: Sequence[float] | None = None,
                 validation_fraction: float | None = None, checkpoint_interval_s: float | None = None,
                 lambda_selection: Literal["constrained", "mean"] | None = None,
                 new_task_tolerance: float | None = None,
                 epochs: int | None = None, batch_size: int | None = None,
                 optimizer: Literal["sgd", "adam"] | None = None, lr: float | None = None,
                 momentum: float | None = None, seed: int | None = None,
                 importance: Mapping[str, str] | None = None, queue: QueueName | None = None,
                 trainable: str | Mapping[str, int] | None = None, base_alias: str | None = None,
                 **extra: Any) -> Job:
        """Start learning `task` (202): returns the queued job; `.wait()` on it. With λ "auto",
        `lambda_selection` ("constrained" or "mean") and `new_task_tolerance` say how it chooses (default: the
        model's); the finished job's `result["lambda_selection"]` says how it did (rule, basis, admissible λ)."""
        body: dict[str, Any] = {"task": task, "train": self.data_ref(train)}
        if eval is not None:
            body["eval"] = self.data_ref(eval)
        options = {"num_classes": num_classes, "base_version": base_version, "method": method, "lambda": lambda_,
                   "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                   "momentum": momentum, "seed": seed, "importance": dict(importance) if importance else None,
                   "queue": queue, "trainable": dict(trainable) if isinstance(trainable, Mapping) else trainable,
                   "base_alias": base_alias, "lambda_grid": list(lambda_grid) if lambda_grid else None,
                   "validation_fraction": validation_fraction, "checkpoint_interval_s": checkpoint_interval_s,
                   "lambda_selection": lambda_selection, "new_task_tolerance": new_task_tolerance}
        body.update({k: v for k, v in options.items() if v is not None}, **extra)
        return Job(self, self._json("POST", f"/v1/models/{model}/tasks", json=body))

    def refresh_importance(self, model: str, data: Data, *, task: str | None = None,
                           mode: Literal["accumulate", "replace"] | None = None, variant: str | None = None,
                           output: str | None = None, reduction: str | None = None,
                           base_version: int | None = None, queue: QueueName | None = None,
                           base_alias: str | None = None) -> Job:
        """Start re-measuring Ω on unlabeled inputs (202): returns the queued job."""
        options = {"task": task, "mode": mode, "variant": variant, "output": output, "reduction": reduction,
                   "base_version": base_version, "queue": queue, "base_alias": base_alias}
        body = {"data": self.data_ref(data), **{k: v for k, v in options.items() if v is not None}}
        return Job(self, self._json("POST", f"/v1/models/{model}/importance", json=body))

    # -- drift --

    def drift(self, model: str, data: Data | Sequence[str], *, version: int | None = None,
              alias: str | None = None, queue: QueueName | None = None) -> Job:
        """Start testing a deployment batch (labels, if any, are ignored) against every task's reference
        features at a version (`version`, `alias`, or production) (202): returns the queued drift job, whose
        `.drift` once it succeeded is the report. `data` is any `Data`, or a list of texts (text models).
        Refused with `Conflict` when a task of the version has no reference (made before drift reports)."""
        texts = isinstance(data, Sequence) and not isinstance(data, str | tuple) and all(
            isinstance(item, str) for item in data)
        body: dict[str, Any] = {"data": {"texts": list(data)} if texts else self.data_ref(data)}
        body.update({k: v for k, v in {"version": version, "alias": alias, "queue": queue}.items() if v is not None})
        return Job(self, self._json("POST", f"/v1/models/{model}/drift", json=body))

    def drift_reports(self, model: str, limit: int | None = None) -> list[DriftReport]:
        """The model's drift reports, newest first: drift jobs' and importance refreshes' batches."""
        params = {} if limit is None else {"limit": limit}
        return self._json("GET", f"/v1/models/{model}/drift", params=params)

    # -- shadow --

    def set_shadow(self, model: str, alias: str, fraction: float) -> ShadowState:
        """Replay `fraction` of production's predictions on the version `alias` names now (off the request
        path); counts start at zero; it ends when the alias moves, or with `end_shadow`."""
        return self._json("PUT", f"/v1/models/{model}/shadow", json={"alias": alias, "fraction": fraction})

    def shadow(self, model: str) -> ShadowState:
        """What the shadow compared: rows, agreement overall and per task, the most frequent disagreements."""
        return self._json("GET", f"/v1/models/{model}/shadow")

    def end_shadow(self, model: str) -> None:
        self._request("DELETE", f"/v1/models/{model}/shadow")

    # -- predictions --

    def predict(self, model: str, inputs: np.ndarray | Sequence[str] | Sequence[str | os.PathLike | bytes], *,
                task: str | None = None, version: int | None = None, probabilities: bool = False,
                alias: str | None = None) -> Prediction:
        """Classes (and probabilities, and class names where the task has them) for `inputs`: an array
        [n, *input_shape] (sent as a raw float32 .npy body), texts (a list of str, for text models), or
        image files (paths or bytes, for image models; sent as multipart `files`). The version is
        production unless `version` (a number) or `alias` names another. Without `task` the answer is
        task-free: over every class learned, with each row's task, confidence and `unknown` (a version
        that cannot answer so, such as version 0, is refused with `Conflict`)."""
        params: dict[str, Any] = {"probabilities": str(probabilities).lower()}
        if task is not None:
            params["task"] = task
        if version is not None:
            params["version"] = version
        if alias is not None:
            params["alias"] = alias
        path = f"/v1/models/{model}/predict"
        if isinstance(inputs, np.ndarray):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(inputs, dtype=np.float32), allow_pickle=False)
            answer = self._json("POST", path, params=params, content=buffer.getvalue(), headers={"Content-Type": NPY})
        elif all(isinstance(item, str) and not os.path.isfile(item) for item in inputs):
            body = {"texts": list(inputs), "probabilities": probabilities}
            chosen = {k: v for k, v in {"task": task, "version": version, "alias": alias}.items() if v is not None}
            answer = self._json("POST", path, json={**body, **chosen})
        else:
            files = [("files", _image_file(item)) for item in inputs]
            answer = self._json("POST", path, params=params, files=files)
        return Prediction.of(answer)

    # -- jobs --

    def get_job(self, job_id: str) -> Job:
        return Job(self, self._json("GET", f"/v1/jobs/{job_id}"))

    def list_jobs(self, *, model: str | None = None, state: str | None = None, limit: int | None = None) -> list[Job]:
        params = {k: v for k, v in {"model": model, "state": state, "limit": limit}.items() if v is not None}
        return [Job(self, data) for data in self._json("GET", "/v1/jobs", params=params)]

    def cancel_job(self, job_id: str) -> Job:
        return Job(self, self._json("POST", f"/v1/jobs/{job_id}/cancel"))

    # -- versions --

    def list_versions(self, model: str) -> list[VersionInfo]:
        return self._json("GET", f"/v1/models/{model}/versions")

    def get_version(self, model: str, version: int) -> VersionDetail:
        return self._json("GET", f"/v1/models/{model}/versions/{version}")

    def download_checkpoint(self, model: str, version: int, path: str | os.PathLike | None = None) -> bytes:
        """θ of a version as safetensors bytes, also written to `path` when given."""
        content = self._request("GET", f"/v1/models/{model}/versions/{version}/checkpoint").content
        if path is not None:
            Path(path).write_bytes(content)
        return content

    def checkpoint(self, model: str, version: int) -> dict[str, np.ndarray]:
        """θ of a version as numpy arrays by parameter name."""
        from safetensors.numpy import load

        return load(self.download_checkpoint(model, version))

    def importance(self, model: str, version: int,
                   part: Literal["total", "frozen", "open"] = "total") -> dict[str, np.ndarray]:
        """Ω of a version as numpy arrays by parameter name."""
        from safetensors.numpy import load

        response = self._request("GET", f"/v1/models/{model}/versions/{version}/importance", params={"part": part})
        return load(response.content)

    def evaluation(self, model: str) -> Evaluation:
        return self._json("GET", f"/v1/models/{model}/evaluation")

    def set_head(self, model: str, version: int) -> ModelInfo:
        return self._json("PUT", f"/v1/models/{model}/head", json={"version": version})

    # -- aliases --

    def aliases(self, model: str) -> list[AliasInfo]:
        """Every alias of the model and the version it names, production first."""
        return self._json("GET", f"/v1/models/{model}/aliases")

    def set_alias(self, model: str, alias: str, version: int, reason: str | None = None) -> AliasInfo:
        """Point `alias` at `version` (creating it if new); `reason` is kept in its history."""
        body: dict[str, Any] = {"version": version} if reason is None else {"version": version, "reason": reason}
        return self._json("PUT", f"/v1/models/{model}/aliases/{alias}", json=body)

    def delete_alias(self, model: str, alias: str) -> None:
        """Remove an alias (not production); its history stays."""
        self._request("DELETE", f"/v1/models/{model}/aliases/{alias}")

    def alias_history(self, model: str, alias: str) -> list[AliasMove]:
        """Every move of `alias`, newest first: when, from, to, by which key or job, and why."""
        return self._json("GET", f"/v1/models/{model}/aliases/{alias}/history")

    def promote(self, model: str, version: int, reason: str | None = None) -> AliasInfo:
        """Make `version` production: what predictions and new tasks use."""
        return self.set_alias(model, "production", version, reason)

    # -- export and scoring --

    def export(self, model: str, version: int | str, *, task: str,
               format: Literal["onnx", "torchscript"] = "onnx",  # noqa: A002 - the API's name
               path: str | os.PathLike | None = None, timeout: float = 300.0) -> bytes:
        """`task`'s network (the trunk and that task's head) at `version` (a number, or an alias such as
        "production") as an ONNX or TorchScript file, also written to `path` when given. Its inputs and the
        preprocessing left to the caller are in the file's metadata (README, Export and scoring)."""
        number = self.resolve_version(model, version)
        content = self._request("GET", f"/v1/models/{model}/versions/{number}/export",
                                params={"task": task, "format": format}, timeout=timeout).content
        if path is not None:
            Path(path).write_bytes(content)
        return content

    def evaluate(self, model: str, data: Data, *, task: str | None = None, version: int | None = None,
                 alias: str | None = None, timeout: float = 300.0) -> Scores:
        """Score `task` at a version (`version`, `alias`, or production) on labeled `data` (a dataset id, a
        file, or (inputs, labels) arrays, uploaded first): {"accuracy", "n", "per_class": [{"index", "label",
        "precision", "recall", "support", "predicted"}], "confusion_matrix": [labeled][predicted], ...}.
        Without `task`, the task-free answer over every class learned (labels: global class indices, in the
        order the tasks were learned, or class names / "task/name"); "task" is None, and "predictor" and
        "task_free": {"accuracy", "task_accuracy", "ece", "unknown"} say how it answered. "parent",
        "negative_flips" and "positive_flips" ({task: share of rows}) compare its answers with its parent's."""
        body: dict[str, Any] = {"data": self.data_ref(data)}
        body.update({k: v for k, v in {"task": task, "version": version, "alias": alias}.items() if v is not None})
        return self._json("POST", f"/v1/models/{model}/evaluate", json=body, timeout=timeout)

    def checkpoint_metadata(self, model: str, version: int | str) -> dict[str, Any]:
        """The metadata of a version's checkpoint: model, version, architecture, tasks (with num_classes and
        class names) and lifelong_version, JSON fields decoded."""
        content = self.download_checkpoint(model, self.resolve_version(model, version))
        length = int.from_bytes(content[:8], "little")
        metadata = dict(json.loads(content[8:8 + length]).get("__metadata__") or {})
        for key in ("architecture", "tasks", "version"):
            if key in metadata:
                metadata[key] = json.loads(metadata[key])
        return metadata

    def resolve_version(self, model: str, version: int | str) -> int:
        """The number of a version named by number (or its digits) or by alias."""
        if isinstance(version, int) or version.isdigit():
            return int(version)
        return self._json("GET", f"/v1/models/{model}/aliases/{version}")["version"]

    # -- webhooks --

    def add_webhook(self, model: str, url: str, events: Sequence[str], secret: str) -> WebhookInfo:
        """Send `events` of `model` ("job.finished", "version.created", "alias.moved", "drift.detected") to
        `url`, signed with `secret` (X-Lifelong-Signature: sha256=<hex HMAC-SHA256 of the body>); the secret is
        never sent back."""
        body = {"url": url, "events": list(events), "secret": secret}
        return self._json("POST", f"/v1/models/{model}/webhooks", json=body)

    def webhooks(self, model: str) -> list[WebhookInfo]:
        return self._json("GET", f"/v1/models/{model}/webhooks")

    def get_webhook(self, model: str, webhook_id: int) -> WebhookInfo:
        return self._json("GET", f"/v1/models/{model}/webhooks/{webhook_id}")

    def delete_webhook(self, model: str, webhook_id: int) -> None:
        """Remove the hook and its delivery log: nothing more is sent to it."""
        self._request("DELETE", f"/v1/models/{model}/webhooks/{webhook_id}")

    def webhook_deliveries(self, model: str, webhook_id: int, *,
                           state: Literal["pending", "delivered", "failed"] | None = None,
                           limit: int | None = None) -> list[WebhookDeliveryInfo]:
        """The hook's deliveries, newest first: event, id, state, attempts, last status or error, next attempt."""
        params = {k: v for k, v in {"state": state, "limit": limit}.items() if v is not None}
        return self._json("GET", f"/v1/models/{model}/webhooks/{webhook_id}/deliveries", params=params)

    # -- API keys (an admin key that reaches every model) --

    def create_key(self, scope: Literal["read", "write", "admin"], name: str | None = None, *,
                   models: Sequence[str] | None = None, model_prefix: str | None = None) -> NewKeyInfo:
        """A new key; its token is in `["key"]`, this once. `models` (names) and/or `model_prefix` limit the
        models it reaches: other models answer it as if they did not exist (404). Neither: every model."""
        body: dict[str, Any] = {"scope": scope, "name": name}
        if models is not None:
            body["models"] = list(models)
        if model_prefix is not None:
            body["model_prefix"] = model_prefix
        return self._json("POST", "/v1/keys", json=body)

    def list_keys(self) -> list[KeyInfo]:
        return self._json("GET", "/v1/keys")

    def revoke_key(self, key_id: int) -> KeyInfo:
        return self._json("DELETE", f"/v1/keys/{key_id}")


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
