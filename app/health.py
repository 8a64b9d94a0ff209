"""Liveness and readiness: /healthz says the process is up, /readyz that the database and broker answer.

Both are open (no key), so /readyz says only which part failed; the reason, which may name hosts,
folders or drivers, goes to the server's log.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """On the event loop: never queued behind predictions, which run in their own thread pool."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    checks = {"database": _check_database(request), "broker": _check_broker(request)}
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503)


def _check_database(request: Request) -> str:
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready; the log says why
        log.warning("readyz: the database does not answer", exc_info=True)
        return "error: the database does not answer (see the server's log)"
    return "ok"


def _check_broker(request: Request) -> str:
    settings = request.app.state.settings
    if settings.embedded_broker and not (settings.broker_dir / "queue").is_dir():
        log.warning("readyz: the broker folder %s is missing", settings.broker_dir / "queue")
        return "error: the broker's folder is missing (see the server's log)"
    try:
        with request.app.state.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.1, timeout=2)
    except Exception:  # noqa: BLE001
        log.warning("readyz: the broker does not answer", exc_info=True)
        return "error: the broker does not answer (see the server's log)"
    return "ok"
