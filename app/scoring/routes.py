"""`POST /v1/models/{name}/evaluate`: score a version on labeled data, in the request."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.deps import ReadScope
from app.deps import CacheDep, ReadSessionDep, SettingsDep, StoreDep
from app.scoring import service
from app.scoring.schemas import EvaluateOut, EvaluateRequest

router = APIRouter(prefix="/v1/models/{name}", tags=["predictions"], dependencies=[ReadScope])


@router.post("/evaluate", response_model=EvaluateOut)
def evaluate(name: str, body: EvaluateRequest, session: ReadSessionDep, store: StoreDep, cache: CacheDep,
             settings: SettingsDep) -> EvaluateOut:
    """Accuracy, per-class precision and recall, and the confusion matrix of `task` at a version (`version`,
    `alias`, or production) on labeled `data`: a dataset id or inline inputs or texts with labels. At most
    LIFELONG_MAX_PREDICT_ROWS rows (413 beyond)."""
    return service.evaluate(session=session, store=store, cache=cache, settings=settings, model_name=name, request=body)
