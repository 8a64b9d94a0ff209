"""HTTP routes that start jobs: learn a task, refresh importance (202 with the job and its Location)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.auth.deps import WriteScope
from app.deps import CeleryDep, SessionDep, SettingsDep, StoreDep
from app.jobs.http import queue_job
from app.jobs.schemas import JobOut
from app.learning import service
from app.learning.schemas import ImportanceRequest, TaskRequest

router = APIRouter(prefix="/v1/models/{name}", tags=["learning"], dependencies=[WriteScope])


@router.post("/tasks", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def learn_task(
    name: str, body: TaskRequest, response: Response, session: SessionDep, store: StoreDep, celery: CeleryDep,
    settings: SettingsDep,
) -> JobOut:
    return queue_job(session, celery, service.submit_task(session=session, store=store, model_name=name, request=body,
                                                                settings=settings), response)


@router.post("/importance", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
def refresh_importance(
    name: str, body: ImportanceRequest, response: Response, session: SessionDep, store: StoreDep, celery: CeleryDep,
    settings: SettingsDep,
) -> JobOut:
    return queue_job(session, celery, service.submit_importance(session=session, store=store, model_name=name,
                                                                      request=body, settings=settings), response)
