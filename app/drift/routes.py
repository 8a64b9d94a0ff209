"""HTTP routes of drift reports: start a drift job (202), list the reports, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.deps import ReadScope, WriteScope
from app.db.lookups import get_model
from app.deps import CeleryDep, SessionDep, SettingsDep, StoreDep
from app.drift import service
from app.drift.schemas import DriftReportOut, DriftRequest
from app.jobs.http import queue_job
from app.jobs.schemas import JobOut

router = APIRouter(prefix="/v1/models/{name}/drift", tags=["drift"], dependencies=[ReadScope])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut, dependencies=[WriteScope])
def start_drift(name: str, body: DriftRequest, response: Response, session: SessionDep, store: StoreDep,
                celery: CeleryDep, settings: SettingsDep) -> JobOut:
    """Test a deployment batch against every task's reference features at a version (production by default):
    202 and a job of kind `drift`, whose result is the report. 409 when a task has no reference."""
    return queue_job(session, celery, service.submit_drift(session=session, store=store, model_name=name, request=body,
                                                           settings=settings), response)


@router.get("", response_model=list[DriftReportOut])
def list_drift(name: str, session: SessionDep,
               limit: Annotated[int, Query(ge=1, le=1000, description="the newest reports, at most")] = 100,
               ) -> list[DriftReportOut]:
    """The model's drift reports, newest first: drift jobs' and importance refreshes'."""
    return service.list_reports(session=session, model=get_model(session, name), limit=limit)
