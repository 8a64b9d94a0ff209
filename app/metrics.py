"""`/metrics` in the Prometheus text format: what the API process counts, plus what the database knows.

Request counts and latencies are counted by route template (`/v1/models/{name}`, never the raw path,
so a scrape stays small however many models there are), by a pure ASGI middleware that sees every
response, errors included. Prediction rows and cache hits are counted where they happen (two hooks
in `app/predictions/`). Jobs run in worker processes, but the job row is the truth about a job, so
jobs by state, the queue depth, job durations and the version count are read from the database at
each scrape rather than counted in workers (no multiprocess bookkeeping, right after any restart).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from app.auth.deps import ReadScope, require_every_model
from app.db.tables import Dataset, DatasetDeletion, DriftReport, Job, Model, Version

# Process-wide: one API process counts once, however many apps a test builds in it.
REGISTRY = CollectorRegistry()
REQUESTS = Counter("lifelong_http_requests", "HTTP requests answered, by method, route template and status",
                   ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("lifelong_http_request_duration_seconds", "Time to answer an HTTP request",
                    ["method", "route"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PREDICTION_ROWS = Counter("lifelong_prediction_rows", "Input rows predicted", ["model"], registry=REGISTRY)
PREDICTION_CACHE = Counter("lifelong_prediction_cache", "Loaded-network cache lookups of predictions, hit or miss",
                           ["result"], registry=REGISTRY)

JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600)
UNMATCHED = "unmatched"  # a path no route serves: one label, so scanners cannot blow up the series


@lru_cache(maxsize=8192)
def _series(metric: Counter | Histogram, *values: str) -> Any:
    """One labelled series of `metric`, found once: `labels()` takes a lock and builds its key each time,
    which cost a 1-row prediction about 3 µs per metric. No series is ever removed, so none goes stale."""
    return metric.labels(*values)


PREDICTIONS_ADMITTED = Gauge("lifelong_predictions_admitted", "Predictions running in the API's prediction threads or "
                             "waiting for one (more than LIFELONG_PREDICT_WORKERS + _QUEUE are shed)",
                             registry=REGISTRY)


def set_predictions_admitted(count: int) -> None:
    PREDICTIONS_ADMITTED.set(count)


def count_prediction(model: str, rows: int) -> None:
    _series(PREDICTION_ROWS, model).inc(rows)


def count_cache_lookup(hit: bool) -> None:
    _series(PREDICTION_CACHE, "hit" if hit else "miss").inc()


class RequestMetrics:
    """ASGI middleware: count and time each HTTP request by the template of the route that served it."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_and_note(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router writes the matched route into this same scope dict.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            count_request(scope.get("method", ""), route, status[0], time.perf_counter() - started)


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    _series(REQUESTS, method, route, str(status)).inc()
    _series(LATENCY, method, route).observe(seconds)


class DatabaseCollector(Collector):
    """Jobs by kind and state, queue depth, durations of finished jobs, models and versions: from the rows."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        with self.engine.connect() as connection:
            by_state = connection.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state))
            jobs = GaugeMetricFamily("lifelong_jobs", "Jobs by kind and state", labels=["kind", "state"])
            queued = 0
            for kind, state, count in by_state:
                jobs.add_metric([kind, state], count)
                queued += count if state == "queued" else 0
            yield jobs
            yield GaugeMetricFamily("lifelong_job_queue_depth", "Jobs waiting for a worker", value=queued)
            durations = connection.execute(
                select(Job.kind, Job.state, Job.started_at, Job.finished_at)
                .where(Job.started_at.is_not(None), Job.finished_at.is_not(None)))
            yield _duration_histogram(durations)
            yield GaugeMetricFamily("lifelong_models", "Models",
                                    value=connection.scalar(select(func.count()).select_from(Model)))
            yield GaugeMetricFamily("lifelong_versions", "Stored versions, all models",
                                    value=connection.scalar(select(func.count()).select_from(Version)))
            yield _drift_gauge(connection)
            yield from _dataset_metrics(connection)


def _dataset_metrics(connection: Any) -> Iterator[Any]:
    """Datasets stored, deleted (by request or by retention: `dataset_deletions` rows are only ever added,
    so a counter), and deleted ones whose blob is still stored (another dataset names it, or a purge is due)."""
    yield GaugeMetricFamily("lifelong_datasets", "Stored datasets",
                            value=connection.scalar(select(func.count()).select_from(Dataset)))
    deleted = CounterMetricFamily("lifelong_datasets_deleted", "Datasets deleted, by reason (request or retention)",
                                  labels=["reason"])
    counts = dict(connection.execute(select(DatasetDeletion.reason, func.count())
                                     .group_by(DatasetDeletion.reason)).tuples().all())
    for reason in ("request", "retention"):
        deleted.add_metric([reason], counts.get(reason, 0))
    yield deleted
    yield GaugeMetricFamily("lifelong_deleted_dataset_blobs_kept", "Deleted datasets whose blob is still stored",
                            value=connection.scalar(select(func.count()).select_from(DatasetDeletion)
                                                    .where(DatasetDeletion.blob_purged_at.is_(None))))


def _drift_gauge(connection: Any) -> GaugeMetricFamily:
    """The p-value of each model's latest drift report, per task (low: the batch looks unlike the task)."""
    latest = (select(DriftReport.model_id, func.max(DriftReport.id).label("id"))
              .group_by(DriftReport.model_id).subquery())
    rows = connection.execute(select(Model.name, DriftReport.tasks).join(latest, DriftReport.id == latest.c.id)
                              .join(Model, Model.id == DriftReport.model_id))
    gauge = GaugeMetricFamily("lifelong_drift_p_value", "p-value of the latest drift report, per model and task",
                              labels=["model", "task"])
    for model, tasks in rows:
        for task, verdict in tasks.items():
            gauge.add_metric([model, task], verdict["p_value"])
    return gauge


def _duration_histogram(rows: Any) -> HistogramMetricFamily:
    series: dict[tuple[str, str], list[float]] = {}
    for kind, state, started, finished in rows:
        series.setdefault((kind, state), []).append(max(0.0, (finished - started).total_seconds()))
    family = HistogramMetricFamily("lifelong_job_duration_seconds", "Run time of finished jobs (start to end)",
                                   labels=["kind", "state"])
    for labels, seconds in sorted(series.items()):
        buckets = [(str(bound), sum(s <= bound for s in seconds)) for bound in JOB_DURATION_BUCKETS]
        family.add_metric(list(labels), [*buckets, ("+Inf", len(seconds))], sum(seconds))
    return family


# With keys configured, a scrape needs a read key (Prometheus: `authorization: {credentials: …}`):
# the series name models.
router = APIRouter(tags=["metrics"], dependencies=[ReadScope, require_every_model("/metrics")])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    state = request.app.state
    cache = GaugeMetricFamily("lifelong_prediction_cache_bytes", "Parameter bytes of networks held for predictions",
                              value=state.cache.bytes)
    body = generate_latest(REGISTRY) + generate_latest(state.metrics_registry)
    body += generate_latest(_Fixed([cache]))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class _Fixed(CollectorRegistry):
    def __init__(self, families: list[Any]):
        super().__init__(auto_describe=False)
        self._families = families

    def collect(self) -> Iterator[Any]:
        yield from self._families


def install_metrics(app: FastAPI) -> None:
    """Count every request of `app` and serve `/metrics`."""
    app.state.metrics_registry = CollectorRegistry(auto_describe=False)
    app.state.metrics_registry.register(DatabaseCollector(app.state.engine))
    app.add_middleware(RequestMetrics)
    app.include_router(router)
