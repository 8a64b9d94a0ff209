"""The FastAPI application: routers per domain over one engine, blob store, prediction cache and Celery client.

`create_app(settings)` builds everything for one process; the schema is migrated when it starts.
Service errors become `{"detail": ...}` with their status; an integrity error (two writers racing
for one name) is a 409, never a 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from app.architectures.routes import router as architectures_router
from app.auth.middleware import AuthenticateFirst
from app.auth.routes import router as keys_router
from app.dashboard import router as dashboard_router
from app.datasets.routes import router as datasets_router
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.errors import ServiceError
from app.health import router as health_router
from app.jobs.routes import router as jobs_router
from app.learning.routes import router as learning_router
from app.limits import MULTIPART_SLACK_BYTES, BodyLimit
from app.metrics import install_metrics
from app.models.routes import router as models_router
from app.predictions.cache import NetworkCache
from app.predictions.routes import router as predictions_router
from app.settings import Settings, get_settings
from app.store import BlobNotFound, open_blob_store
from app.versions.routes import router as versions_router
from workers.celery_app import make_celery


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade_database(settings)
        yield
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
    app.state.cache = NetworkCache(settings.predict_cache_bytes)
    app.state.celery = make_celery(settings)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + MULTIPART_SLACK_BYTES)
    app.add_middleware(AuthenticateFirst)  # outermost of the two: 401 before any body byte is read

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, error: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's shape ({"detail": [{"loc", "msg", "type"}, …]}) without the offending `input`: a
        # NaN there cannot be encoded as JSON (it made a 500), and a large body would be sent back whole.
        detail = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in error.errors()]
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(_: Request, error: IntegrityError) -> JSONResponse:
        return JSONResponse({"detail": f"conflicts with stored data: {error.orig}"}, status_code=409)

    @app.exception_handler(OSError)
    async def _storage_error(_: Request, error: OSError) -> JSONResponse:
        # A full disk or a read-only blob directory is the server's trouble, not the client's: 503, not 500.
        return JSONResponse({"detail": f"storage unavailable: {error.strerror or error}"}, status_code=503)

    @app.exception_handler(BlobNotFound)
    async def _missing_blob(_: Request, error: BlobNotFound) -> JSONResponse:
        # A row names a blob the store lacks (deleted by hand, or another blob_dir): the server's
        # data is damaged, which a client cannot fix; said plainly rather than as a bare 500.
        return JSONResponse({"detail": f"stored data is missing: {error}"}, status_code=500)

    for router in (health_router, models_router, datasets_router, learning_router, jobs_router,
                   versions_router, predictions_router, keys_router, architectures_router):
        app.include_router(router)
    install_metrics(app)
    app.include_router(dashboard_router)
    return app
