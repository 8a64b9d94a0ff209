"""`Client`: one connection pool to one lifelong server, one typed method per endpoint (../../shared/API.md).

ML engineers drive the service from notebooks and scripts: data goes in as arrays or files (uploaded
once, content-addressed by the server), predictions use the raw .npy body, and every refusal is raised
as a `LifelongError` subclass (errors.py). A job is a `Job` (jobs.py). The service's CLI is built on this.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from lifelong_client.errors import ConnectionFailed, Unavailable, error_for
from lifelong_client.jobs import Job
from lifelong_client.prediction import Inputs, Prediction, predict_request
from lifelong_client.schemas import (
    AliasInfo,
    AliasMove,
    Data,
    DatasetInfo,
    DriftReport,
    Evaluation,
    KeyInfo,
    ModelInfo,
    NewKeyInfo,
    QueueName,
    Scores,
    ShadowState,
    VersionDetail,
    VersionInfo,
    WebhookDeliveryInfo,
    WebhookInfo,
)

DEFAULT_URL = "http://127.0.0.1:8000"


def client_version() -> str:
    """The installed client's version, which is the service version it was released with."""
    try:
        return version("lifelong-client")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "unknown"


class Client:
    """One connection pool to one server: `Client("http://host:8000", api_key=...)`, or a context manager."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 *, transport: httpx.BaseTransport | None = None):
        self.base_url = (base_url or os.environ.get("LIFELONG_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("LIFELONG_API_KEY")
        headers = {"User-Agent": f"lifelong-client/{client_version()}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
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
                     task_free: Mapping[str, Any] | None = None, drift_alpha: float | None = None,
                     lambda_selection: Mapping[str, Any] | None = None) -> ModelInfo:
        """A new model; `queue` is where its jobs go (cpu or gpu workers; the server's default otherwise),
        `promotion` when a job's version becomes production (default {"policy": "guarded"}; the guarded
        limits max_forgetting, min_accuracy, min_task_free_accuracy, max_negative_flip_rate), `task_free` how
        requests that name no task are answered ({"predictor", "unknown_rate", "projection"}, each optional),
        `drift_alpha` the level of its drift reports' verdicts (the server's default 0.01), `lambda_selection`
        how λ "auto" chooses when a task request does not say ({"rule": "constrained" | "mean",
        "new_task_tolerance"}, each optional; the server's default constrained, 0.02)."""
        body: dict[str, Any] = {"name": name, "architecture": dict(architecture), "seed": seed}
        if queue is not None:
            body["queue"] = queue
        if promotion is not None:
            body["promotion"] = dict(promotion)
        if task_free is not None:
            body["task_free"] = dict(task_free)
        if drift_alpha is not None:
            body["drift_alpha"] = drift_alpha
        if lambda_selection is not None:
            body["lambda_selection"] = dict(lambda_selection)
        return self._json("POST", "/v1/models", json=body)

    def update_model(self, name: str, *, promotion: Mapping[str, Any] | None = None,
                     task_free: Mapping[str, Any] | None = None, drift_alpha: float | None = None,
                     lambda_selection: Mapping[str, Any] | None = None) -> ModelInfo:
        """Change some of the model's promotion settings ({"policy": "manual"}, {"max_negative_flip_rate": None}),
        its task-free options ({"predictor": "ncm", "unknown_rate": 0.1}), its `drift_alpha` and/or its λ
        selection ({"rule": "mean"}); the others stay. Give at least one of the four."""
        changes: dict[str, Any] = {key: dict(value) for key, value in (
            ("promotion", promotion), ("task_free", task_free), ("lambda_selection", lambda_selection))
            if value is not None}
        if drift_alpha is not None:
            changes["drift_alpha"] = drift_alpha
        if not changes:
            raise ValueError("give promotion, task_free, drift_alpha or lambda_selection (or several)")
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
                 head_warmup: int | Literal["auto"] | None = None,
                 importance: Mapping[str, str] | None = None, queue: QueueName | None = None,
                 trainable: str | Mapping[str, int] | None = None, base_alias: str | None = None,
                 **extra: Any) -> Job:
        """Start learning `task` (202): returns the queued job; `.wait()` on it. With λ "auto",
        `lambda_selection` ("constrained" or "mean") and `new_task_tolerance` say how it chooses (default: the
        model's); the finished job's `result["lambda_selection"]` says how it did (rule, basis, admissible λ).
        `head_warmup`: passes the new head trains alone on the trunk's features first ("auto": 200 on a
        pretrained trunk, 0 otherwise); `result["head_warmup"]` says how many it had."""
        body: dict[str, Any] = {"task": task, "train": self.data_ref(train)}
        if eval is not None:
            body["eval"] = self.data_ref(eval)
        options = {"num_classes": num_classes, "base_version": base_version, "method": method, "lambda": lambda_,
                   "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                   "momentum": momentum, "seed": seed, "head_warmup": head_warmup,
                   "importance": dict(importance) if importance else None,
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

    def predict(self, model: str, inputs: Inputs, *, task: str | None = None, version: int | None = None,
                probabilities: bool = False, alias: str | None = None) -> Prediction:
        """Classes (and probabilities, and class names where the task has them) for `inputs`: an array
        [n, *input_shape] (sent as a raw float32 .npy body); for text models a text (one str is one text) or
        a list of texts; for image models an image (a path or bytes) or a list of them (paths as str naming
        files, Paths or bytes; sent as multipart `files`). Inputs that mix kinds, or hold numbers in a list,
        are refused with TypeError or ValueError before anything is sent. The version is production unless
        `version` (a number) or `alias` names another. Without `task` the answer is task-free: over every
        class learned, with each row's task, confidence and `unknown` (a version that cannot answer so,
        such as version 0, is refused with `Conflict`)."""
        chosen = {k: v for k, v in {"task": task, "version": version, "alias": alias}.items() if v is not None}
        request = predict_request(inputs, probabilities=probabilities, chosen=chosen)
        return Prediction.of(self._json("POST", f"/v1/models/{model}/predict", **request))

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
        return _safetensors_arrays(self.download_checkpoint(model, version))

    def importance(self, model: str, version: int,
                   part: Literal["total", "frozen", "open"] = "total") -> dict[str, np.ndarray]:
        """Ω of a version as numpy arrays by parameter name."""
        response = self._request("GET", f"/v1/models/{model}/versions/{version}/importance", params={"part": part})
        return _safetensors_arrays(response.content)

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

    def alias_history(self, model: str, alias: str | None = None, limit: int | None = None) -> list[AliasMove]:
        """Every move of `alias`, newest first: when, from, to, by which key or job, and why. Without `alias`:
        the moves of every alias the model ever had, deleted ones included (the 100 newest unless `limit`
        says; `limit` with `alias`: its `limit` newest)."""
        if alias is not None and limit is None:
            return self._json("GET", f"/v1/models/{model}/aliases/{alias}/history")
        params = {k: v for k, v in {"alias": alias, "limit": limit}.items() if v is not None}
        return self._json("GET", f"/v1/models/{model}/alias-history", params=params)

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


def _safetensors_arrays(content: bytes) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load
    except ImportError as error:
        raise ImportError("checkpoints are safetensors files: pip install 'lifelong-client[checkpoints]'") from error
    return load(content)
