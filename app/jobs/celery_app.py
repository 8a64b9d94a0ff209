"""The Celery app, configured for long jobs, on the embedded file broker unless a broker URL is set.

Embedded default: kombu's filesystem transport (with atomic message writes, app/jobs/file_transport.py)
with its message, processed and control folders
under `<var_dir>/broker/` (the control folder makes broadcast, hence `celery inspect`, work), so a
real worker process consumes real messages with nothing else installed. `LIFELONG_BROKER_URL`
(`redis://…`) switches broker with no code change; Redis then gets a visibility timeout longer than
the hard time limit, or it would hand a still-running job to a second worker.

Long-job settings (STYLE.md): acknowledge after the job (a lost worker's job is delivered again,
capped by the attempt count in the job row), prefetch one, soft and hard time limits, no result
backend (the job row is the truth).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.jobs.file_transport import ALIAS as FILE_TRANSPORT
from app.settings import Settings


def broker_config(settings: Settings) -> tuple[str, dict[str, Any]]:
    if settings.embedded_broker:
        root = settings.broker_dir
        folders = {name: root / name for name in ("queue", "processed", "control")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return f"{FILE_TRANSPORT}://", {
            # One folder both ways: producer (API) and consumer (worker) share it.
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "store_processed": False,
            "control_folder": str(folders["control"]),
            "polling_interval": settings.broker_poll_s,
        }
    options: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://", "sentinel://")):
        options["visibility_timeout"] = settings.job_hard_time_limit_s + 3600
    return settings.broker_url, options


def make_celery(settings: Settings) -> Celery:
    url, transport_options = broker_config(settings)
    celery = Celery("lifelong", broker=url, set_as_current=False)
    celery.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.default_queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=max(settings.job_hard_time_limit_s, settings.job_soft_time_limit_s + 1),
        worker_concurrency=1 if settings.embedded_broker else settings.worker_concurrency,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return celery
