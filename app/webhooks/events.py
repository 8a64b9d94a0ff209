"""The outbox writer: one delivery row per hook subscribed to an event, in the caller's transaction.

Each place that makes a reportable change calls one function here with the session (or row) it is
writing with: a job's end (app/jobs/service.py, through the hook that `publish_job_events` fills), a
recorded version (app/versions/service.py), an alias move (app/aliases/moves.py). The rows commit or
roll back with the change itself, so a client is never told of a change that did not happen, and a
change that happened is never left untold by a crash between the commit and a send. Nothing here
touches the network: sending is app/webhooks/delivery.py's.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from app.db.tables import AliasMove, DriftReport, Job, Model, Version, utcnow
from app.jobs.events import on_job_finished
from app.webhooks.tables import Webhook, WebhookDelivery

EventName = Literal["job.finished", "version.created", "alias.moved", "drift.detected"]
EVENTS: tuple[str, ...] = get_args(EventName)
JOB_FINISHED, VERSION_CREATED, ALIAS_MOVED, DRIFT_DETECTED = EVENTS


def emit(session: Session, *, model_id: int, event: str, data: dict[str, Any]) -> int:
    """Queue `event` for each of the model's hooks subscribed to it; returns how many deliveries."""
    hooks = [hook for hook in session.scalars(select(Webhook).where(Webhook.model_id == model_id))
             if event in hook.events]
    if not hooks:
        return 0
    model = session.scalar(select(Model.name).where(Model.id == model_id))
    now = utcnow()
    for hook in hooks:
        delivery_id = uuid4().hex
        body = {"id": delivery_id, "event": event, "created_at": now.isoformat(), "model": model, "data": data}
        session.add(WebhookDelivery(id=delivery_id, webhook_id=hook.id, event=event, state="pending", attempts=0,
                                    body=json.dumps(body, separators=(",", ":")), next_attempt_at=now,
                                    attempt_log=[], created_at=now))
    return len(hooks)


def emit_job_finished(job: Job) -> None:
    """`job.finished` for a job just put in a final state (succeeded, failed or cancelled)."""
    session = object_session(job)
    if session is None:  # a row never stored: there is nothing to report
        return
    succeeded, failed = job.state == "succeeded", job.state == "failed"
    emit(session, model_id=job.model_id, event=JOB_FINISHED, data={
        "job": job.id, "kind": job.kind, "state": job.state, "task": job.task, "base_version": job.base_version,
        "result": {"version": job.result_version, "promotion": job.promotion} if succeeded else None,
        "error": {"type": job.error_type, "message": job.error_message} if failed else None,
        "attempts": job.attempts, "finished_at": _iso(job.finished_at),
    })


def publish_job_events() -> None:
    """Write `job.finished` for every job that ends in this process (the composition root calls this:
    app.jobs publishes through its hook, app/jobs/events.py, and imports nothing of webhooks)."""
    on_job_finished(emit_job_finished)


def emit_version_created(session: Session, version: Version) -> None:
    emit(session, model_id=version.model_id, event=VERSION_CREATED, data={
        "version": version.number, "kind": version.kind, "task": version.task, "parent": version.parent,
        "job": version.job_id, "accuracy": dict(version.accuracy),
    })


def emit_alias_moved(session: Session, move: AliasMove) -> None:
    """`alias.moved` for a move of any alias, production included; `to` is None when it was deleted."""
    by = f"key {move.key_prefix}" if move.key_prefix else f"job {move.job_id}" if move.job_id else None
    emit(session, model_id=move.model_id, event=ALIAS_MOVED, data={
        "alias": move.alias, "from": move.from_version, "to": move.to_version, "by": by, "key": move.key_prefix,
        "job": move.job_id, "reason": move.reason, "at": _iso(move.at),
    })


def emit_drift_detected(session: Session, report: DriftReport) -> None:
    """`drift.detected` for a report in which some task's verdict is positive."""
    emit(session, model_id=report.model_id, event=DRIFT_DETECTED, data={
        "report": report.id, "version": report.version, "job": report.job_id, "source": report.source,
        "n": report.n, "alpha": report.alpha, "nearest_task": report.nearest_task,
        "drifted": [task for task, verdict in report.tasks.items() if verdict["drift"]], "tasks": report.tasks,
    })


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()
