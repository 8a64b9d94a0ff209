"""The FastAPI application: routers per domain over one engine, blob store, prediction cache and Celery client.

`create_app(settings)` builds everything for one process; the schema is migrated when it starts.
Every error answers one shape, `{"detail": "<why>"}` (plus `"errors"`, the fields, for a request that
fails validation; app/http_errors.py), with its status; an integrity error (two writers racing for one
name) is a 409, never a 500. The OpenAPI lists each operation's errors with that shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.aliases.routes import router as aliases_router
from app.architectures.routes import router as architectures_router
from app.auth.middleware import AuthenticateFirst
from app.auth.routes import router as keys_router
from app.body_timeout import BodyReadTimeout
from app.dashboard import router as dashboard_router
from app.datasets.routes import router as datasets_router
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.drift.routes import router as drift_router
from app.export.routes import router as export_router
from app.faults import injected
from app.health import router as health_router
from app.health_listener import HealthListener
from app.http_errors import answer_errors, document_errors
from app.jobs.celery_app import make_celery
from app.jobs.routes import router as jobs_router
from app.learning.routes import router as learning_router
from app.limits import MULTIPART_SLACK_BYTES, BodyLimit
from app.mas.devices import pick_device
from app.media_types import RequireMediaType, body_operations
from app.metrics import install_metrics
from app.models.routes import router as models_router
from app.predictions.admission import PredictionGate
from app.predictions.batching import Coalescer
from app.predictions.cache import NetworkCache
from app.predictions.routes import router as predictions_router
from app.predictions.shedding import ShedWhenFull
from app.scoring.routes import router as scoring_router
from app.settings import Settings, get_settings
from app.shadow.routes import router as shadow_router
from app.shadow.runner import ShadowRunner
from app.store import open_blob_store
from app.timed_cache import TimedCache, clear_on_commit
from app.versions.routes import router as versions_router
from app.webhooks.events import publish_job_events
from app.webhooks.routes import router as webhooks_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade_database(settings)
        app.state.shadows.start()
        health_listener.start()
        yield
        health_listener.stop()
        app.state.shadows.stop()
        app.state.engine.dispose()
        app.state.reader_engine.dispose()

    app = FastAPI(title="lifelong", version="1", lifespan=lifespan,
                  description="Keeps a PyTorch model learning new tasks without forgetting (Memory Aware Synapses).")
    app.state.settings = settings
    app.state.engine = make_engine(settings)
    app.state.sessions = make_session_factory(app.state.engine)
    app.state.reader_engine = make_engine(settings, reader=True)
    app.state.read_sessions = make_session_factory(app.state.reader_engine)
    app.state.store = open_blob_store(settings)
    app.state.cache = NetworkCache(settings.predict_cache_bytes, pick_device(settings.predict_device),
                                   Coalescer(settings.predict_batch_wait_ms / 1000, settings.predict_batch_rows))
    app.state.gate = PredictionGate(settings.predict_workers, settings.predict_queue, settings.predict_timeout_s,
                                    0.5 if "slow_predictions" in injected(settings) else 0.0)
    app.state.key_cache = TimedCache(settings.auth_cache_s)
    app.state.target_cache = TimedCache(settings.auth_cache_s)
    clear_on_commit(app.state.sessions, app.state.key_cache, app.state.target_cache)
    app.state.celery = make_celery(settings)
    publish_job_events()  # a job ended by the API (cancelled, or its message not sent) is told of too
    app.state.shadows = ShadowRunner(app.state.sessions, app.state.store, app.state.cache,
                                     queue_size=settings.shadow_queue)
    health_listener = HealthListener(settings)
    # Predictions first: a request is matched against the routes in this order, and no other route
    # matches a prediction's path, so the busiest route is found without trying the others first.
    routers = (predictions_router, health_router, models_router, datasets_router, learning_router, jobs_router,
               versions_router, keys_router, architectures_router, aliases_router, webhooks_router)
    routers += (export_router,)
    routers += (scoring_router, drift_router, shadow_router)
    # The last added is the outermost: 401, then 415, then 413, each before any body byte is read.
    app.add_middleware(BodyReadTimeout, timeout_s=settings.body_read_timeout_s)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + MULTIPART_SLACK_BYTES)
    app.add_middleware(RequireMediaType, body_operations=body_operations(routers))
    app.add_middleware(AuthenticateFirst)

    answer_errors(app, routers)
    for router in routers:
        app.include_router(router)
    document_errors(app, routers)
    install_metrics(app)
    # Outermost: while the gate is full, a prediction's 503 costs the least.
    app.add_middleware(ShedWhenFull, gate=app.state.gate)
    app.include_router(dashboard_router)
    return app
