"""Logging of the API and worker processes: JSON lines off a terminal, with the job id on a job's lines.

Logs of a deployed service go to a collector (Docker, journald, Loki) that wants one JSON object a
line; a person at a terminal wants plain text, so the choice follows whether stderr is a terminal
(`LIFELONG_LOG_JSON=1|0` forces it). A worker runs one job at a time per pool process: Celery's
task_prerun/postrun signals set the job id in a context variable that a filter adds to every
record, so each line written while a job runs (ours, Celery's, torch warnings) says which job.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import os
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

CURRENT_JOB: ContextVar[str | None] = ContextVar("lifelong_job_id", default=None)
PLAIN = "%(asctime)s %(levelname)s %(name)s%(job_suffix)s: %(message)s"


# A pool process runs one job at a time, so the job it runs is also the job of its other threads (the
# heartbeat), which start with an empty context: the signals set this too.
_process_job: str | None = None


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = CURRENT_JOB.get() or _process_job
        record.job_suffix = f" [job {record.job_id}]" if record.job_id else ""
        return True


class _Queued(QueueHandler):
    """Hands records to the writer thread with their message and traceback already rendered (their
    arguments may change once the call returns), the traceback kept apart for the JSON line."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


class _Writer(QueueListener):
    """The thread that formats and writes queued records; stopping it twice (by hand, then at exit) is fine."""

    def stop(self) -> None:
        if self._thread is not None:  # type: ignore[attr-defined]
            super().stop()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "process": record.process,
        }
        if getattr(record, "job_id", None):
            line["job_id"] = record.job_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # rendered before it was queued
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


def wants_json(stream: TextIO) -> bool:
    forced = os.environ.get("LIFELONG_LOG_JSON")
    if forced is not None:
        return forced.strip().lower() in ("1", "true", "yes")
    return not (hasattr(stream, "isatty") and stream.isatty())


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None, *,
                      in_background: bool = False) -> _Writer | None:
    """One handler on the root logger; every library's logger propagates to it.

    `in_background` (the API process): records are formatted and written by a thread of their own, so a
    request's access line costs its event loop a queue put, not a JSON encoding and a write that may
    block on a slow collector (it was about 0.1 ms of a 1.3 ms prediction). Lines still queued are
    written when the process exits normally (or `stop()` on the writer returned); a SIGKILL loses them.
    Never in a worker: its pool processes are forked, and a thread does not survive a fork."""
    stream = stream or sys.stderr
    writer = logging.StreamHandler(stream)
    writer.setFormatter(JsonFormatter() if wants_json(stream) else logging.Formatter(PLAIN))
    handler: logging.Handler = writer
    listener = None
    if in_background:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler = _Queued(records)
        listener = _Writer(records, writer)
        listener.start()
        atexit.register(listener.stop)
    handler.addFilter(JobIdFilter())  # where the record is made: the job id lives in that thread's context
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn (Celery's, torch's) as records too, not bare stderr text
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return listener


def configure_worker_logging() -> None:
    """Our logging in a Celery worker, and the job id bound around each task run."""
    from celery.signals import celeryd_init, setup_logging, task_postrun, task_prerun

    def keep_ours(**_: Any) -> None:  # a receiver here stops Celery from configuring logging itself
        configure_logging()

    def bind(args: tuple | None = None, **_: Any) -> None:
        global _process_job
        _process_job = str(args[0]) if args else None
        CURRENT_JOB.set(_process_job)

    def unbind(**_: Any) -> None:
        global _process_job
        _process_job = None
        CURRENT_JOB.set(None)

    def no_banner_in_json(instance: Any = None, **_: Any) -> None:  # the ASCII-art banner is not a log line
        if instance is not None and wants_json(sys.stderr):
            instance.quiet = True

    setup_logging.connect(keep_ours, weak=False)
    celeryd_init.connect(no_banner_in_json, weak=False)
    task_prerun.connect(bind, weak=False)
    task_postrun.connect(unbind, weak=False)
    configure_logging()
