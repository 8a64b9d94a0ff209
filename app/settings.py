"""Every knob of the service in one place, read from `LIFELONG_*` environment variables (or `.env`).

Each default is the embedded one: a SQLite file, a broker on local files and a blob directory, all
under `./var/`, so `lifelong serve` starts with no configuration at all. Pointing
`LIFELONG_DATABASE_URL` or `LIFELONG_BROKER_URL` elsewhere (PostgreSQL, `redis://…`) needs no code change.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1 << 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIFELONG_", env_file=".env", extra="ignore")

    # Where the embedded database, broker files and blobs live.
    var_dir: Path = Path("var")
    # Any SQLAlchemy URL; default sqlite:///<var_dir>/lifelong.sqlite3 (WAL mode).
    database_url: str | None = None
    # Any Celery broker URL (redis://…); default the filesystem broker in <var_dir>/broker.
    broker_url: str | None = None
    # Content-addressed θ/Ω/dataset files; default <var_dir>/blobs.
    blob_dir: Path | None = None
    # Any fsspec URL for the blobs instead (s3://bucket/prefix, gs://…, file:///shared/dir), so that
    # workers on other hosts share them; takes precedence over blob_dir.
    blob_url: str | None = None
    # fsspec storage options of blob_url, as JSON: {"endpoint_url": "http://minio:9000", "key": …}.
    blob_options: dict[str, Any] = Field(default_factory=dict)

    # Queues a worker takes jobs from (comma-separated); unset: both on the embedded broker (its one
    # worker runs everything), else the queue of the worker's device. A new model's jobs go to
    # `default_queue` unless the model or the request names another.
    worker_queues: str | None = None
    default_queue: Literal["cpu", "gpu"] = "cpu"
    # Device a worker trains on: "auto" is cuda when torch sees a GPU, else cpu.
    worker_device: str = "auto"

    # Local directories a model's architecture may name as `path` (another BERT-style encoder for
    # text-encoder); anything else is refused, so a client cannot make the server read where it likes.
    model_dirs: list[Path] = Field(default_factory=list)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # A second port answering only /healthz and /readyz, from a small process beside the API, so that a
    # load balancer's probe answers within milliseconds however busy the API is (app/health_listener.py).
    # Unset: probes use the API's port, where they wait behind a storm of requests.
    health_port: int | None = Field(None, ge=1, le=65535)
    # There, /healthz answers 503 once the API's event loop has not turned for this long (it is stuck).
    health_stale_s: float = Field(10.0, gt=0)
    # Longest wait for the next piece of a request body once the request has begun (408 past it), so
    # that a client announcing a large body and sending a few bytes cannot hold a connection open.
    body_read_timeout_s: float = Field(10.0, gt=0)
    # How long an idle keep-alive connection stays open. Longer than the pools of common clients
    # (httpx and aiohttp forget an idle connection after 5 and 15 s; load balancers such as AWS's
    # after 60 s), so that the client, not the server, closes it: with uvicorn's default of 5 s, a
    # request sent on a pooled connection just as the server closes it fails with a ReadError.
    keep_alive_s: int = Field(75, ge=1)

    # Largest dataset file, or raw .npy prediction body, accepted.
    max_upload_bytes: int = Field(256 * MiB, ge=1)
    # Classes up to which evaluate answers the whole [labeled][predicted] confusion matrix; above, it answers
    # null there, and per_class and top_confusions list at most this many (app/scoring/confusion.py).
    max_confusion_classes: int = Field(100, ge=1, le=1000)
    # Most rows one POST prediction may carry (GET takes at most 100, as the API says).
    max_predict_rows: int = Field(100_000, ge=1)
    # Parameter bytes of loaded versions kept in memory for predictions (LRU).
    predict_cache_bytes: int = Field(512 * MiB, ge=0)
    # Where the API runs its networks for predictions: cpu, cuda or cuda:N (bf16 autocast on CUDA).
    predict_device: str = "cpu"
    # Concurrent predictions of one version and task share a forward pass (app/predictions/batching.py):
    # a pass taking over from a finished one waits at most this long for more rows, and holds at most
    # predict_batch_rows rows; 1 row turns the sharing off.
    predict_batch_wait_ms: float = Field(2.0, ge=0, le=50)
    predict_batch_rows: int = Field(256, ge=1, le=100_000)
    # Bounded work per prediction (app/predictions/admission.py): a deadline (504 past it), threads of the
    # predictions' own pool, and how many more may wait for one (503 with Retry-After beyond).
    predict_timeout_s: float = Field(30.0, gt=0, le=3600)
    predict_workers: int = Field(8, ge=1, le=256)
    predict_queue: int = Field(64, ge=0, le=100_000)
    # Most texts and images in one prediction: they cost far more per row than numbers (413 above).
    max_predict_texts: int = Field(2_000, ge=1, le=100_000)
    max_predict_images: int = Field(256, ge=1, le=100_000)
    # Training rows per task whose trunk features are kept as its drift reference (MAS.md §8).
    drift_reference_rows: int = Field(512, ge=2, le=100_000)
    # Sampled prediction requests waiting to be replayed on a model's shadow; more are dropped and counted.
    shadow_queue: int = Field(1000, ge=1, le=1_000_000)
    # Permutations of a drift test: the smallest p-value it can give is 1 / (1 + this).
    drift_permutations: int = Field(2000, ge=10, le=100_000)

    # A job running past the soft limit is failed with error.type "timeout"; past the hard limit its
    # worker process is killed.
    job_soft_time_limit_s: int = Field(6 * 3600, ge=1)
    job_hard_time_limit_s: int = Field(6 * 3600 + 300, ge=1)
    # Deliveries of one job before it is failed as "worker_lost" (a job that kills its worker).
    job_max_attempts: int = Field(3, ge=1)
    # Least time between two progress writes, and between two reads of the cancel flag, of a job.
    progress_interval_s: float = Field(0.25, gt=0)
    cancel_poll_s: float = Field(0.5, gt=0)
    # How often the filesystem broker looks for new messages.
    broker_poll_s: float = Field(0.2, gt=0)
    # Jobs one worker runs at once; the filesystem broker always runs one.
    worker_concurrency: int = Field(1, ge=1)
    # torch intra-op threads in a worker; default torch's own choice.
    torch_threads: int | None = Field(None, ge=1)
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)

    # With no API key created the server runs open and refuses any non-loopback interface; this
    # lets it listen openly anyway (behind a proxy that authenticates, say). Prefer creating a key.
    allow_open_network: bool = False
    # Seconds the API keeps a key check, and the version a prediction names, without reading the
    # database again; 0 reads every time. A key revoked or an alias moved by another process (the CLI,
    # a worker, a second API) counts within it; one changed through this API process counts at once.
    auth_cache_s: float = Field(1.0, ge=0)
    # Limits of one request or job; each refusal says which limit and its value.
    # Rows of inline data (`inputs`) in one task or importance request (413 beyond).
    max_inline_rows: int = Field(10_000, ge=1)
    # Values per input row: the product of a model's input_shape (422 beyond).
    max_input_values: int = Field(1 << 20, ge=1)
    # Parameters of a model's network (422 above), counted from shapes before anything is allocated: the
    # trunk when the model is created; the trunk and every head, the new task's included, when a task is.
    max_model_parameters: int = Field(100_000_000, ge=1)
    # Classes of one task: integer labels lie in 0..max_classes−1, class names are at most this many (422
    # beyond). Each class is a row of the task's head, counted against max_model_parameters with the trunk.
    max_classes: int = Field(10_000, ge=2, le=65_536)
    # Training rows seen by one job, epochs × rows (422 beyond).
    max_job_samples: int = Field(50_000_000, ge=1)
    # Bytes a train job may hold of its frozen layers' outputs, computed once for its rows and reused by
    # every epoch, λ trial and Ω pass (app/mas/frozen_prefix.py); beyond it, or 0, the uncached path.
    prefix_cache_bytes: int = Field(2 * 1024**3, ge=0)
    # Queued or running jobs of one model at once (429 beyond).
    max_active_jobs_per_model: int = Field(8, ge=1)
    # A running job's process writes its heartbeat this often; a job whose heartbeat is older than
    # `job_stale_after_s` lost its worker, and the sweeper (in every worker) re-queues or fails it.
    heartbeat_interval_s: float = Field(5.0, gt=0)
    job_stale_after_s: float = Field(120.0, gt=0)
    sweep_interval_s: float = Field(30.0, gt=0)
    # The sweeper deletes datasets uploaded more than this many days ago that no queued or running job needs
    # (app/datasets/retention.py); a dataset's own `retain_until` overrides it. None (unset): keep them.
    dataset_retention_days: float | None = Field(None, gt=0)
    # Webhooks (app/webhooks/): each worker's main process looks for due deliveries every `webhook_poll_s`
    # and sends up to `webhook_concurrency` at once, each request within `webhook_timeout_s` (connect: 2 s at
    # most). A failed one is retried after webhook_backoff_s × 2^(attempt−1), capped at webhook_backoff_max_s,
    # until webhook_max_attempts attempts failed. A delivery being sent is leased for webhook_lease_s (keep it
    # well above the timeout): a worker that dies mid-send leaves it to be sent again once that runs out.
    # Each target (a receiver's scheme, host and port) gets at most `webhook_target_concurrency` of those at once,
    # so a receiver that never answers holds only its own slots and delays only its own deliveries.
    webhook_poll_s: float = Field(1.0, gt=0)
    webhook_concurrency: int = Field(4, ge=1)
    webhook_target_concurrency: int = Field(2, ge=1)
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_backoff_s: float = Field(1.0, gt=0)
    webhook_backoff_max_s: float = Field(3600.0, gt=0)
    webhook_max_attempts: int = Field(16, ge=1)
    webhook_lease_s: float = Field(60.0, gt=0)
    # Hooks one model may have (409 beyond).
    max_webhooks_per_model: int = Field(20, ge=1)
    # Hooks may send to loopback, private and link-local addresses (app/webhooks/targets.py): for receivers on
    # the same machine or network only; off, a hook whose host resolves to one is refused (at creation and at
    # every delivery).
    webhook_allow_private: bool = False
    # Fernet key(s) hook secrets are encrypted with in the database (app/webhooks/secrets.py), comma-separated,
    # the first encrypting (`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key())"`).
    # Unset: a key generated into <var_dir>/webhook-secret.key, for the embedded one-machine setup only.
    webhook_secret_key: SecretStr | None = None
    # Raw (text and image) datasets and archives, checked at upload; each refusal names its limit.
    # Bytes an uploaded archive or .npz may expand to: 4× the default upload limit, so that the API,
    # which holds the parsed data in memory (about 3× it for arrays), stays within a few GiB.
    max_unpacked_bytes: int = Field(1 << 30, ge=1)
    # Pixels (width × height) of one uploaded image, read from its header before any decoding.
    max_image_pixels: int = Field(40_000_000, ge=1)
    # Characters of one text of a text dataset.
    max_text_chars: int = Field(10_000, ge=1)
    # Faults to inject, for the fault tests only: "store_write" makes a worker's blob writes fail.
    inject_faults: str = ""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'lifelong.sqlite3').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.var_dir / "blobs").resolve()

    @property
    def broker_dir(self) -> Path:
        return (self.var_dir / "broker").resolve()

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None or self.broker_url.startswith("filesystem://")


@lru_cache
def get_settings() -> Settings:
    return Settings()
