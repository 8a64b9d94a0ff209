"""Liveness and readiness: /healthz says the process is up, /readyz that the database and broker answer.

Both are open (no key), so /readyz says only which part failed; the reason, which may name hosts,
folders or drivers, goes to the server's log. The same two answers are served outside the event loop
on `LIFELONG_HEALTH_PORT` when it is set, by a process of its own (app/health_listener.py), for probes
that must answer at any load.
"""

from __future__ import annotations

import logging

from celery import Celery
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from app.settings import Settings

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


HEALTHY: dict[str, str] = {"status": "ok"}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """On the event loop: never queued behind predictions, which run in their own thread pool."""
    return HEALTHY


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    status, body = readiness(state.engine, state.settings, state.celery)
    return JSONResponse(body, status_code=status)


def readiness(engine: Engine, settings: Settings, celery: Celery) -> tuple[int, dict[str, str]]:
    checks = {"database": _check_database(engine), "broker": _check_broker(settings, celery)}
    ready = all(value == "ok" for value in checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", **checks}


def _check_database(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready; the log says why
        log.warning("readyz: the database does not answer", exc_info=True)
        return "error: the database does not answer (see the server's log)"
    return "ok"


def _check_broker(settings: Settings, celery: Celery) -> str:
    if settings.embedded_broker and not (settings.broker_dir / "queue").is_dir():
        log.warning("readyz: the broker folder %s is missing", settings.broker_dir / "queue")
        return "error: the broker's folder is missing (see the server's log)"
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.1, timeout=2)
    except Exception:  # noqa: BLE001
        log.warning("readyz: the broker does not answer", exc_info=True)
        return "error: the broker does not answer (see the server's log)"
    return "ok"
